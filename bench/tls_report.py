#!/usr/bin/env python3
"""Turns the lines bench/tls.sh collects into tls-results.md, printed on stdout.

  tls_report.py RESULTS.txt

RESULTS.txt holds "# " lines describing the run, "note: " lines, "result mode=... label=...
key=value ... rc=N" lines from tls_client.py (several rounds of a measurement are reduced
to the round with the median figure) and "failure: " lines.
"""

import sys

NAMES = {
    "startup-server": "startup-server `--echo`",
    "startup-server-exec": "startup-server `--create-stream --exec /bin/cat`",
    "socat": "socat `OPENSSL-LISTEN,fork EXEC:/bin/cat`",
    "ncat": "ncat `--ssl -k --exec /bin/cat`",
}
REFERENCE = "startup-server-exec"


def fields(line):
    return dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)


def median_round(rounds, key):
    """The round whose KEY is the median of the rounds that succeeded, or None."""
    ok = sorted((r for r in rounds if r.get("rc") == "0" and r.get(key, "-") != "-"), key=lambda r: float(r[key]))
    return ok[(len(ok) - 1) // 2] if ok else None


def number(value, digits=0):
    return "—" if value is None else f"{float(value):,.{digits}f}"


def ratio(value, reference):
    if value is None or reference is None or float(reference) == 0:
        return "—"
    return f"{100 * float(value) / float(reference):.0f}%"


def main(path):
    facts, notes, failures, results = [], [], [], {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# "):
                facts.append(line[2:])
            elif line.startswith("note: "):
                notes.append(line[6:])
            elif line.startswith("failure: "):
                failures.append(line[9:])
            elif line.startswith("result "):
                r = fields(line)
                measurement = r["mode"] if r["mode"] == "stream" else f"handshake-{r.get('clients', '1')}"
                results.setdefault(r["label"], {}).setdefault(measurement, []).append(r)
    clients = sorted({m for rounds in results.values() for m in rounds if m.startswith("handshake")},
                     key=lambda m: int(m.split("-")[1]))

    def pick(label, measurement, key):
        rounds = results.get(label, {}).get(measurement, [])
        return median_round(rounds, key), rounds

    out = ["# TLS serving: startup-server and its peers", ""]
    out += [f"- {fact}" for fact in facts]
    out += ["", "Figures are the median round. Percentages are against startup-server "
            "`--create-stream --exec /bin/cat` in the same run, which like the peers runs a "
            "child per connection. *CPU* is the server's CPU time, its reaped children "
            "included, per handshake or per MB echoed; the client, one Python process, is "
            "the bottleneck where *client CPU* nears 1.0.", ""]
    head = ["server"]
    for m in clients:
        n = m.split("-")[1]
        head += [f"handshakes/s, {n} client{'s' if n != '1' else ''}", "vs", "CPU µs/handshake"]
    head += ["stream MB/s", "vs", "CPU ms/MB", "client CPU (1 client, stream)", "failed measurements"]
    out += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label in results:
        row = [NAMES.get(label, label)]
        failed = total = 0
        loads = []
        for m in clients + ["stream"]:
            key = "mb_per_s" if m == "stream" else "conns_per_s"
            cpu_key = "server_cpu_ms_per_mb" if m == "stream" else "server_cpu_us_per_conn"
            best, rounds = pick(label, m, key)
            ref, _ = pick(REFERENCE, m, key)
            failed += sum(r.get("rc") != "0" for r in rounds)
            total += len(rounds)
            value = best.get(key) if best else None
            row += [number(value, 1 if m == "stream" else 0), ratio(value, ref.get(key) if ref else None),
                    number(best.get(cpu_key) if best else None, 2 if m == "stream" else 0)]
            if m in ("handshake-1", "stream"):
                loads.append(best.get("client_cpu", "—") if best else "—")
        row += [", ".join(loads), f"{failed} of {total}"]
        out.append("| " + " | ".join(row) + " |")
    versions = sorted({f"{r.get('version')} {r.get('cipher')}" for rs in results.values() for m in rs.values()
                       for r in m if r.get("version", "-") != "-"})
    out += ["", f"Negotiated: {', '.join(versions) or 'nothing'}."]
    if notes or failures:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes] + [f"- failed: {x}" for x in failures]
    out += ["", "## Result lines", "", "```"]
    out += [line.rstrip("\n") for line in open(path) if line.startswith("result ")]
    out += ["```"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: tls_report.py RESULTS.txt", file=sys.stderr)
        sys.exit(64)
    sys.exit(main(sys.argv[1]))
