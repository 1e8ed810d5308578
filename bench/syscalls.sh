#!/usr/bin/env bash
# Counts the system calls an echo server makes per short connection: starts the server,
# attaches `strace -f -c` to it (every thread), runs a fixed number of short connections
# (connect, 64 B, verified echo, close), detaches, and prints calls per connection by
# name, side by side for each server, with the total per connection.
#
#   bench/syscalls.sh                          startup-server and epoll_echo
#   bench/syscalls.sh startup-server           one server (or: epoll_echo)
#
# Scale with environment variables (defaults in brackets):
#   CONNS [4000]  CLIENTS [8]  PAYLOAD [64]
#   SS_ARGS [""]: more startup-server options, e.g. "--threads 2"
#   BUILD_DIR [build/release] (an ASan build works too: leak checking is turned off, as
#     LeakSanitizer cannot run under a tracer)
#
# strace slows the server, not the counts. Everything binds 127.0.0.1; the server and
# strace are stopped by their PIDs.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
servers=()
for arg in "$@"; do
  case $arg in
    startup-server|epoll_echo) servers+=("$arg") ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "syscalls.sh: unknown argument '$arg' (try --help)" >&2; exit 64 ;;
  esac
done
[ ${#servers[@]} -gt 0 ] || servers=(startup-server epoll_echo)
CONNS=${CONNS:-4000}
CLIENTS=${CLIENTS:-8}
PAYLOAD=${PAYLOAD:-64}
SS_ARGS=${SS_ARGS:-}
BUILD_DIR=${BUILD_DIR:-$root/build/release}

SS=$BUILD_DIR/startup-server
LG=$BUILD_DIR/bench/loadgen
EE=$BUILD_DIR/bench/epoll_echo

log() { printf 'syscalls: %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
command -v strace >/dev/null 2>&1 || { log "strace is not installed (Debian: strace)"; exit 1; }
ensure_built startup-server loadgen epoll_echo -- "$SS" "$LG" "$EE" || exit 1
# LeakSanitizer stops under ptrace; an ASan build still runs with leak checking off.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-syscalls.XXXXXX")
srv_pid=
tracer=
cleanup() {
  [ -n "$tracer" ] && stop_pid "$tracer"
  [ -n "$srv_pid" ] && stop_pid "$srv_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Measures one server: writes "$tmp/NAME.counts" (NAME CALLS per line) and "$tmp/NAME.conns".
count_calls() {
  local name=$1 cmd
  # shellcheck disable=SC2206 # SS_ARGS is a list of options
  case $name in
    startup-server) cmd=("$SS" -a 127.0.0.1 -s 0 --announce --announce-format='{port}' --backlog 1024 $SS_ARGS) ;;
    epoll_echo) cmd=("$EE" -b 1024) ;;
  esac
  start_announcing "$tmp/$name.port" "$tmp/$name.err" "${cmd[@]}"
  [ -n "$srv_port" ] || { log "$name did not start: $(tail -n 3 "$tmp/$name.err")"; return 1; }
  strace -f -c -o "$tmp/$name.strace" -p "$srv_pid" 2>"$tmp/$name.strace-err" &
  tracer=$!
  # strace reports on stderr once it has attached to every thread.
  for _ in $(seq 100); do
    grep -q 'attached' "$tmp/$name.strace-err" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.2
  local out
  out=$("$LG" short --label "$name" --port "$srv_port" --clients "$CLIENTS" --payload "$PAYLOAD" \
    --count "$CONNS" --max-seconds 120 --conn-timeout 30)
  local rc=$?
  printf '  %s\n' "$out" >&2
  sleep 0.2
  # SIGINT makes strace detach and write its summary.
  kill -INT "$tracer" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$tracer" 2>/dev/null || break; sleep 0.05; done
  stop_pid "$tracer"
  tracer=
  stop_pid "$srv_pid"
  srv_pid=
  [ "$rc" = 0 ] || { log "$name: the load generator failed (exit $rc)"; return 1; }
  sed -n 's/.* conns=\([0-9]*\) .*/\1/p' <<<"$out" >"$tmp/$name.conns"
  # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $NF, $4 }' "$tmp/$name.strace" >"$tmp/$name.counts"
  [ -s "$tmp/$name.counts" ] || { log "$name: no strace summary: $(head -n 3 "$tmp/$name.strace-err")"; return 1; }
}

measured=()
for s in "${servers[@]}"; do
  log "$s: $CONNS connections, $CLIENTS clients, $PAYLOAD B"
  count_calls "$s" && measured+=("$s")
done
[ ${#measured[@]} -gt 0 ] || exit 1

# The table: one row per system call, calls per connection for each server, sorted by the
# first server's count; then the total.
args=()
for s in "${measured[@]}"; do args+=("$s" "$(cat "$tmp/$s.conns")" "$tmp/$s.counts"); done
awk -v n="${#measured[@]}" '
BEGIN {
  for (i = 1; i <= n; i++) { name[i] = ARGV[3 * i - 2]; conns[i] = ARGV[3 * i - 1]; file[i] = ARGV[3 * i]; ARGV[3 * i - 2] = ""; ARGV[3 * i - 1] = "" }
}
{
  for (i = 1; i <= n; i++) if (FILENAME == file[i]) break
  if (!($1 in seen)) { seen[$1] = 1; calls[++ncalls] = $1 }
  per[$1, i] = $2 / conns[i]; total[i] += $2 / conns[i]
}
END {
  for (a = 1; a <= ncalls; a++) key[a] = per[calls[a], 1] + 0
  for (a = 2; a <= ncalls; a++) for (b = a; b > 1 && key[b - 1] < key[b]; b--) {
    t = key[b]; key[b] = key[b - 1]; key[b - 1] = t; t = calls[b]; calls[b] = calls[b - 1]; calls[b - 1] = t
  }
  printf "%-22s", "calls per connection"
  for (i = 1; i <= n; i++) printf " %16s", name[i]
  printf "\n"
  for (a = 1; a <= ncalls; a++) {
    printf "%-22s", calls[a]
    for (i = 1; i <= n; i++) printf " %16s", ((calls[a], i) in per) ? sprintf("%.2f", per[calls[a], i]) : "-"
    printf "\n"
  }
  printf "%-22s", "total"
  for (i = 1; i <= n; i++) printf " %16.2f", total[i]
  printf "\n%-22s", "connections"
  for (i = 1; i <= n; i++) printf " %16d", conns[i]
  printf "\n"
}' "${args[@]}"
