#!/usr/bin/env bash
# Soak: one echo, one talk and one `--create-stream --exec /bin/cat` server, all running at
# once under minutes of mixed traffic (short connections, ping-pong lines, long streams),
# every byte verified; samples each server's RSS and descriptor count, then writes
# soak.txt, soak.md and soak.png and fails on any error or on growth.
#
#   bench/soak.sh            10 minutes, a sample every 30 s; results in bench/
#   bench/soak.sh --quick    1 minute, a sample every 5 s; results in build/soak-quick/
#
# Scale with environment variables (defaults: full / --quick):
#   SOAK_MINUTES [10/1]  SOAK_CLIENTS [16]  SOAK_SAMPLE [30/5 s]  SOAK_WARMUP [60/10 s]
#   SOAK_PAUSE_MS [50] (each client's pause between connections)  SOAK_STREAM_MAX [2M]
#   RSS_SLACK_PCT [10]  RSS_SLACK_KIB [1024] (allowed growth after the warm-up)
#   BUILD_DIR [build/release]  RESULTS_DIR [bench/ or build/soak-quick/]
#
# Everything binds 127.0.0.1; every server started here is stopped by its PID.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
parse_quick_args 16 "$@"

if [ "$quick" = 1 ]; then
  : "${SOAK_MINUTES:=1}" "${SOAK_SAMPLE:=5}" "${SOAK_WARMUP:=10}"
  RESULTS_DIR=${RESULTS_DIR:-$root/build/soak-quick}
fi
SOAK_MINUTES=${SOAK_MINUTES:-10}
SOAK_CLIENTS=${SOAK_CLIENTS:-16}
SOAK_SAMPLE=${SOAK_SAMPLE:-30}
SOAK_WARMUP=${SOAK_WARMUP:-60}
SOAK_PAUSE_MS=${SOAK_PAUSE_MS:-50}
SOAK_STREAM_MAX=${SOAK_STREAM_MAX:-2M}
RSS_SLACK_PCT=${RSS_SLACK_PCT:-10}
RSS_SLACK_KIB=${RSS_SLACK_KIB:-1024}
BUILD_DIR=${BUILD_DIR:-$root/build/release}
RESULTS_DIR=${RESULTS_DIR:-$here}

SS=$BUILD_DIR/startup-server
LG=$BUILD_DIR/bench/loadgen

log() { printf 'soak: %s\n' "$*" >&2; }
ensure_built startup-server loadgen -- "$SS" "$LG" || exit 1

seconds=$(awk -v m="$SOAK_MINUTES" 'BEGIN { s = int(m * 60 + 0.5); print (s < 1 ? 1 : s) }')
samples=$(( seconds / SOAK_SAMPLE ))
[ "$samples" -ge 1 ] || { log "SOAK_SAMPLE ($SOAK_SAMPLE s) is longer than the run ($seconds s)"; exit 64; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null
mkdir -p "$RESULTS_DIR"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-soak.XXXXXX")
raw=$tmp/soak.txt
declare -A pids=() ports=()
loadgen_pid=

cleanup() {
  [ -n "$loadgen_pid" ] && stop_pid "$loadgen_pid"
  local name
  for name in "${!pids[@]}"; do stop_tree "${pids[$name]}"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The three servers, each started as a user would start it.
server_command() {
  cmd=("$SS" -a 127.0.0.1 -s 0 --announce --announce-format='{port}' --backlog 1024)
  case $1 in
    talk) cmd+=(--talk) ;;
    cat) cmd+=(--create-stream --exec /bin/cat) ;;
  esac
}
names=(echo talk cat)
for name in "${names[@]}"; do
  server_command "$name"
  start_announcing "$tmp/$name.out" "$tmp/servers.err" "${cmd[@]}"
  pids[$name]=$srv_pid
  if [ -z "$srv_port" ]; then
    log "$name server did not start:"
    tail -n 5 "$tmp/servers.err" >&2
    exit 1
  fi
  ports[$name]=$srv_port
done

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
children() { "$LG" descendants --pid "$1" 2>/dev/null | wc -l; }

# One line per server: KIND t=SECONDS label=NAME rss_kib=N fds=N children=N.
sample() {
  local kind=$1 t=$2 name pid rss
  for name in "${names[@]}"; do
    pid=${pids[$name]}
    rss=$(rss_kib "$pid")
    if [ -z "$rss" ]; then
      echo "failure: $name server (PID $pid) is gone at t=$t" >>"$raw.fail"
      continue
    fi
    echo "$kind t=$t label=$name rss_kib=$rss fds=$(fd_count "$pid") children=$(children "$pid")" >>"$raw"
  done
}

