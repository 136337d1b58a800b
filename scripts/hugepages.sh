#!/usr/bin/env bash
# Reserves 2 MiB hugepages and mounts hugetlbfs for DPDK, if not done yet.
# Idempotent. Needs root; without it, says what to run and fails.
set -euo pipefail

want=${PTPSEC_HUGEPAGES:-256}
nr=/proc/sys/vm/nr_hugepages

if [ "$(id -u)" -ne 0 ]; then
  echo "hugepages: run as root: echo $want > $nr; mount -t hugetlbfs nodev /dev/hugepages" >&2
  exit 1
fi
if [ "$(cat $nr)" -lt "$want" ]; then
  echo "$want" > "$nr"
fi
mkdir -p /dev/hugepages
if ! mountpoint -q /dev/hugepages; then
  mount -t hugetlbfs nodev /dev/hugepages
fi
echo "hugepages: $(cat $nr) x 2 MiB reserved, hugetlbfs on /dev/hugepages"
