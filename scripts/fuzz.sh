#!/usr/bin/env bash
# Builds the fuzz preset and runs each fuzz target for a while on a copy of its seed corpus
# (fuzz/corpus/<target>/), so the repository is left as it was. See fuzz/README.md.
#
#   scripts/fuzz.sh                    the smoke run: every target for 10 s
#   scripts/fuzz.sh --long             the longer run by hand: every target for 600 s
#   scripts/fuzz.sh -t 60 cidr talk    these targets, 60 s each
#   FUZZ_SECONDS=120 scripts/fuzz.sh   every target for 120 s (the -t or --long default)
#
# A finding (crash-*, leak-*, timeout-*, oom-*) is kept in build/fuzz/findings/<target>/,
# its report is printed, and the script exits 1. Reproduce it with
# build/fuzz/fuzz/fuzz_<target> FILE; then fix it, add it to fuzz/corpus/<target>/ and make
# it a test in tests/unit_fuzz_regressions.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(cli resolve announce_format trace_format talk cidr proxy_header sockopt)
seconds="${FUZZ_SECONDS:-10}"
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --long) seconds="${FUZZ_SECONDS:-600}" ;;
    -t|--seconds) seconds="$2"; shift ;;
    --seconds=*) seconds="${1#--seconds=}" ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    *)
      [ -d "fuzz/corpus/$1" ] || { echo "fuzz.sh: no target $1 (targets: ${all_targets[*]})" >&2; exit 64; }
      targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
case "$seconds" in ''|*[!0-9]*|0) echo "fuzz.sh: seconds must be a positive whole number, not '$seconds'" >&2; exit 64 ;; esac

scripts/setup.sh
echo "== fuzz build" >&2
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$PWD"
failed=()
for t in "${targets[@]}"; do
  findings="$root/build/fuzz/findings/$t"
  mkdir -p "$findings" "$work/$t"
  cp -R "fuzz/corpus/$t/." "$work/$t/"
  seeds=$(find "$work/$t" -type f | wc -l)
  echo "== fuzz $t: $seconds s from $seeds seeds" >&2
  # Run from the scratch folder: whatever a target writes by accident stays out of the tree.
  status=0
  (cd "$work" && "$root/build/fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
     -rss_limit_mb=2048 -artifact_prefix="$findings/" "$work/$t" >"$work/$t.log" 2>&1) || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
  corpus=$(find "$work/$t" -type f | wc -l)
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t: FAILED (exit $status) after ${runs:-?} runs; findings in $findings" >&2
    grep -E -A30 '^==[0-9]+==|invariant failed|runtime error|ERROR: libFuzzer' "$work/$t.log" | head -60 >&2 || tail -n 40 "$work/$t.log" >&2
  else
    echo "fuzz: $t: ok, ${runs:-?} runs in $seconds s (${rate:-?}/s), corpus $seeds -> $corpus" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
