#!/usr/bin/env bash
# TLS serving: startup-server (built-in echo, and --create-stream --exec /bin/cat) next to
# the installed TLS peers (socat, ncat), all with one EC P-256 certificate made for the run
# and measured by one client (bench/tls_client.py); writes tls-results.md.
#
#   bench/tls.sh            full run (about 3 minutes on 2 cores); results in bench/
#   bench/tls.sh --quick    smoke run (about 30 s); results in build/tls-quick/
#
# Scale with environment variables (defaults in brackets: full / --quick):
#   ROUNDS [3/1]  HANDSHAKE_SECONDS [5/1]  HANDSHAKE_COUNT [20000] (connections at most)
#   CONCURRENT [4] (clients of the concurrent handshake measurement; 0 leaves it out)
#   STREAM_BYTES [64M/8M]  STREAM_SECONDS [60/20] (a stream that echoes nothing for 5 s stops)
#   TLS [1.3]: the client pins TLS 1.3 when every server speaks it; "any" takes 1.2 or later
#   PEERS ["socat ncat"]  BUILD_DIR [build/release]  RESULTS_DIR [bench/ or build/tls-quick/]
#
# Everything binds 127.0.0.1; every server started here is stopped by its PID.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
parse_quick_args 16 "$@"

if [ "$quick" = 1 ]; then
  : "${ROUNDS:=1}" "${HANDSHAKE_SECONDS:=1}" "${STREAM_BYTES:=8M}" "${STREAM_SECONDS:=20}"
fi
ROUNDS=${ROUNDS:-3}
HANDSHAKE_SECONDS=${HANDSHAKE_SECONDS:-5}
HANDSHAKE_COUNT=${HANDSHAKE_COUNT:-20000}
CONCURRENT=${CONCURRENT:-4}
STREAM_BYTES=${STREAM_BYTES:-64M}
STREAM_SECONDS=${STREAM_SECONDS:-60}
TLS=${TLS:-1.3}
PEERS=${PEERS:-socat ncat}
BUILD_DIR=${BUILD_DIR:-$root/build/release}
if [ "$quick" = 1 ]; then RESULTS_DIR=${RESULTS_DIR:-$root/build/tls-quick}; else RESULTS_DIR=${RESULTS_DIR:-$here}; fi

SS=$BUILD_DIR/startup-server
LG=$BUILD_DIR/bench/loadgen

log() { printf 'tls: %s\n' "$*" >&2; }

ensure_built startup-server loadgen -- "$SS" "$LG" || exit 1
for tool in python3 openssl; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is not installed"; exit 1; }
done

mkdir -p "$RESULTS_DIR"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-tls.XXXXXX")
raw=$tmp/raw.txt
notes=$tmp/notes.txt
: >"$raw"
: >"$notes"
srv_pid=
srv_port=

# The one server running at a time, and what a forking peer left of its children.
stop_server() {
  [ -n "$srv_pid" ] && stop_tree "$srv_pid"
  srv_pid=
}

cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# One key and certificate for every server, valid for the name localhost and 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/openssl.err" || {
  log "openssl could not make a certificate: $(tail -n 1 "$tmp/openssl.err")"
  exit 1
}
cert=$tmp/cert.pem key=$tmp/key.pem

kinds=(startup-server startup-server-exec)
for p in $PEERS; do
  if command -v "$p" >/dev/null 2>&1; then kinds+=("$p"); else echo "$p is not installed: skipped" >>"$notes"; fi
done

# Starts a server kind with its stderr in tmp/KIND.err; sets srv_pid and srv_port, and
# returns non-zero when it does not come up.
start_server() {
  local kind=$1 ss=("$SS" -a 127.0.0.1 -s 0 --announce --announce-format='{port}' --tls-cert "$cert" --tls-key "$key")
  case $kind in
    startup-server) start_announcing "$tmp/$kind.out" "$tmp/$kind.err" "${ss[@]}" --echo ;;
    startup-server-exec) start_announcing "$tmp/$kind.out" "$tmp/$kind.err" "${ss[@]}" --create-stream --exec /bin/cat ;;
    socat) start_on_free_port "$tmp/$kind.err" socat \
      "OPENSSL-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,cert=$cert,key=$key,verify=0" EXEC:/bin/cat ;;
    ncat) start_on_free_port "$tmp/$kind.err" ncat --ssl --ssl-cert "$cert" --ssl-key "$key" \
      -l -k 127.0.0.1 '{port}' --exec /bin/cat ;;
    *) log "unknown server kind $kind"; return 1 ;;
  esac
  [ -n "$srv_port" ] && return 0
  log "$kind did not start: $(tail -n 1 "$tmp/$kind.err")"
  echo "$kind did not start: $(tail -n 1 "$tmp/$kind.err")" >>"$notes"
  stop_server
  return 1
}

