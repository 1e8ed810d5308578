#!/usr/bin/env bash
# Turns the soak's soak.txt into soak.md (the verdict and the samples) and soak.png (RSS,
# descriptors and verified bytes over time for each server). Exits 1 when the soak failed:
# an error, a server gone, or RSS or descriptors that are not flat.
#
#   bench/soak-report.sh SOAK.txt OUTDIR
#
# Flat means, for each server:
#   RSS          the last sample under load is at most RSS_SLACK_PCT % + RSS_SLACK_KIB KiB
#                above the first sample after the warm-up (allocators and caches fill up
#                during the warm-up; a leak keeps growing after it);
#   descriptors  no sample under load is above the count before the load + 4 per client (a
#                connection holds at most a socket, two pipes and a child's pidfd), and after
#                the load the count is back to exactly where it started;
#   children     none left after the load.
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: soak-report.sh SOAK.txt OUTDIR" >&2; exit 64; }
results=$1 outdir=$2
mkdir -p "$outdir"
data=$(mktemp -d "${TMPDIR:-/tmp}/startup-server-soak-report.XXXXXX")
trap 'rm -rf "$data"' EXIT

awk -v data="$data" -v verdict="$data/verdict" '
function field(line, key,   n, i, a) {
  n = split(line, a, " ")
  for (i = 1; i <= n; i++) if (index(a[i], key "=") == 1) return substr(a[i], length(key) + 2)
  return ""
}
function group(n,   s) { s = sprintf("%.0f", n); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]([,]|$)/, ",&", s); return s }
function add_name(l) { if (!(l in seen)) { seen[l] = 1; names[++nnames] = l } }

/^# / { meta[++nmeta] = substr($0, 3); next }
/^failure: / { failures[++nfail] = substr($0, 10); next }
/^config / {
  clients = field($0, "clients"); warmup = field($0, "warmup"); sample_s = field($0, "sample")
  slack_pct = field($0, "rss_slack_pct"); slack_kib = field($0, "rss_slack_kib"); next
}
/^(baseline|load|quiet) / {
  l = field($0, "label"); add_name(l); t = field($0, "t") + 0
  rss = field($0, "rss_kib") + 0; fds = field($0, "fds") + 0; kids = field($0, "children") + 0
  if ($1 == "baseline") { base_rss[l] = rss; base_fds[l] = fds }
  else if ($1 == "quiet") { quiet_fds[l] = fds; quiet_kids[l] = kids; quiet_rss[l] = rss }
  else {
    n = ++nload[l]; lt[l, n] = t; lrss[l, n] = rss; lfds[l, n] = fds
    if (!(t in tseen)) { tseen[t] = 1; times[++ntimes] = t }
    if (!(l in warm_rss) && t >= warmup + 0) { warm_rss[l] = rss; warm_t[l] = t }
    if (fds > peak_fds[l]) peak_fds[l] = fds
    printf "%.3f %.3f %d\n", t / 60, rss / 1024, fds > (data "/" l ".dat")
  }
  next
}
/^progress / {
  l = field($0, "label"); t = field($0, "seconds") + 0
  k = sprintf("%.0f", t / sample_s) * sample_s
  progress[l, k] = field($0, "bytes_verified")
  printf "%.3f %.4f\n", t / 60, field($0, "bytes_verified") / 1e9 > (data "/" l ".bytes")
  next
}
/^result / {
  l = field($0, "label"); add_name(l); result[l] = $0
  printf "%.3f %.4f\n", field($0, "seconds") / 60, field($0, "bytes_verified") / 1e9 > (data "/" l ".bytes")
  next
}

