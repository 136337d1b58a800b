#!/usr/bin/env bash
# The main job: the linuxptp capture verified, stripped, signed back to the
# same bytes, signed with AES-GMAC and AES-CMAC, a tampered frame caught; then
# the DPDK data plane signing and verifying on virtual ports, first a capture
# through it, then a replayed stream in both directions with live counters
# and a clean stop; a TPM 2.0 (swtpm) enrolled with the Registrar; the key
# server and a node hand the data plane a group key over TLS 1.3, once the
# node's TPM has quoted its enrolled platform state, and rotate it while it
# signs; last, every timing event signed in Merkle batches by that TPM and
# the evidence verified.
set -euo pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
ctl="$top/$build/control/ptpsecctl"
dataplane="$top/$build/dataplane/app/ptpsec-dataplane"
controld="$top/$build/control/controld/ptpsec-controld"
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

step "7. The DPDK data plane on net_pcap ports: the stripped capture in on the inside, signed out on the outside;"
echo "   the linuxptp capture plus spoiled frames in on the outside, verified and stripped out on the inside"
python3 - "$capture" "$out/outside-in.pcap" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
hdr, recs, off = data[:24], [], 24
while off < len(data):
    incl = struct.unpack('<I', data[off + 8:off + 12])[0]
    recs.append(data[off:off + 16 + incl]); off += 16 + incl
tampered = bytearray(recs[1]); tampered[16 + 14 + 30] ^= 1          # sequenceId of a signed frame
open(dst, 'wb').write(hdr + b''.join(recs) + bytes(tampered) + recs[-2])  # + a replay
PY
"$dataplane" -l 0 --no-huge -m 256 --no-pci --file-prefix ptpsec-demo \
  --vdev "net_pcap0,rx_pcap=$out/stripped.pcap,tx_pcap=$out/inside-out.pcap" \
  --vdev "net_pcap1,rx_pcap=$out/outside-in.pcap,tx_pcap=$out/outside-out.pcap" \
  -- --sa-file "$sa_linuxptp" --sign 2:1 --outside-policy verify-strip --idle-exit 300 \
     --events both --event-dump "$out/events.bin" 2>&1 | grep -v '^EAL\|^TELEMETRY'
echo "signed on the way out (outside-out.pcap):  $("$ctl" pcap verify --sa-file "$sa_linuxptp" "$out/outside-out.pcap" | tail -n 1)"
echo "stripped on the way in (inside-out.pcap):  $("$ctl" pcap verify --sa-file "$sa_linuxptp" "$out/inside-out.pcap" | tail -n 1)"
echo "timing-event records for attestation (events.bin, 96 octets each): $(( $(stat -c %s "$out/events.bin") / 96 ))"

echo "-- the same frames, ICVs computed on a DPDK crypto device (--crypto-dev; here crypto_openssl, the software"
echo "   stand-in for a SmartNIC's crypto block):"
"$dataplane" -l 0 --no-huge -m 256 --no-pci --file-prefix ptpsec-demo-cdev --vdev crypto_openssl0 \
  --vdev "net_pcap0,rx_pcap=$out/stripped.pcap,tx_pcap=$out/cdev-inside-out.pcap" \
  --vdev "net_pcap1,rx_pcap=$out/outside-in.pcap,tx_pcap=$out/cdev-outside-out.pcap" \
  -- --sa-file "$sa_linuxptp" --sign 2:1 --outside-policy verify-strip --idle-exit 300 --crypto-dev crypto_openssl0 \
  2>&1 | grep -E 'ptpsec-dataplane:|\[sign\]|\[verify-strip\]'
"$ctl" pcap show "$out/cdev-outside-out.pcap" > "$out/cdev-outside-out.txt"
"$ctl" pcap show "$out/outside-out.pcap" > "$out/outside-out.txt"
if cmp -s "$out/cdev-outside-out.txt" "$out/outside-out.txt"; then
  echo "signed on the crypto device: every frame the same as signed by intel-ipsec-mb above"
