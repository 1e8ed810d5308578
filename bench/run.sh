#!/usr/bin/env bash
# Runs the benchmark in one go: startup-server, the epoll reference and the installed peers
# (socat, tcpserver, ncat) in every mode, then writes results.md and results.png.
#
#   bench/run.sh            full run (a few minutes on 2 cores); results in bench/
#   bench/run.sh --quick    smoke run (well under a minute); results in build/bench-quick/
#
# Scale with environment variables (defaults in brackets: full / --quick):
#   ROUNDS [3/1]  SHORT_SECONDS [3/0.5]  SHORT_CLIENTS [16/4]  PAYLOAD [64]
#   STREAM_BYTES [512M/16M]  STREAM_CHUNK [64K]  STREAM_SECONDS [30/10] (a stalled stream stops)
#   IDLE_CONNS [10000/300]  IDLE_PEER_CONNS [64/10] (forking peers: one process each)
#   SPAWN_SECONDS [3/0.5]  SPAWN_CLIENTS [8/2]  LAUNCH_REPEAT [10/2]
#   BACKLOG [1024]  LIMIT [1024] (peers' connection limit)  PEERS ["socat tcpserver ncat"]
#   BUILD_DIR [build/release]  RESULTS_DIR [bench/ or build/bench-quick/]
#   BASELINE [unset]: another startup-server binary (an earlier build) measured beside this
#     one in every startup-server mode, as "baseline", for before/after comparisons
#
# Everything binds 127.0.0.1; every server started here is stopped by its PID.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
parse_quick_args 16 "$@"

if [ "$quick" = 1 ]; then
  : "${ROUNDS:=1}" "${SHORT_SECONDS:=0.5}" "${SHORT_CLIENTS:=4}" "${STREAM_BYTES:=16M}" "${STREAM_SECONDS:=10}"
  : "${IDLE_CONNS:=300}" "${IDLE_PEER_CONNS:=10}" "${SPAWN_SECONDS:=0.5}" "${SPAWN_CLIENTS:=2}" "${LAUNCH_REPEAT:=2}"
fi
ROUNDS=${ROUNDS:-3}
SHORT_SECONDS=${SHORT_SECONDS:-3}
SHORT_CLIENTS=${SHORT_CLIENTS:-16}
PAYLOAD=${PAYLOAD:-64}
STREAM_BYTES=${STREAM_BYTES:-512M}
STREAM_CHUNK=${STREAM_CHUNK:-64K}
STREAM_SECONDS=${STREAM_SECONDS:-30}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_PEER_CONNS=${IDLE_PEER_CONNS:-64}
SPAWN_SECONDS=${SPAWN_SECONDS:-3}
SPAWN_CLIENTS=${SPAWN_CLIENTS:-8}
LAUNCH_REPEAT=${LAUNCH_REPEAT:-10}
BACKLOG=${BACKLOG:-1024}
LIMIT=${LIMIT:-1024}
PEERS=${PEERS:-socat tcpserver ncat}
BUILD_DIR=${BUILD_DIR:-$root/build/release}
if [ "$quick" = 1 ]; then RESULTS_DIR=${RESULTS_DIR:-$root/build/bench-quick}; else RESULTS_DIR=${RESULTS_DIR:-$here}; fi

SS=$BUILD_DIR/startup-server
LG=$BUILD_DIR/bench/loadgen
EE=$BUILD_DIR/bench/epoll_echo

log() { printf 'bench: %s\n' "$*" >&2; }

ensure_built startup-server loadgen epoll_echo -- "$SS" "$LG" "$EE" || exit 1

# Each peer runs only if installed (Debian: ucspi-tcp, ncat, socat; scripts/setup.sh --bench).
peers=()
for p in $PEERS; do
  if command -v "$p" >/dev/null 2>&1; then peers+=("$p"); else log "$p not installed: skipped"; fi
done

# 10,000 idle connections need descriptors on both sides; children inherit this limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$IDLE_CONNS" -gt $(( $(ulimit -n) - 64 )) ]; then
  IDLE_CONNS=$(( $(ulimit -n) - 64 ))
  log "descriptor limit $(ulimit -n): idle connections reduced to $IDLE_CONNS"
fi

mkdir -p "$RESULTS_DIR"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-bench.XXXXXX")
raw=$tmp/raw.txt
: >"$raw"

