#!/usr/bin/env bash
# Puts chronyd, the NTS-KE server `make bench` compares ptpsec-controld with,
# into DIR (DIR/usr/sbin/chronyd) without installing the Debian package:
# installing it would start the system's chronyd, which then steers the clock
# beside ptp4l and phc2sys, and would remove systemd-timesyncd (both provide
# time-daemon). Only the package's libraries are installed, when missing. The
# package's version goes into DIR/VERSION. Idempotent: does nothing when
# DIR already holds chronyd.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
if [ -x "$dir/usr/sbin/chronyd" ] && [ -s "$dir/VERSION" ]; then
  echo "bench: chrony $(cat "$dir/VERSION") in $dir"
  exit 0
fi

apt_root "bench: chronyd is fetched with apt-get"
export DEBIAN_FRONTEND=noninteractive

# chronyd's shared libraries (the package's Depends that are libraries).
libs=(libcap2 libedit2 libgnutls30 libnettle8 libseccomp2)
mapfile -t missing < <(apt_missing "${libs[@]}")
updated=0
if [ ${#missing[@]} -ne 0 ]; then
  echo "bench: installing chronyd's libraries ${missing[*]}"
  $sudo apt-get update -qq
  updated=1
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
fetch() {
  (cd "$download" && $sudo apt-get download -qq -o APT::Sandbox::User=root chrony)
}
if ! fetch; then
  if [ "$updated" -eq 1 ]; then
    echo "bench: apt-get download chrony failed" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  fetch
fi
deb=$(ls "$download"/chrony_*.deb)
mkdir -p "$dir"
dpkg-deb -x "$deb" "$dir"
dpkg-deb -f "$deb" Version > "$dir/VERSION"
if ! "$dir/usr/sbin/chronyd" --version >/dev/null; then
  echo "bench: the unpacked chronyd does not run: $dir/usr/sbin/chronyd --version" >&2
  exit 1
fi
echo "bench: chrony $(cat "$dir/VERSION") unpacked into $dir (not installed: no service started, no time daemon replaced)"
