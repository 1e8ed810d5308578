#!/usr/bin/env bash
# Builds and runs the whole test suite twice: optimised, then under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
for preset in release asan; do
  echo "== $preset build" >&2
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  ctest --preset "$preset" -j2
done