else
  echo "signed on the crypto device: frames DIFFER from intel-ipsec-mb's"; exit 1
fi

step "8. Live: both captures replayed in a loop through the data plane for 4 seconds (hugepages, 2 lcores)"
echo "   inside->outside signs every frame; outside->inside verifies the first pass and drops every repeat as a replay"
"$dataplane" -l 0-1 --no-pci --huge-unlink --file-prefix ptpsec-demo-live \
  --vdev "net_pcap0,rx_pcap=$out/stripped.pcap,infinite_rx=1,tx_pcap=/dev/null" \
  --vdev "net_pcap1,rx_pcap=$capture,infinite_rx=1,tx_pcap=/dev/null" \
  -- --sa-file "$sa_linuxptp" --sign 2:1 --outside-policy verify-strip --stats-interval 1 \
  > "$out/live.txt" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
tail -n +1 -f --pid=$pid "$out/live.txt" | grep -v '^EAL\|^TELEMETRY' &
tailer=$!
sleep 4
kill -INT "$pid"
wait "$pid"
trap - EXIT
wait "$tailer" 2>/dev/null || true
echo "data plane stopped cleanly (SIGINT, exit status 0)"

# EAL leaves its runtime directory behind; nothing else of these runs stays.
rm -rf /var/run/dpdk/ptpsec-demo /var/run/dpdk/ptpsec-demo-live /var/run/dpdk/ptpsec-demo-cdev

