#!/bin/sh
# Runs every libFuzzer target for SECONDS seconds on a scratch copy of its
# seed corpus (tests/fuzz/corpus/<target>/ is never grown by a run).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
# Exits nonzero if any target crashes, leaks, or trips an assertion; the
# crashing input is kept in the scratch directory, whose path is printed.
set -u
if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS" >&2
	exit 2
fi
build=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ordo-fuzz.XXXXXX")
targets="fuzz_check_submit fuzz_ordered fuzz_applied fuzz_entries fuzz_small fuzz_epoch fuzz_recovery fuzz_raft_msg fuzz_bulk"
failed=""
for t in $targets; do
	exe="$build/tests/fuzz/$t"
	if [ ! -x "$exe" ]; then
		echo "$t: $exe not built (meson setup with CC=clang -Dfuzz=true)" >&2
		failed="$failed $t"
		continue
	fi
	mkdir -p "$scratch/$t/corpus" "$scratch/$t/artifacts"
	cp "$here/corpus/$t/"* "$scratch/$t/corpus/" 2>/dev/null || true
	echo "== $t: ${seconds}s"
	if "$exe" -max_len=9000 -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$scratch/$t/artifacts/" "$scratch/$t/corpus" \
		>"$scratch/$t/log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$scratch/$t/log" | tail -2
	else
		echo "$t: FAILED; log and crashing input in $scratch/$t" >&2
		tail -40 "$scratch/$t/log" >&2
		failed="$failed $t"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz failures:$failed (kept $scratch)" >&2
	exit 1
fi
rm -rf "$scratch"
echo "all fuzz targets ran clean"
