#!/usr/bin/env bash
# Thread scaling for short echo connections: startup-server `--threads 1` and `--threads 2`
# next to epoll_echo, with the server and the load generator pinned to cores (taskset), the
# median of several rounds each; prints connections/s and server CPU µs per connection.
#
#   bench/scaling.sh
#
# Placement (cores numbered from 0; LOADGEN_CORE [0], SERVER_CORES [the other cores]):
#   t1            startup-server --threads 1 on SERVER_CORES, load generator on LOADGEN_CORE
#   t2            startup-server --threads 2 on SERVER_CORES
#   t2-all-cores  startup-server --threads 2 on every core, the load generator's included
#   epoll_echo    the reference (one thread) on SERVER_CORES
# With 2 cores SERVER_CORES is one core: t2 then measures two threads sharing a core, and
# t2-all-cores gives the second thread a core that the load generator needs too. Neither
# shows scaling on its own; both bound it.
#
# Scale with environment variables (defaults in brackets):
#   ROUNDS [3]  SECONDS_PER_ROUND [3]  CLIENTS [8]  PAYLOAD [64]  CONFIGS ["t1 t2 t2-all-cores epoll_echo"]
#   SS_ARGS [""]: more startup-server options for every startup-server row
#   BUILD_DIR [build/release]
#
# Everything binds 127.0.0.1; every server started here is stopped by its PID.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown argument '$arg' (try --help)" >&2; exit 64 ;;
  esac
done
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3}
CLIENTS=${CLIENTS:-8}
PAYLOAD=${PAYLOAD:-64}
CONFIGS=${CONFIGS:-t1 t2 t2-all-cores epoll_echo}
SS_ARGS=${SS_ARGS:-}
BUILD_DIR=${BUILD_DIR:-$root/build/release}
cores=$(nproc)
LOADGEN_CORE=${LOADGEN_CORE:-0}
case $cores in
  1) others=0 ;;
  2) others=1 ;;
  *) others=1-$(( cores - 1 )) ;;
esac
SERVER_CORES=${SERVER_CORES:-$others}
ALL_CORES=0-$(( cores - 1 ))

SS=$BUILD_DIR/startup-server
LG=$BUILD_DIR/bench/loadgen
EE=$BUILD_DIR/bench/epoll_echo

log() { printf 'scaling: %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
command -v taskset >/dev/null 2>&1 || { log "taskset is not installed (Debian: util-linux)"; exit 1; }
ensure_built startup-server loadgen epoll_echo -- "$SS" "$LG" "$EE" || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-scaling.XXXXXX")
srv_pid=
cleanup() {
  [ -n "$srv_pid" ] && stop_pid "$srv_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The server command of a configuration, with its cores in front.
server_command() {
  local ss=("$SS" -a 127.0.0.1 -s 0 --announce --announce-format='{port}' --backlog 1024)
  # shellcheck disable=SC2206 # SS_ARGS is a list of options
  case $1 in
    t1) cmd=(taskset -c "$SERVER_CORES" "${ss[@]}" --threads 1 $SS_ARGS) ;;
    t2) cmd=(taskset -c "$SERVER_CORES" "${ss[@]}" --threads 2 $SS_ARGS) ;;
    t2-all-cores) cmd=(taskset -c "$ALL_CORES" "${ss[@]}" --threads 2 $SS_ARGS) ;;
    epoll_echo) cmd=(taskset -c "$SERVER_CORES" "$EE" -b 1024) ;;
    *) log "unknown configuration $1"; return 1 ;;
  esac
}

: >"$tmp/raw"
failed=0
# Rounds interleave the configurations, so drifting background load hits each alike.
for round in $(seq "$ROUNDS"); do
  for c in $CONFIGS; do
    server_command "$c" || exit 64
    start_announcing "$tmp/$c.port" "$tmp/$c.err" "${cmd[@]}"
    if [ -z "$srv_port" ]; then
      log "$c did not start: $(tail -n 3 "$tmp/$c.err")"
      stop_pid "$srv_pid"; srv_pid=; failed=1; continue
    fi
    # taskset execs the server, so srv_pid is the server itself (CPU accounting by --pid).
    out=$(taskset -c "$LOADGEN_CORE" "$LG" short --label "$c" --port "$srv_port" --pid "$srv_pid" \
      --clients "$CLIENTS" --payload "$PAYLOAD" --duration "$SECONDS_PER_ROUND" --count 100000000 \
      --max-seconds $(( ${SECONDS_PER_ROUND%.*} + 30 )))
    rc=$?
    stop_pid "$srv_pid"
    srv_pid=
    log "round $round: $out"
    if [ "$rc" != 0 ]; then failed=1; continue; fi
    echo "$out" >>"$tmp/raw"
  done
done

# The median of the rounds, separately for each column.
awk -v order="$CONFIGS" -v ss_cores="$SERVER_CORES" -v lg_core="$LOADGEN_CORE" -v all="$ALL_CORES" '
function field(line, key,   n, i, a) {
  n = split(line, a, " ")
  for (i = 1; i <= n; i++) if (index(a[i], key "=") == 1) return substr(a[i], length(key) + 2)
  return ""
}
function median(k, col,   n, i, j, t, v) {
  n = count[k]
  for (i = 1; i <= n; i++) v[i] = field(lines[k, i], col) + 0
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
  return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ k = field($0, "label"); lines[k, ++count[k]] = $0 }
END {
  split(order, names, " ")
  desc["t1"] = "startup-server --threads 1"; cpus["t1"] = ss_cores
  desc["t2"] = "startup-server --threads 2"; cpus["t2"] = ss_cores
  desc["t2-all-cores"] = "startup-server --threads 2"; cpus["t2-all-cores"] = all
  desc["epoll_echo"] = "epoll_echo (reference)"; cpus["epoll_echo"] = ss_cores
  ref = ("epoll_echo" in count) ? median("epoll_echo", "conns_per_s") : 0
  printf "| server | server cores | load generator core | rounds | conns/s (median) | vs epoll_echo | server CPU µs/conn (median) | server CPU use |\n"
  printf "|---|---|---|---:|---:|---:|---:|---:|\n"
  for (i = 1; names[i] != ""; i++) {
    k = names[i]; if (!(k in count)) continue
    r = median(k, "conns_per_s")
    printf "| %s | %s | %s | %d | %.0f | %s | %.1f | %.2f |\n", desc[k], cpus[k], lg_core, count[k], r,
      (ref > 0 ? sprintf("%.0f%%", 100 * r / ref) : "n/a"), median(k, "server_cpu_us_per_conn"), median(k, "server_cpu_util")
  }
}' "$tmp/raw"
exit "$failed"
