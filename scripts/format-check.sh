#!/usr/bin/env bash
# Fails when any tracked C file differs from .clang-format's layout.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h')
bad=$(echo "$files" | xargs clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
if [ "${bad:-0}" -ne 0 ]; then
  echo "format-check: $bad places differ from .clang-format; run 'make format'" >&2
  echo "$files" | xargs clang-format --dry-run 2>&1 | grep 'warning:' | head -20 >&2
  exit 1
fi
echo "format-check: $(echo "$files" | wc -l) files formatted"
