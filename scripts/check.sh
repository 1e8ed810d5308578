#!/usr/bin/env bash
# Builds and runs the whole test suite three times: optimised, under ASan + UBSan, and under
# ThreadSanitizer with two server threads; then a short smoke run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
for preset in release asan tsan; do
  echo "== $preset build" >&2
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  ctest --preset "$preset" -j2
done
echo "== fuzz smoke run" >&2
scripts/fuzz.sh
