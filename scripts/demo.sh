#!/usr/bin/env bash
# The main job, offline for now: the linuxptp capture verified, stripped,
# signed back to the same bytes, signed with AES-GMAC and AES-CMAC, and a
# tampered frame caught.
set -euo pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
ctl="$top/$build/control/ptpsecctl"
capture="$top/../shared/testdata/linuxptp/l2-hmac-sha256-128.pcap"
sa_linuxptp="$top/../shared/testdata/linuxptp/sa.conf"
sa_demo="$top/config/demo-sa.conf"
out="$top/$build/demo"
mkdir -p "$out"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ ! -f "$capture" ]; then
  echo "demo: $capture not found (the shared test data sits beside the checkout)" >&2
  exit 1
fi

step "1. Decode the linuxptp 4.4 capture (first 3 frames)"
"$ctl" pcap show "$capture" > "$out/show.txt"
awk '/^#4 /{exit} {print}' "$out/show.txt"

step "2. Verify every frame with linuxptp's SA file (intel-ipsec-mb engine)"
"$ctl" pcap verify --sa-file "$sa_linuxptp" "$capture" | tail -n 3

step "3. Strip the AUTHENTICATION TLVs (lengths and checksums fixed)"
"$ctl" pcap strip "$capture" "$out/stripped.pcap"
"$ctl" pcap verify --sa-file "$sa_linuxptp" "$out/stripped.pcap" | tail -n 1

step "4. Sign again with spp 2, key 1: byte for byte what linuxptp sent"
"$ctl" pcap sign --sa-file "$sa_demo" --spp 2 --key-id 1 "$out/stripped.pcap" "$out/resigned.pcap"
if cmp -s "$out/resigned.pcap" "$capture"; then
  echo "resigned.pcap is byte-identical to the linuxptp capture ($(stat -c %s "$capture") octets)"
else
  echo "resigned.pcap differs from the linuxptp capture" >&2
  exit 1
fi

step "5. Sign with AES-GMAC-128 (IV in sequenceNo) and AES-CMAC-256, verify with OpenSSL as a cross-check"
for key in 1 2; do
  "$ctl" pcap sign --sa-file "$sa_demo" --spp 7 --key-id "$key" "$out/stripped.pcap" "$out/spp7-key$key.pcap"
  "$ctl" pcap verify --engine openssl --sa-file "$sa_demo" "$out/spp7-key$key.pcap" | tail -n 1
done
"$ctl" pcap show "$out/spp7-key1.pcap" > "$out/spp7-show.txt"
awk 'NR<=4' "$out/spp7-show.txt"

step "6. Flip one ICV octet of frame 1: the verifier names the frame and fails"
cp "$capture" "$out/tampered.pcap"
# pcap file header (24) + record header (16) + ICV of frame 1 at octet 88
printf '\x00' | dd of="$out/tampered.pcap" bs=1 seek=128 conv=notrunc status=none
set +e
"$ctl" pcap verify --sa-file "$sa_linuxptp" "$out/tampered.pcap" > "$out/tampered.txt"
rc=$?
set -e
grep FAILED "$out/tampered.txt"
tail -n 1 "$out/tampered.txt"
echo "exit status $rc (non-zero: a frame failed)"
[ "$rc" -eq 1 ]

step "Done: files in $out"
