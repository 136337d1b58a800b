#!/bin/bash
# Writes the seed corpus of ptpsec-fuzz-tpm-quote (fuzz/corpus/tpm) from a
# real TPM 2.0: swtpm, started here on loopback and stopped again, driven
# with tpm2-tools. Input layout: fuzz/tpm_quote_fuzz.cpp.
#
#   quote-pcr012:          PCRs 0-2 expected (octet 0 = 0x07), a TPM2_Quote of
#                          them with the nonce 00 01 .. 1f (the harness's)
#   public-restricted-p256: the public area (TPM2B_PUBLIC) of a restricted
#                          ECDSA P-256 signing key, as the signer makes it
#   public-unrestricted:   the same key without restricted
#   quote-given-signature: the quote with the TPM's own signature in the
#                          input (flag 1), which the harness's key refuses
#
# Run it again only to change the seeds; the files are committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/corpus/tpm"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
  --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" --tpmstate "dir=$work" \
  --flags not-need-init,startup-clear &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
attrs='fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|sign'
tpm2_createprimary -Q -C o -G ecc256:ecdsa-sha256:null -a "$attrs|restricted" -c "$work/key.ctx"
tpm2_readpublic -Q -c "$work/key.ctx" -f tss -o "$work/key.pub"
tpm2_quote -Q -c "$work/key.ctx" -l sha256:0,1,2 -q 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
  -m "$work/attest.bin" -s "$work/sig.der" -f plain
tpm2_flushcontext -t
tpm2_createprimary -Q -C o -G ecc256:ecdsa-sha256:null -a "$attrs" -c "$work/loose.ctx"
tpm2_readpublic -Q -c "$work/loose.ctx" -f tss -o "$work/loose.pub"
mkdir -p "$out"
python3 - "$work" "$out" <<'PY'
import sys
work, out = sys.argv[1], sys.argv[2]
def read(name):
    with open(f"{work}/{name}", "rb") as f:
        return f.read()
def der_to_raw(der):
    # SEQUENCE { INTEGER r, INTEGER s }, short lengths (P-256)
    assert der[0] == 0x30
    pos, halves = 2, []
    for _ in range(2):
        assert der[pos] == 0x02
        n = der[pos + 1]
        halves.append(der[pos + 2:pos + 2 + n].lstrip(b"\0").rjust(32, b"\0"))
        pos += 2 + n
    return b"".join(halves)
seeds = {
    "quote-pcr012": bytes([0x07, 0x00]) + read("attest.bin"),
    "public-restricted-p256": bytes([0x00, 0x00]) + read("key.pub"),
    "public-unrestricted": bytes([0x00, 0x00]) + read("loose.pub"),
    "quote-given-signature": bytes([0x07, 0x01]) + der_to_raw(read("sig.der")) + read("attest.bin"),
}
for name, data in seeds.items():
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} octets")
PY
