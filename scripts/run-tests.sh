#!/usr/bin/env bash
# Runs every test suite of the normal build and of the sanitizer build, then
# prints one closing line: "N passed, M failed" (meson tests).
set -uo pipefail

normal=${1:-build}
asan=${2:-build-asan}
status=0

run() {
  local dir=$1; shift
  echo "== meson test -C $dir $*"
  if ! meson test -C "$dir" --print-errorlogs "$@"; then
    status=1
  fi
}

run "$normal" --no-suite fuzz
run "$asan"

python3 - "$normal" "$asan" <<'PY'
import json, sys
passed = failed = 0
for d in sys.argv[1:]:
    try:
        with open(f"{d}/meson-logs/testlog.json") as f:
            for line in f:
                r = json.loads(line)
                if r.get("result") == "OK":
                    passed += 1
                elif r.get("result") not in ("SKIP", "EXPECTEDFAIL"):
                    failed += 1
    except FileNotFoundError:
        failed += 1
print(f"{passed} passed, {failed} failed")
PY
exit $status
