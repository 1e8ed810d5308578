#!/usr/bin/env bash
# Turns loadgen result lines into results.md (tables of figures and ratios) and results.png.
#
#   bench/report.sh RESULTS.txt OUTDIR
#
# RESULTS.txt (written by run.sh) holds "# " lines describing the run, "result mode=...
# label=... key=value ... rc=N" lines from loadgen (several rounds of a measurement are
# reduced to the round with the median figure) and "failure: ..." lines. Run it alone to
# redraw results.md and results.png from saved results.
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: report.sh RESULTS.txt OUTDIR" >&2; exit 64; }
results=$1 outdir=$2
mkdir -p "$outdir"
data=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-report.XXXXXX")
trap 'rm -rf "$data"' EXIT

awk -v data="$data" '
function field(line, key,   n, i, a) {
  n = split(line, a, " ")
  for (i = 1; i <= n; i++) if (index(a[i], key "=") == 1) return substr(a[i], length(key) + 2)
  return ""
}
function primary(mode) { return mode == "stream" ? "mb_per_s" : mode == "idle" ? "bytes_per_conn" : mode == "launch" ? "first_answer_ms_p50" : "conns_per_s" }
# The round with the median primary figure stands for the measurement.
function pick(k,   n, i, j, t, idx, val) {
  n = count[k]
  for (i = 1; i <= n; i++) { idx[i] = i; val[i] = field(lines[k, i], primary(modes[k])) + 0 }
  for (i = 2; i <= n; i++) for (j = i; j > 1 && val[idx[j - 1]] > val[idx[j]]; j--) { t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
  return lines[k, idx[int((n + 1) / 2)]]
}
function failed(k,   i, bad) { bad = 0; for (i = 1; i <= count[k]; i++) if (field(lines[k, i], "rc") != "0") bad++; return bad }
function status(k,   bad) {
  bad = failed(k)
  if (bad == 0) return "yes"
  return "**no** (" bad "/" count[k] " failed)"
}
function pretty(label,   prog) {
  if (label == "startup-server") return "startup-server (default threads)"
  if (label == "startup-server-t1") return "startup-server --threads 1"
  if (label == "startup-server-t2") return "startup-server --threads 2"
  if (label == "startup-server--wait") return "startup-server --wait"
  if (label == "epoll_echo") return "epoll_echo (reference)"
  if (label == "socat") return "socat fork PIPE"
  if (label == "tcpserver") return "tcpserver cat"
  if (label == "ncat") return "ncat --exec /bin/cat"
  if (index(label, ":")) {
    prog = substr(label, index(label, ":") + 1)
    label = substr(label, 1, index(label, ":") - 1)
    if (label == "startup-server") return "startup-server --exec /bin/" prog
    if (label == "tcpserver") return "tcpserver /bin/" prog
    if (label == "ncat") return "ncat --exec /bin/" prog
    if (label == "socat") return "socat fork EXEC:/bin/" prog
  }
  return label
}
function pct(a, b) { return (b + 0 > 0 && a != "") ? sprintf("%.0f%%", 100 * a / b) : "n/a" }
function met(ok) { return ok ? "yes" : "**no**" }
# Server CPU per connection, only from a round that succeeded (a failed round has few).
function cpu(l,   v) { v = field(l, "server_cpu_us_per_conn"); return (v == "" || field(l, "rc") != "0") ? "n/a" : v }

/^# / { meta[++nmeta] = substr($0, 3); next }
/^failure: / { failures[++nfail] = substr($0, 10); next }
/^result / {
  mode = field($0, "mode"); label = field($0, "label"); k = mode SUBSEP label
  if (!(k in count)) { keys[++nkeys] = k; modes[k] = mode; labels[k] = label }
  count[k]++
  lines[k, count[k]] = $0
}

END {
  for (i = 1; i <= nkeys; i++) best[keys[i]] = pick(keys[i])
  ref_short = field(best["short" SUBSEP "epoll_echo"], "conns_per_s")
  ref_stream = field(best["stream" SUBSEP "epoll_echo"], "mb_per_s")

  print "# startup-server benchmark results"
  print ""
  for (i = 1; i <= nmeta; i++) print "- " meta[i]
  print ""
  print "Figures are the median round; *vs epoll_echo* and *vs tcpserver* are ratios within this run."
  print ""

  # Headline: the targets of the performance issue.
  ss_short = field(best["short" SUBSEP "startup-server"], "conns_per_s")
  ss_stream = field(best["stream" SUBSEP "startup-server"], "mb_per_s")
  ss_idle = field(best["idle" SUBSEP "startup-server"], "bytes_per_conn")
  ss_idle_n = field(best["idle" SUBSEP "startup-server"], "connections")
  ss_launch = field(best["launch" SUBSEP "startup-server"], "first_answer_ms_p50")
  ss_wait = field(best["launch" SUBSEP "startup-server--wait"], "wait_return_ms_p50")
  print "## Headline"
  print ""
  print "| figure | measured | target | met |"
  print "|---|---|---|---|"
  if (ss_short != "" && ref_short + 0 > 0)
    print "| echo short-connection rate vs epoll_echo | " pct(ss_short, ref_short) " (" ss_short " vs " ref_short " conns/s) | >= 95% | " met(ss_short + 0 >= 0.95 * ref_short) " |"
  if (ss_stream != "" && ref_stream + 0 > 0)
    print "| echo stream throughput vs epoll_echo | " pct(ss_stream, ref_stream) " (" ss_stream " vs " ref_stream " MB/s) | >= 100% | " met(ss_stream + 0 >= ref_stream + 0) " |"
  if (ss_idle != "")
    print "| PSS per idle echo connection (" ss_idle_n " held) | " ss_idle " bytes | <= 2048 bytes | " met(ss_idle + 0 <= 2048) " |"
  split("true cat", progs, " ")
  for (p = 1; p <= 2; p++) {
    a = field(best["spawn" SUBSEP "startup-server:" progs[p]], "conns_per_s")
    b = field(best["spawn" SUBSEP "tcpserver:" progs[p]], "conns_per_s")
    if (a != "" && b + 0 > 0)
      print "| exec spawn rate vs tcpserver, /bin/" progs[p] " | " pct(a, b) " (" a " vs " b " conns/s) | >= 100% | " met(a + 0 >= b + 0) " |"
  }
  if (ss_launch != "")
    print "| launch to first answered connection (median) | " ss_launch " ms | <= 10 ms | " met(ss_launch + 0 <= 10) " |"
  if (ss_wait != "" && ss_wait + 0 >= 0)
    print "| `--wait` returns, from exec (median) | " ss_wait " ms | <= 10 ms | " met(ss_wait + 0 <= 10) " |"
  print ""

  print "## Echo: short connections (connect, send, read the echo, verify, close)"
  print ""
  print "| server | conns/s | vs epoll_echo | p50 µs | p99 µs | server CPU µs/conn | verified |"
  print "|---|---:|---:|---:|---:|---:|---|"
  for (i = 1; i <= nkeys; i++) {
    k = keys[i]; if (modes[k] != "short") continue
    l = best[k]; r = field(l, "conns_per_s")
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", pretty(labels[k]), r, pct(r, ref_short), field(l, "p50_us"), field(l, "p99_us"), cpu(l), status(k)
    printf "\"%s\" %s\n", labels[k], r + 0 > (data "/short.dat")
  }
  print ""

  print "## Echo: one stream, sending and receiving at once, verified byte by byte"
  print ""
  print "| server | MB/s | vs epoll_echo | verified |"
  print "|---|---:|---:|---|"
  for (i = 1; i <= nkeys; i++) {
    k = keys[i]; if (modes[k] != "stream") continue
    l = best[k]; r = field(l, "mb_per_s")
    printf "| %s | %s | %s | %s |\n", pretty(labels[k]), r, pct(r, ref_stream), status(k)
    printf "\"%s\" %s\n", labels[k], r + 0 > (data "/stream.dat")
  }
  print ""

  print "## Idle connections: server memory (PSS of the server and its children)"
  print ""
  print "| server | connections held | PSS bytes/conn | private bytes/conn | PSS before → after (KiB) | processes after | ok |"
  print "|---|---:|---:|---:|---|---:|---|"
  for (i = 1; i <= nkeys; i++) {
    k = keys[i]; if (modes[k] != "idle") continue
    l = best[k]
    printf "| %s | %s | %s | %s | %s → %s | %s | %s |\n", pretty(labels[k]), field(l, "connections"), field(l, "bytes_per_conn"), field(l, "private_bytes_per_conn"), field(l, "pss_before_kib"), field(l, "pss_after_kib"), field(l, "processes_after"), status(k)
    # Log scale: zero (no user-space state at all) is drawn at 1 and labelled 0.
    v = field(l, "bytes_per_conn") + 0
    printf "\"%s\" %s %s\n", labels[k], (v < 1 ? 1 : v), v > (data "/idle.dat")
  }
  print ""

  print "## Exec: spawn rate (connect, send, half-close, read to EOF, close)"
  print ""
  print "| server | conns/s | vs tcpserver | p50 µs | p99 µs | server CPU µs/conn | verified |"
  print "|---|---:|---:|---:|---:|---:|---|"
  for (i = 1; i <= nkeys; i++) {
    k = keys[i]; if (modes[k] != "spawn") continue
    l = best[k]; r = field(l, "conns_per_s")
    prog = substr(labels[k], index(labels[k], ":") + 1)
    ref = field(best["spawn" SUBSEP "tcpserver:" prog], "conns_per_s")
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", pretty(labels[k]), r, pct(r, ref), field(l, "p50_us"), field(l, "p99_us"), cpu(l), status(k)
    printf "\"%s\" %s\n", labels[k], r + 0 > (data "/spawn.dat")
  }
  print ""

  print "## Launch: from fork/exec to the first answered connection"
  print ""
  print "| server | median ms | min ms | max ms | command returned (ms) | ok |"
  print "|---|---:|---:|---:|---:|---|"
  for (i = 1; i <= nkeys; i++) {
    k = keys[i]; if (modes[k] != "launch") continue
    l = best[k]; w = field(l, "wait_return_ms_p50")
    printf "| %s | %s | %s | %s | %s | %s |\n", pretty(labels[k]), field(l, "first_answer_ms_p50"), field(l, "first_answer_ms_min"), field(l, "first_answer_ms_max"), (w == "" ? "" : w), status(k)
  }
  print ""

  if (nfail > 0) {
    print "## Failures"
    print ""
    for (i = 1; i <= nfail; i++) print "- " failures[i]
    print ""
  }
}
' "$results" >"$outdir/results.md" || exit 1

for f in short stream idle spawn; do
  [ -s "$data/$f.dat" ] || echo '"none" 1 0' >"$data/$f.dat"
done

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "report.sh: gnuplot not installed (Debian: gnuplot-nox): no chart" >&2
  exit 0
fi
terminal="pngcairo size 1400,1000 noenhanced font ',10'"
gnuplot -e 'set terminal' 2>/dev/null | grep -q pngcairo || terminal="png size 1400,1000 noenhanced"
gnuplot <<EOF || { echo "report.sh: gnuplot failed" >&2; exit 1; }
set terminal $terminal
set output '$outdir/results.png'
set multiplot layout 2,2 title "startup-server vs the epoll reference and peers (loopback, $(nproc) cores)"
set style fill solid 0.75 border -1
set boxwidth 0.7
set grid ytics
set xtics rotate by -25 nomirror
set ytics nomirror
set yrange [0:*]
set offsets 0.5, 0.5, 0, 0
set bmargin 6
set title "Echo short connections: conns/s (higher is better)"
plot '$data/short.dat' using 0:2:xtic(1) with boxes lc rgb "#4477aa" notitle, \
     '' using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
set title "Echo stream: MB/s each way (higher is better)"
plot '$data/stream.dat' using 0:2:xtic(1) with boxes lc rgb "#228833" notitle, \
     '' using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
set title "Idle connection: server PSS bytes per connection (log, lower is better)"
set logscale y
set yrange [1:*]
plot '$data/idle.dat' using 0:2:xtic(1) with boxes lc rgb "#cc6677" notitle, \
     '' using 0:2:(sprintf("%.0f", \$3)) with labels offset 0,0.8 notitle
unset logscale y
set yrange [0:*]
set title "Exec spawn rate: conns/s (higher is better)"
plot '$data/spawn.dat' using 0:2:xtic(1) with boxes lc rgb "#ddaa33" notitle, \
     '' using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
unset multiplot
EOF
