#!/usr/bin/env bash
# Everything `make test` runs, in order, ending with one closing line
# "N passed, M failed" (meson tests and fuzz targets; the format check
# counts as one). Exits nonzero if anything failed.
#   BUILD, FUZZ_BUILD, FUZZ_SECONDS: from the Makefile.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
passed=0
failed=0
log=$(mktemp)

if scripts/format-check.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

meson test -C "$BUILD" --print-errorlogs --num-processes 1 2>&1 | tee "$log"
ok=$(awk '/^Ok:/ {print $2}' "$log")
bad=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {s += $2} END {print s + 0}' "$log")
passed=$((passed + ${ok:-0}))
failed=$((failed + bad))
[ -z "$ok" ] && failed=$((failed + 1)) # meson itself failed

if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
  CC=clang meson setup "$FUZZ_BUILD" -Dfuzz=true -Dtests=true >/dev/null
fi
if ninja -C "$FUZZ_BUILD" fuzzers >/dev/null; then
  tests/fuzz/run.sh "$FUZZ_BUILD" "$FUZZ_SECONDS" 2>&1 | tee "$log"
  fz_ok=$(grep -c '^stat::number_of_executed_units' "$log")
  fz_bad=$(grep -c ': FAILED' "$log")
  passed=$((passed + fz_ok))
  failed=$((failed + fz_bad))
else
  echo "fuzz: the fuzz targets did not build" >&2
  failed=$((failed + 1))
fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