# ---------------------------------------------------------------------------------------
# Servers: started in the background, remembered by PID, stopped by PID.

declare -A started=()
srv_pid=
srv_port=

stop_server() {
  [ -n "$srv_pid" ] || return 0
  stop_tree "$srv_pid"
  unset "started[$srv_pid]"
  srv_pid=
}

cleanup() {
  local pid
  for pid in "${!started[@]}"; do stop_tree "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The command line of a server kind; {port} is replaced by a free port for peers that
# cannot choose their own. PROG is the exec program for the *-exec kinds.
server_command() {
  local kind=$1 prog=${2:-}
  local ss=("$SS" -a 127.0.0.1 -s 0 --announce --announce-format='{port}' --backlog "$BACKLOG")
  case $kind in
    startup-server) cmd=("${ss[@]}") ;;
    startup-server-t1) cmd=("${ss[@]}" --threads 1) ;;
    startup-server-t2) cmd=("${ss[@]}" --threads 2) ;;
    startup-server-exec) cmd=("${ss[@]}" --exec "$prog") ;;
    baseline) cmd=("$BASELINE" "${ss[@]:1}") ;;
    baseline-exec) cmd=("$BASELINE" "${ss[@]:1}" --exec "$prog") ;;
    epoll_echo) cmd=("$EE" -b "$BACKLOG") ;;
    socat) cmd=(socat "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=$BACKLOG,max-children=$LIMIT" PIPE) ;;
    socat-exec) cmd=(socat "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=$BACKLOG,max-children=$LIMIT" "EXEC:$prog") ;;
    # -H -R -l 0: no DNS or ident look-ups per connection (tcpserver at its fork/exec floor).
    tcpserver) cmd=(tcpserver -c "$LIMIT" -b "$BACKLOG" -HRl0 127.0.0.1 '{port}' cat) ;;
    tcpserver-exec) cmd=(tcpserver -c "$LIMIT" -b "$BACKLOG" -HRl0 127.0.0.1 '{port}' "$prog") ;;
    # ncat has no backlog option.
    ncat) cmd=(ncat -l --keep-open --max-conns "$LIMIT" --exec /bin/cat 127.0.0.1 '{port}') ;;
    ncat-exec) cmd=(ncat -l --keep-open --max-conns "$LIMIT" --exec "$prog" 127.0.0.1 '{port}') ;;
    *) log "unknown server kind $kind"; return 1 ;;
  esac
}

announces_port() { case $1 in startup-server*|baseline*|epoll_echo) return 0 ;; *) return 1 ;; esac; }

# Starts a server; sets srv_pid and srv_port. Returns non-zero when it does not come up.
start_server() {
  local kind=$1 prog=${2:-} name=${1}${2:+-$(basename "${2:-}")}
  server_command "$kind" "$prog" || return 1
  if announces_port "$kind"; then
    start_announcing "$tmp/$name.out" "$tmp/servers.err" "${cmd[@]}"
    started[$srv_pid]=$name
  else
    start_on_free_port "$tmp/servers.err" "${cmd[@]}"
    [ -n "$srv_pid" ] || return 1
    started[$srv_pid]=$name
  fi
  if [ -z "$srv_port" ]; then
    log "$name did not start (see its messages below)"
    tail -n 5 "$tmp/servers.err" >&2
    stop_server
    return 1
  fi
}

# The client of measure (lib.sh): a failed measurement is recorded, not fatal.
client=("$LG")

baseline_kinds=()
[ -n "${BASELINE:-}" ] && baseline_kinds=(baseline)
echo_kinds=(startup-server "${baseline_kinds[@]}" startup-server-t1 startup-server-t2 epoll_echo "${peers[@]}")
started_at=$(date +%s)

# ---------------------------------------------------------------------------------------
# short and stream, interleaved by round so drifting background load hits every server alike

for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS: echo short connections and stream"
  for kind in "${echo_kinds[@]}"; do
    start_server "$kind" || continue
    measure short "$kind" --port "$srv_port" --pid "$srv_pid" --clients "$SHORT_CLIENTS" --payload "$PAYLOAD" \
      --duration "$SHORT_SECONDS" --count 10000000 --max-seconds "$(awk -v s="$SHORT_SECONDS" 'BEGIN{print int(s)+30}')"
    measure stream "$kind" --port "$srv_port" --bytes "$STREAM_BYTES" --chunk "$STREAM_CHUNK" --max-seconds "$STREAM_SECONDS"
    stop_server
  done
