#!/usr/bin/env bash
# Reserves 2 MiB hugepages and mounts hugetlbfs for DPDK, if not done yet.
# Idempotent. What is left to do needs root: as another user it goes
# through sudo; without sudo it says what to run and fails.
set -euo pipefail

want=${PTPSEC_HUGEPAGES:-256}
nr=/proc/sys/vm/nr_hugepages

reserve=0
mount=0
[ "$(cat $nr)" -lt "$want" ] && reserve=1
mountpoint -q /dev/hugepages || mount=1

if [ $((reserve + mount)) -gt 0 ]; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "hugepages: run as root (or install sudo): echo $want > $nr; mount -t hugetlbfs nodev /dev/hugepages" >&2
      exit 1
    fi
  fi
  if [ $reserve -eq 1 ]; then
    echo "$want" | "${as_root[@]}" tee "$nr" >/dev/null
  fi
  if [ $mount -eq 1 ]; then
    "${as_root[@]}" mkdir -p /dev/hugepages
    "${as_root[@]}" mount -t hugetlbfs nodev /dev/hugepages
  fi
fi
echo "hugepages: $(cat $nr) x 2 MiB reserved, hugetlbfs on /dev/hugepages"