: >"$raw"
sleep 0.5
sample baseline 0
log "echo on ${ports[echo]}, talk on ${ports[talk]}, cat on ${ports[cat]}: $SOAK_CLIENTS clients for ${seconds}s, a sample every ${SOAK_SAMPLE}s"
started_at=$(date +%s)
"$LG" soak --echo-port "${ports[echo]}" --talk-port "${ports[talk]}" --cat-port "${ports[cat]}" \
  --clients "$SOAK_CLIENTS" --duration "$seconds" --max-seconds $(( seconds + 60 )) \
  --pause-ms "$SOAK_PAUSE_MS" --stream-max "$SOAK_STREAM_MAX" --progress "$SOAK_SAMPLE" \
  >"$tmp/loadgen.out" 2>"$tmp/loadgen.err" &
loadgen_pid=$!
t0=$(date +%s.%N)

# A sample every SOAK_SAMPLE seconds while the clients run: a bounded count, each at its
# own time from the start (so slow sampling does not drift).
for i in $(seq "$samples"); do
  delay=$(awk -v t0="$t0" -v i="$i" -v s="$SOAK_SAMPLE" -v now="$(date +%s.%N)" \
    'BEGIN { d = t0 + i * s - now; printf "%.3f\n", (d > 0 ? d : 0) }')
  sleep "$delay"
  sample load $(( i * SOAK_SAMPLE ))
  kill -0 "$loadgen_pid" 2>/dev/null || break
done

wait "$loadgen_pid"
loadgen_rc=$?
loadgen_pid=
elapsed=$(( $(date +%s) - started_at ))

# After the load: each server's descriptors must return to where they started. A reaped
# child's descriptors close just after it leaves, so this waits up to 5 s for them.
for _ in $(seq 50); do
  settled=1
  for name in "${names[@]}"; do
    base=$(awk -v n="$name" '$1 == "baseline" && $3 == "label=" n { sub("fds=", "", $5); print $5 }' "$raw")
    [ "$(fd_count "${pids[$name]}")" = "$base" ] || settled=0
  done
  [ "$settled" = 1 ] && break
  sleep 0.1
done
sample quiet "$elapsed"

{
  run_facts
  echo "run: $( [ "$quick" = 1 ] && echo quick || echo full ), ${seconds}s of load, $SOAK_CLIENTS clients, ${SOAK_PAUSE_MS} ms pause between connections, streams up to $SOAK_STREAM_MAX"
  echo "samples: every ${SOAK_SAMPLE}s; warm-up ${SOAK_WARMUP}s; allowed RSS growth after it ${RSS_SLACK_PCT}% + ${RSS_SLACK_KIB} KiB"
  for name in "${names[@]}"; do
    server_command "$name"
    echo "server $name: ${cmd[*]#"$root"/}"
  done
} | sed 's/^/# /' >"$RESULTS_DIR/soak.txt"
echo "config clients=$SOAK_CLIENTS warmup=$SOAK_WARMUP sample=$SOAK_SAMPLE rss_slack_pct=$RSS_SLACK_PCT rss_slack_kib=$RSS_SLACK_KIB" >>"$RESULTS_DIR/soak.txt"
cat "$raw" >>"$RESULTS_DIR/soak.txt"
grep -E '^(progress|result) ' "$tmp/loadgen.out" >>"$RESULTS_DIR/soak.txt"
[ -f "$raw.fail" ] && cat "$raw.fail" >>"$RESULTS_DIR/soak.txt"
if [ "$loadgen_rc" != 0 ]; then
  echo "failure: the load generator exited $loadgen_rc" >>"$RESULTS_DIR/soak.txt"
  sed 's/^/failure: /' "$tmp/loadgen.err" | head -n 20 >>"$RESULTS_DIR/soak.txt"
fi
grep -q '^result ' "$tmp/loadgen.out" || echo "failure: no result from the load generator" >>"$RESULTS_DIR/soak.txt"

"$here/soak-report.sh" "$RESULTS_DIR/soak.txt" "$RESULTS_DIR"
verdict=$?
log "$( [ "$verdict" = 0 ] && echo passed || echo FAILED ) in ${elapsed}s: $RESULTS_DIR/soak.md, $RESULTS_DIR/soak.png"
exit "$verdict"