done

# ---------------------------------------------------------------------------------------
# idle: a fresh server each, so its baseline is the memory of a server that served nothing

log "idle connections"
for kind in startup-server "${baseline_kinds[@]}" epoll_echo "${peers[@]}"; do
  n=$IDLE_CONNS
  case $kind in socat|tcpserver|ncat) n=$IDLE_PEER_CONNS ;; esac
  start_server "$kind" || continue
  measure idle "$kind" --port "$srv_port" --pid "$srv_pid" --connections "$n" --max-seconds 120
  stop_server
done

# ---------------------------------------------------------------------------------------
# spawn: one process per connection, /bin/true (no data) and /bin/cat (echo, then EOF)

spawn_kinds=(startup-server-exec)
[ -n "${BASELINE:-}" ] && spawn_kinds+=(baseline-exec)
for p in "${peers[@]}"; do spawn_kinds+=("$p-exec"); done
for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS: exec spawn rate"
  for prog in /bin/true /bin/cat; do
    payload=0
    [ "$prog" = /bin/cat ] && payload=$PAYLOAD
    for kind in "${spawn_kinds[@]}"; do
      start_server "$kind" "$prog" || continue
      measure spawn "${kind%-exec}:$(basename "$prog")" --port "$srv_port" --pid "$srv_pid" --clients "$SPAWN_CLIENTS" \
        --payload "$payload" --duration "$SPAWN_SECONDS" --count 10000000 \
        --max-seconds "$(awk -v s="$SPAWN_SECONDS" 'BEGIN{print int(s)+30}')"
      stop_server
    done
  done
done

# ---------------------------------------------------------------------------------------
# launch: from fork/exec of the server to its first answered connection

log "launch to first answered connection"
measure launch startup-server --repeat "$LAUNCH_REPEAT" --max-seconds 60 -- "$SS" -a 127.0.0.1 -s '{port}' --backlog "$BACKLOG"
measure launch startup-server--wait --repeat "$LAUNCH_REPEAT" --max-seconds 60 --wait-mode -- \
  "$SS" --wait -a 127.0.0.1 -s '{port}' --backlog "$BACKLOG"
measure launch epoll_echo --repeat "$LAUNCH_REPEAT" --max-seconds 60 -- "$EE" -p '{port}' -b "$BACKLOG"
for kind in "${peers[@]}"; do
  server_command "$kind" || continue
  measure launch "$kind" --repeat "$LAUNCH_REPEAT" --max-seconds 60 -- "${cmd[@]}"
done

# ---------------------------------------------------------------------------------------
# The report

elapsed=$(( $(date +%s) - started_at ))
{
  run_facts
  echo "run: $( [ "$quick" = 1 ] && echo quick || echo full ), $ROUNDS round(s), ${elapsed}s; backlog $BACKLOG, peer connection limit $LIMIT"
  echo "short: $SHORT_CLIENTS concurrent clients, $PAYLOAD-byte payload, ${SHORT_SECONDS}s per round"
  echo "stream: $STREAM_BYTES each way, $STREAM_CHUNK client buffers"
  echo "idle: $IDLE_CONNS connections (forking peers: $IDLE_PEER_CONNS)"
  echo "spawn: $SPAWN_CLIENTS concurrent clients, ${SPAWN_SECONDS}s per round"
  echo "launch: $LAUNCH_REPEAT launches each"
  for p in "${peers[@]}"; do
    case $p in
      tcpserver) pkg=ucspi-tcp ;;
      *) pkg=$p ;;
    esac
    echo "peer: $p $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo '?')"
  done
} | sed 's/^/# /' >"$RESULTS_DIR/results.txt"
cat "$raw" >>"$RESULTS_DIR/results.txt"
[ -f "$tmp/failures.txt" ] && cat "$tmp/failures.txt" >>"$RESULTS_DIR/results.txt"
"$here/report.sh" "$RESULTS_DIR/results.txt" "$RESULTS_DIR" || exit 1
log "done in ${elapsed}s: $RESULTS_DIR/results.md, $RESULTS_DIR/results.png"