END {
  bad = nfail
  print "# startup-server soak results"
  print ""
  for (i = 1; i <= nmeta; i++) print "- " meta[i]
  print ""
  print "## Verdict"
  print ""
  print "| server | connections (short / lines / streams) | bytes verified | errors | RSS KiB: start → after warm-up → last (limit) | descriptors: start / peak (limit) / after | children after | flat |"
  print "|---|---|---:|---:|---|---|---:|---|"
  for (i = 1; i <= nnames; i++) {
    l = names[i]; r = result[l]; n = nload[l]
    errors = (r == "") ? "no result" : field(r, "errors")
    if (r == "" || errors + 0 > 0 || field(r, "conns") + 0 == 0) bad++
    total_bytes += field(r, "bytes_verified"); total_conns += field(r, "conns"); total_errors += field(r, "errors")
    if (!(l in warm_rss) && n > 0) { warm_rss[l] = lrss[l, 1]; warm_t[l] = lt[l, 1] }
    last = lrss[l, n]
    limit = warm_rss[l] + int(warm_rss[l] * slack_pct / 100) + slack_kib
    fd_limit = base_fds[l] + 4 * clients
    rss_ok = n > 0 && last <= limit
    fds_ok = n > 0 && (l in quiet_fds) && quiet_fds[l] == base_fds[l] && peak_fds[l] <= fd_limit
    kids_ok = (l in quiet_kids) && quiet_kids[l] == 0
    flat = rss_ok && fds_ok && kids_ok
    if (!flat) bad++
    printf "| %s | %s (%s / %s / %s) | %s | %s | %s → %s (t=%ss) → %s (≤ %s) %s | %s / %s (≤ %s) / %s %s | %s | %s |\n", \
      l, group(field(r, "conns")), group(field(r, "short")), group(field(r, "lines")), group(field(r, "streams")), \
      group(field(r, "bytes_verified")), errors, group(base_rss[l]), group(warm_rss[l]), warm_t[l], group(last), group(limit), \
      (rss_ok ? "" : "**grew**"), base_fds[l], peak_fds[l], fd_limit, (l in quiet_fds ? quiet_fds[l] : "?"), (fds_ok ? "" : "**leak**"), \
      (l in quiet_kids ? quiet_kids[l] : "?"), (flat ? "yes" : "**no**")
  }
  print ""
  printf "Total: **%s bytes verified** over %s connections, **%s errors**.\n\n", group(total_bytes), group(total_conns), total_errors + 0
  print "## Samples under load"
  print ""
  head = "| t (s) |"; rule = "|---:|"
  for (i = 1; i <= nnames; i++) { head = head " " names[i] " RSS KiB | " names[i] " fds | " names[i] " MB verified |"; rule = rule "---:|---:|---:|" }
  print head; print rule
  for (j = 1; j <= ntimes; j++) {
    t = times[j]; row = "| " t " |"
    for (i = 1; i <= nnames; i++) {
      l = names[i]; rss = ""; fds = ""
      for (k = 1; k <= nload[l]; k++) if (lt[l, k] == t) { rss = group(lrss[l, k]); fds = lfds[l, k] }
      mb = ((l, t) in progress) ? group(progress[l, t] / 1e6) : ""
      row = row " " rss " | " fds " | " mb " |"
    }
    print row
  }
  print ""
  if (nfail > 0) {
    print "## Failures"
    print ""
    for (i = 1; i <= nfail; i++) print "- " failures[i]
    print ""
  }
  for (i = 1; i <= nnames; i++) print names[i] > (data "/names")
  print (bad ? "failed" : "passed") > verdict
}
' "$results" >"$outdir/soak.md" || exit 1

[ -f "$data/verdict" ] || { echo "soak-report.sh: nothing to report in $results" >&2; exit 1; }
status=0
[ "$(cat "$data/verdict")" = passed ] || status=1

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "soak-report.sh: gnuplot not installed (Debian: gnuplot-nox): no chart" >&2
  exit "$status"
fi
mapfile -t names <"$data/names"
rss_plot="" fds_plot="" bytes_plot=""
for n in "${names[@]}"; do
  [ -s "$data/$n.dat" ] || continue
  rss_plot+="${rss_plot:+, }'$data/$n.dat' using 1:2 with linespoints title '$n'"
  fds_plot+="${fds_plot:+, }'$data/$n.dat' using 1:3 with linespoints title '$n'"
  [ -s "$data/$n.bytes" ] && bytes_plot+="${bytes_plot:+, }'$data/$n.bytes' using 1:2 with linespoints title '$n'"
done
[ -n "$rss_plot" ] || { echo "soak-report.sh: no samples: no chart" >&2; exit "$status"; }
[ -n "$bytes_plot" ] || bytes_plot="1/0 notitle"
terminal="pngcairo size 1200,1100 noenhanced font ',10'"
gnuplot -e 'set terminal' 2>/dev/null | grep -q pngcairo || terminal="png size 1200,1100 noenhanced"
gnuplot <<EOF || { echo "soak-report.sh: gnuplot failed" >&2; exit 1; }
set terminal $terminal
set output '$outdir/soak.png'
set multiplot layout 3,1 title "startup-server soak: echo, talk and --create-stream --exec cat at once (loopback, $(nproc) cores)"
set grid
set key top left
set xlabel "minutes"
set yrange [0:*]
set title "Server RSS (MiB): flat after the warm-up"
plot $rss_plot
set title "Server descriptors (/proc/PID/fd): bounded by the connections in flight"
plot $fds_plot
set title "Bytes verified (GB, cumulative)"
plot $bytes_plot
unset multiplot
EOF
exit "$status"