client=(python3 "$here/tls_client.py")
started_at=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------
# Which servers answer a handshake, and whether all of them speak TLS 1.3

log "checking that every server answers (TLS $TLS)"
answering=()
for kind in "${kinds[@]}"; do
  start_server "$kind" || continue
  if "${client[@]}" handshake --port "$srv_port" --ca "$cert" --tls "$TLS" --count 1 --max-seconds 10 >/dev/null 2>"$tmp/probe.err"; then
    answering+=("$kind")
  elif [ "$TLS" = 1.3 ] && "${client[@]}" handshake --port "$srv_port" --ca "$cert" --tls any --count 1 --max-seconds 10 >/dev/null 2>&1; then
    echo "$kind does not speak TLS 1.3: every server was measured with TLS 1.2 or later" >>"$notes"
    TLS=any
    answering+=("$kind")
  else
    echo "$kind did not answer a handshake: $(head -n 1 "$tmp/probe.err")" >>"$notes"
  fi
  stop_server
done

# ---------------------------------------------------------------------------------------
# Rounds: every server in turn, so that drifting background load hits all of them alike

deadline() { awk -v s="$1" 'BEGIN { print int(s) + 30 }'; }
for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS"
  for kind in "${answering[@]}"; do
    start_server "$kind" || continue
    common=(--port "$srv_port" --ca "$cert" --tls "$TLS" --pid "$srv_pid")
    measure handshake "$kind" "${common[@]}" --clients 1 --duration "$HANDSHAKE_SECONDS" \
      --count "$HANDSHAKE_COUNT" --max-seconds "$(deadline "$HANDSHAKE_SECONDS")"
    if [ "$CONCURRENT" -gt 0 ]; then
      measure handshake "$kind" "${common[@]}" --clients "$CONCURRENT" --duration "$HANDSHAKE_SECONDS" \
        --count "$HANDSHAKE_COUNT" --max-seconds "$(deadline "$HANDSHAKE_SECONDS")"
    fi
    measure stream "$kind" "${common[@]}" --bytes "$STREAM_BYTES" --max-seconds "$STREAM_SECONDS"
    stop_server
  done
done

# ---------------------------------------------------------------------------------------
# The report

# A peer logs the readiness check of each start (a TCP connection that never starts TLS).
for kind in "${answering[@]}"; do
  n=$(grep -c . "$tmp/$kind.err" 2>/dev/null)
  [ "${n:-0}" -gt 0 ] && echo "$kind wrote $n lines on stderr over $(( ROUNDS + 1 )) starts, the first: $(grep -m 1 . "$tmp/$kind.err")" >>"$notes"
done
elapsed=$(( $(date +%s) - started_at ))
{
  run_facts
  echo "load average before the run: $load_before (1, 5, 15 min)"
  echo "run: $( [ "$quick" = 1 ] && echo quick || echo full ), $ROUNDS round(s), ${elapsed}s"
  echo "client: bench/tls_client.py, $(python3 -c 'import ssl, sys; print("Python", sys.version.split()[0], "with", ssl.OPENSSL_VERSION)'), TLS $([ "$TLS" = 1.3 ] && echo '1.3 pinned' || echo '1.2 or later')"
  echo "certificate: EC P-256, self-signed, made for the run; every handshake is a full one (no resumption)"
  echo "handshake: ${HANDSHAKE_SECONDS}s or $HANDSHAKE_COUNT connections per measurement, 1 and $CONCURRENT clients"
  echo "stream: $STREAM_BYTES each way on one connection"
  for p in socat ncat; do
    [[ " ${answering[*]} " == *" $p "* ]] && echo "peer: $p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?')"
  done
} | sed 's/^/# /' >"$tmp/results.txt"
sed 's/^/note: /' "$notes" >>"$tmp/results.txt"
cat "$raw" >>"$tmp/results.txt"
[ -f "$tmp/failures.txt" ] && cat "$tmp/failures.txt" >>"$tmp/results.txt"
python3 "$here/tls_report.py" "$tmp/results.txt" >"$RESULTS_DIR/tls-results.md" || exit 1
log "done in ${elapsed}s: $RESULTS_DIR/tls-results.md"
