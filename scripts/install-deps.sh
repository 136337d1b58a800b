#!/usr/bin/env bash
# Installs the Debian 12 packages ptpsec needs to build, test, run and
# benchmark (with --lint, also clang-format and clang-tidy). Idempotent:
# installs only what is missing; non-interactive.
# chrony, which `make bench` compares against, is not installed but unpacked
# into the bench build (scripts/unpack-chrony.sh).
set -euo pipefail
. "$(dirname "$0")/apt.sh"

packages=(
  # toolchain
  g++ clang libclang-rt-14-dev make meson ninja-build pkg-config python3
  # llvm-symbolizer: the sanitizers name the functions in their reports with
  # it, and the LeakSanitizer suppressions (tests/hsm) match those names
  llvm
  # the end-to-end test: a real PTP stack in network namespaces
  linuxptp iproute2 ethtool
  # libraries
  dpdk dpdk-dev libipsec-mb-dev libssl-dev libpcap-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libsqlite3-dev libtomlplusplus-dev
  # attestation: TPM 2.0 (tpm2-tss; swtpm is the TPM of the tests and the
  # demo), PKCS#11 (p11-kit; SoftHSM2 is the token of the tests), CBOR, and
  # PostgreSQL's C++ client for the audit store
  libtss2-dev swtpm swtpm-tools tpm2-tools softhsm2 libp11-kit-dev p11-kit libcbor-dev libpqxx-dev
  # tests: a second COSE/CBOR implementation to check the evidence format
  python3-cbor2 python3-cryptography
  # tests: Nettle, an AES-SIV independent of OpenSSL (as chrony uses it)
  nettle-dev
  # tests: PostgreSQL's programs; the audit store tests start private servers
  # (initdb into a temporary directory), never the system's
  postgresql
  # tests: certificates and keys made with the openssl command
  openssl
  # tests: memcheck checks that the ICV comparison is constant-time
  valgrind
)

# `make lint` asks for the two tools it runs as well.
if [ "${1:-}" = "--lint" ]; then
  packages+=(clang-format clang-tidy)
fi

mapfile -t missing < <(apt_missing "${packages[@]}")

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

apt_root "deps: missing packages (${missing[*]})"

# The PostgreSQL clusters there are before (VERSION/NAME per line).
clusters() {
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}'
  fi
}
clusters_before=$(clusters)

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Debian's postgresql package makes a default cluster and starts it. The
# tests need only the programs: remove a cluster this installation made, so
# that no database server is left running, or starting at boot, because of
# ptpsec. A cluster that was there before is left alone.
for c in $(clusters); do
  if ! grep -qx "$c" <<< "$clusters_before"; then
    $sudo pg_dropcluster --stop "${c%%/*}" "${c#*/}"
    echo "deps: removed the empty PostgreSQL cluster $c that the postgresql package made (the tests start their own)"
  fi
done