step "9. The host's TPM 2.0 (swtpm, manufactured with an EK certificate): the Registrar enrols its signing key"
echo "   (EK certificate, a credential sealed to the EK, a quote of the PCR profile); the next two steps rely on it"
att="$out/attest"
rm -rf "$att" && mkdir -p "$att/tpm" "$att/evidence"
# Two free TCP ports on loopback for swtpm: the server's and, next to it, the
# control port (the swtpm TCTI uses port + 1).
tpm_port=$(python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()')
tpm_ctrl=$((tpm_port + 1))
# The TPM is "manufactured" first (swtpm_setup): EKs and EK certificates from
# a CA of its own, which plays the TPM vendor's.
mkdir -p "$att/vendor-ca"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
  "$att/vendor-ca" "$att/vendor-ca" "$att/vendor-ca" "$att/vendor-ca" > "$att/localca.conf"
printf -- '--platform-manufacturer ptpsec-demo\n--platform-version 1\n--platform-model swtpm\n' > "$att/localca.options"
printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n' \
  "$att/localca.conf" "$att/localca.options" > "$att/swtpm_setup.conf"
swtpm_setup --tpm2 --tpmstate "$att/tpm" --create-ek-cert --ecc --config "$att/swtpm_setup.conf" > "$att/swtpm_setup.txt" 2>&1
cat "$att/vendor-ca/swtpm-localca-rootca-cert.pem" "$att/vendor-ca/issuercert.pem" > "$att/vendor-ca.pem"
swtpm socket --tpm2 --server "type=tcp,port=$tpm_port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$tpm_ctrl,bindaddr=127.0.0.1" \
  --flags not-need-init,startup-clear --tpmstate "dir=$att/tpm" > "$att/swtpm.txt" 2>&1 &
tpm=$!
trap 'kill -TERM $tpm 2>/dev/null || true; wait $tpm 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$tpm_port") 2>/dev/null && break; sleep 0.1; done
tcti="swtpm:host=127.0.0.1,port=$tpm_port"
for pcr in 0 1 2 3 4 5 6 7; do echo "$pcr $(printf '0%.0s' $(seq 64))"; done > "$att/pcr-profile.txt"
"$ctl" registrar enrol --db "$att/registrar.db" --signer-id demo-host --tpm "$tcti" \
  --expected-pcrs "$att/pcr-profile.txt" --ek-ca "$att/vendor-ca.pem"

step "10. Keys from the key server: ptpsec-controld serves the group over TLS 1.3 (client certificates) and, as the"
echo "    node, pushes each key into the data plane, which signs with it; keys live 10 s, so one rotates meanwhile."
echo "    The server releases keys only to a node whose TPM quotes the enrolled PCR profile over the same TLS session"
pki="$out/pki"
rm -rf "$pki" && mkdir -p "$pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 2 -subj "/CN=ptpsec demo CA" 2>/dev/null
for who in server node1; do
  if [ "$who" = server ]; then ext="subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
  else ext="subjectAltName=DNS:node1.demo.example\nextendedKeyUsage=clientAuth"; fi
  openssl req "${ec[@]}" -keyout "$pki/$who.key" -out "$pki/$who.csr" -subj "/CN=$who" 2>/dev/null
  openssl x509 -req -in "$pki/$who.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -out "$pki/$who.pem" -extfile <(printf "$ext") 2>/dev/null
done
rm -f "$pki/controld.db"*
cat > "$pki/controld.toml" <<TOML
[server]
listen = ["127.0.0.1"]
port = 14460
certificate = "server.pem"
private-key = "server.key"
ca = "ca.pem"
state = "controld.db"
registrar = "$att/registrar.db"

[node]
server = "127.0.0.1"
port = 14460
server-name = "localhost"
certificate = "node1.pem"
private-key = "node1.key"
ca = "ca.pem"
groups = ["demo"]
dataplane-prefix = "ptpsec-demo-keys"

[node.attestation]
signer-id = "demo-host"
tcti = "$tcti"
pcrs = [0, 1, 2, 3, 4, 5, 6, 7]

[[group]]
name = "demo"
domain = 0
algorithm = "aes-cmac-128"
lifetime = 10
update-period = 5
grace-period = 1

[[client]]
san = "DNS:node1.demo.example"
groups = ["demo"]
attest = "demo-host"
TOML
"$controld" --config "$pki/controld.toml" > "$out/keys-controld.txt" 2>&1 &
kd=$!
trap 'kill -TERM $kd $tpm 2>/dev/null || true; wait $kd $tpm 2>/dev/null || true' EXIT
# The data plane starts once the node holds its first key.
for _ in $(seq 50); do grep -q 'key(s) held' "$out/keys-controld.txt" && break; sleep 0.1; done
"$dataplane" -l 0-1 --no-pci --huge-unlink --file-prefix ptpsec-demo-keys \
  --vdev "net_pcap0,rx_pcap=$out/stripped.pcap,infinite_rx=1,tx_pcap=/dev/null" \
  --vdev "net_pcap1,rx_pcap=$out/stripped.pcap,tx_pcap=/dev/null" \
  -- --sign 1 --replay-window 0 --stats-interval 4 > "$out/keys-dataplane.txt" 2>&1 &
dp=$!
trap 'kill -TERM $kd $dp $tpm 2>/dev/null || true; wait $kd $dp $tpm 2>/dev/null || true' EXIT
tail -n +1 -f --pid=$dp "$out/keys-dataplane.txt" | grep -v '^EAL\|^TELEMETRY' | grep -E 'inside->outside|SA updates|ptpsec-dataplane' &
tailer=$!
sleep 3
echo "-- SAs in the data plane (ptpsecctl sa list):"
"$ctl" sa list --file-prefix ptpsec-demo-keys
sleep 9
echo "-- 12 s later, after a rotation:"
"$ctl" sa list --file-prefix ptpsec-demo-keys
kill -INT "$kd"; wait "$kd"
kill -INT "$dp"; wait "$dp"
trap 'kill -TERM $tpm 2>/dev/null || true; wait $tpm 2>/dev/null || true' EXIT
wait "$tailer" 2>/dev/null || true
grep -v '^EAL\|^TELEMETRY' "$out/keys-controld.txt" | grep -E 'NTS-KE server|key requests|platform|group demo|node \(at exit\)'
echo "key server and data plane stopped cleanly (SIGINT, exit status 0)"
rm -rf /var/run/dpdk/ptpsec-demo-keys

step "11. Attestation: the same TPM signs every timing event in Merkle batches while traffic flows; the online"
echo "    Verifier checks each batch as it is written and challenges the data plane with fresh nonces"
# The online Verifier (ptpsec-controld [verifier]) checks each batch as the
# data plane writes it, and gives the data plane a fresh nonce every second
# that its later batches must carry, holding the signer configured for it
# (its first try, before the data plane is up, fails and is counted).
cat > "$att/verifier.toml" <<TOML
[verifier]
registrar = "registrar.db"
audit = "sqlite:audit.db"
logs = ["evidence"]
poll-ms = 1000
challenge = ["ptpsec-demo-attest"]
nonce-interval = 1

[verifier.challenge-signers]
ptpsec-demo-attest = "demo-host"

[admin]
socket = "verifier.sock"
TOML
"$controld" --config "$att/verifier.toml" > "$att/verifier.txt" 2>&1 &
vd=$!
trap 'kill -TERM $vd $tpm 2>/dev/null || true; wait $vd $tpm 2>/dev/null || true' EXIT
# A paced stream (5,000 frames a second for 5 s) of the stripped capture
# into the inside port, through a FIFO; the signed capture once into the
# outside one.
mkfifo "$att/inside.fifo"
python3 "$top/scripts/pcap-feed.py" "$out/stripped.pcap" "$att/inside.fifo" --rate 5000 --seconds 5 \
  > "$att/feed.txt" 2>&1 &
feed=$!
"$dataplane" -l 0 --no-pci --huge-unlink --file-prefix ptpsec-demo-attest \
  --vdev "net_pcap0,rx_pcap=$att/inside.fifo,tx_pcap=/dev/null" \
  --vdev "net_pcap1,rx_pcap=$capture,tx_pcap=/dev/null" \
  -- --sa-file "$sa_linuxptp" --sign 2:1 --outside-policy verify-strip --stats-interval 1 \
  --events both --attest tpm --attest-tcti "$tcti" --attest-signer-id demo-host \
  --attest-log "$att/evidence" > "$att/dataplane.txt" 2>&1 &
dp=$!
trap 'kill -TERM $dp $vd $tpm $feed 2>/dev/null || true; wait $dp $vd $tpm $feed 2>/dev/null || true' EXIT
: >> "$att/dataplane.txt"
tail -n +1 -f --pid=$dp "$att/dataplane.txt" | grep --line-buffered -E '^attestation \(' &
tailer=$!
tail -n +1 -f --pid=$vd "$att/verifier.txt" | grep --line-buffered -E 'verifier \(live\)|FAILED' &
vtailer=$!
wait "$feed"
sleep 1
kill -INT "$dp"; wait "$dp"
wait "$tailer" 2>/dev/null || true
sleep 1
echo "-- the online Verifier, after the stop (ptpsecctl status):"
"$ctl" status --controld-socket "$att/verifier.sock" | sed -n '/^verifier/,/^admin socket/p' | grep -v '^admin socket'
kill -INT "$vd"; wait "$vd"
wait "$vtailer" 2>/dev/null || true
kill -TERM "$tpm"; wait "$tpm" 2>/dev/null || true
trap - EXIT
echo "-- the same log checked offline against the Registrar (ptpsecctl evidence verify):"
"$ctl" evidence verify --registrar "$att/registrar.db" "$att/evidence"
echo "-- who saw Sync sequenceId 5 of the grandmaster, and when (ptpsecctl evidence query seen, from the audit"
echo "   store the online Verifier filled; the stream loops, so each sequenceId comes round again):"
"$ctl" evidence query seen --gm 22d81afffebc61ed-1 --seq 5 --audit "sqlite:$att/audit.db" | tail -n 3
rm -rf /var/run/dpdk/ptpsec-demo-attest

step "Done: files in $out"
