# shellcheck shell=bash
# Shell functions the bench scripts share (sourced, not run): reading --quick, starting a
# server that announces its port or one given a free port, running a client that prints a result line,
# and stopping what a script started, by PID only.
# Needs LG (the load generator) for start_on_free_port and stop_tree; client, raw, tmp and
# log for measure; root and BUILD_DIR for run_facts.

# Reads the arguments of a script that takes --quick and --help only: sets quick (1 or 0).
# --help prints the script's header comment, lines 2 to LAST, and exits 0; anything else
# is a usage error (exit 64).
# shellcheck disable=SC2034 # quick is the sourcing script's
parse_quick_args() {
  local last=$1 arg
  shift
  quick=0
  for arg in "$@"; do
    case $arg in
      --quick) quick=1 ;;
      -h|--help) sed -n "2,${last}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) echo "$(basename "$0"): unknown argument '$arg' (try --help)" >&2; exit 64 ;;
    esac
  done
}

# Starts "$@" in the background, a server that prints its port as the first line of its
# stdout (startup-server --announce-format='{port}', epoll_echo), with stdout in OUT and
# stderr appended to ERR. Sets srv_pid, and srv_port once the port appears (within 5 s),
# or leaves srv_port empty when the server exits or stays silent.
start_announcing() {
  local out=$1 err=$2
  shift 2
  "$@" >"$out" 2>>"$err" </dev/null &
  srv_pid=$!
  srv_port=
  for _ in $(seq 500); do
    srv_port=$(head -n 1 "$out" 2>/dev/null | tr -dc 0-9)
    [ -n "$srv_port" ] && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.01
  done
}

# Starts "$@" in the background, a server that cannot choose its own port: every {port} in
# its arguments becomes a free port. Its stdout is discarded and its stderr appended to ERR.
# Sets srv_pid (empty when no free port was found), and srv_port once the port accepts
# connections (within 5 s), or leaves srv_port empty.
start_on_free_port() {
  local err=$1 arg
  shift
  srv_pid=
  srv_port=$("$LG" free-port) || { srv_port=; return 0; }
  local args=()
  for arg in "$@"; do args+=("${arg//\{port\}/$srv_port}"); done
  "${args[@]}" >/dev/null 2>>"$err" </dev/null &
  srv_pid=$!
  "$LG" wait-port --port "$srv_port" --max-seconds 5 || srv_port=
}

# Runs the client (the array client: loadgen, or another that prints one "result mode=...
# label=... key=value ..." line) as: client MODE --label LABEL ARGS...; appends that line
# with rc=STATUS to raw, and on a non-zero exit a "failure:" line to tmp/failures.txt.
# A failure is recorded, not fatal.
# shellcheck disable=SC2154 # client, raw and tmp are the sourcing script's
measure() {
  local mode=$1 label=$2
  shift 2
  local out rc
  out=$("${client[@]}" "$mode" --label "$label" "$@" 2>"$tmp/client.err")
  rc=$?
  local line
  line=$(printf '%s\n' "$out" | grep '^result ' | tail -n 1)
  [ -n "$line" ] || line="result mode=$mode label=$label"
  printf '%s rc=%s\n' "$line" "$rc" >>"$raw"
  if [ "$rc" != 0 ]; then
    log "$mode $label: failed (exit $rc): $(head -n 1 "$tmp/client.err")"
    printf 'failure: %s %s: %s\n' "$mode" "$label" "$(head -n 3 "$tmp/client.err" | tr '\n' ' ')" >>"$tmp/failures.txt"
  fi
  printf '  %s\n' "$line" >&2
}

# Stops one process this shell started: SIGTERM, up to 5 s, then SIGKILL; reaps it.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# Field 22 of /proc/PID/stat: when PID started (empty once it is gone).
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  local -a fields
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

# A forking server's children can outlive it (a relay deadlocked on its own pipes): they are
# listed (PID:STARTTIME) before the server stops and ended after it, each by its PID, once
# its start time shows the PID still names the same process.
stop_tree() {
  local pid=$1 kids k
  kids=$("$LG" descendants --pid "$pid" 2>/dev/null)
  stop_pid "$pid"
  [ -n "$kids" ] || return 0
  for k in $kids; do [ "$(start_time "${k%%:*}")" = "${k##*:}" ] && kill -TERM "${k%%:*}" 2>/dev/null; done
  sleep 0.2
  for k in $kids; do [ "$(start_time "${k%%:*}")" = "${k##*:}" ] && kill -KILL "${k%%:*}" 2>/dev/null; done
  return 0
}

# Builds the named targets in BUILD_DIR when one of the binaries given after -- is missing.
ensure_built() {
  local targets=() missing=0
  while [ $# -gt 0 ] && [ "$1" != -- ]; do targets+=("$1"); shift; done
  shift
  for bin in "$@"; do [ -x "$bin" ] || missing=1; done
  [ "$missing" = 0 ] && return 0
  if [ -f "$BUILD_DIR/build.ninja" ] || [ -f "$BUILD_DIR/Makefile" ]; then
    log "building ${targets[*]} in $BUILD_DIR"
    cmake --build "$BUILD_DIR" --target "${targets[@]}" >&2
  else
    log "no build in $BUILD_DIR: run 'cmake --preset release && cmake --build --preset release' first"
    return 1
  fi
}

# The facts of a run that results files start with: date, the build measured, the machine.
run_facts() {
  # shellcheck disable=SC2154 # root is the sourcing script's
  local top=$root
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  local rev
  rev=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$top" diff --quiet HEAD -- src include 2>/dev/null || rev="$rev + uncommitted changes in src/"
  echo "startup-server: commit $rev, built in ${BUILD_DIR#"$top"/}"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
}
