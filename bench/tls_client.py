#!/usr/bin/env python3
"""TLS client for bench/tls.sh: new connections per second and one connection's echo
throughput against any TLS echo server on loopback, every loop bounded in count and time.

  tls_client.py handshake --port P --ca CERT [--clients 1] [--duration 5] [--count 20000]
                          [--pid PID] [--tls 1.3|any] [--label NAME] [--max-seconds 30]
  tls_client.py stream --port P --ca CERT [--bytes 64M] [--chunk 64K] [--stall 5]
                       [--pid PID] [--tls 1.3|any] [--label NAME] [--max-seconds 60]

handshake: CLIENTS threads each open connections one after another until DURATION has
passed or COUNT connections were made in all. Each connection makes a full handshake (no
session resumption), verifies the server's certificate against CA for the name localhost,
sends one line, reads its echo, sends close_notify and closes. With --pid, the server's CPU
time (its own and its reaped children's, from /proc) is divided by the connections.

stream: one connection sends BYTES of a pseudo-random pattern while it reads the echo,
compares every byte with what was sent, then sends close_notify and waits for the server's
end of stream. A connection that echoes nothing for STALL seconds counts as stalled.
With --pid, the server's CPU time per MB echoed (10^6 bytes, counted once).

Both report client_cpu, the client's CPU seconds per second of the measurement: near 1.0,
the client (one Python thread at a time) bounds the rate, and the server CPU figures
compare servers better than the rates do.

Prints one line, "result mode=... key=value ...", and exits 0; 1 on a connection or
verification failure (the result line is still printed), 2 on a usage error (including a
host outside 127.0.0.0/8 and ::1), 3 when --max-seconds has passed.
"""

import argparse
import ipaddress
import os
import random
import select
import signal
import socket
import ssl
import sys
import threading
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
SOURCES = 32  # loopback source addresses 127.0.1.1..32, as loadgen uses
PERIOD = (1 << 20) - 3  # the stream pattern's period, a prime: a lost or repeated chunk cannot line up


def size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tls_client.py", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["handshake", "stream"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True, help="PEM certificate the server must present")
    p.add_argument("--tls", choices=["1.3", "any"], default="1.3", help="pin TLS 1.3, or take 1.2 or later")
    p.add_argument("--label", default="")
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--bytes", type=size, default=64 << 20)
    p.add_argument("--chunk", type=size, default=64 << 10)
    p.add_argument("--stall", type=float, default=5)
    a = p.parse_args(argv)
    try:
        if not ipaddress.ip_address(a.host).is_loopback:
            raise ValueError
    except ValueError:
        p.error(f"refusing {a.host}: only loopback literals (127.0.0.0/8, ::1) are allowed")
    if a.clients < 1 or a.count < 1 or a.bytes < 1 or not 1 <= a.chunk <= 1 << 20:
        p.error("--clients, --count, --bytes must be positive and --chunk at most 1M")
    return a


def context(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.tls == "1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def connect(a, n):
    """A TCP connection; IPv4 ones come from one of SOURCES loopback addresses, so the
    TIME_WAIT sockets of a run do not use up one address's ephemeral ports."""
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        if family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((f"127.0.1.{n % SOURCES + 1}", 0))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect((a.host, a.port))
        return s
    except BaseException:
        s.close()
        raise


def close_notify(tls):
    """Sends close_notify and closes without waiting for the server's, as most clients do."""
    try:
        tls.setblocking(False)
        tls.unwrap()
    except (ssl.SSLError, OSError):
        pass
    tls.close()


def server_cpu(pid):
    """Seconds of CPU that PID used: its own and its reaped children's (utime, stime, cutime,
    cstime; clock ticks, so 10 ms steps)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def client_cpu():
    return sum(os.times()[:2])


class Tally:
    def __init__(self, a):
        self.lock = threading.Lock()
        self.started = 0
        self.done = 0
        self.errors = 0
        self.first_errors = []
        self.version = self.cipher = "-"
        self.limit = a.count

    def claim(self):
        with self.lock:
            if self.started >= self.limit:
                return -1
            self.started += 1
            return self.started

    def error(self, what):
        with self.lock:
            self.errors += 1
            if len(self.first_errors) < 3:
                self.first_errors.append(what)


def one_connection(a, ctx, n, t):
    line = b"tls bench line %d\n" % n
    with connect(a, n) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            tls.sendall(line)
            got = b""
            while len(got) < len(line):
                part = tls.recv(len(line) - len(got))
                if not part:
                    raise ConnectionError(f"end of stream after {len(got)} of {len(line)} bytes")
                got += part
            if got != line:
                raise ValueError(f"echo differs: {got!r}")
            if n == 1:
                t.version, t.cipher = tls.version(), tls.cipher()[0]
        finally:
            close_notify(tls)


def handshake(a):
    ctx = context(a)
    t = Tally(a)
    stop_at = time.monotonic() + a.duration

    def worker():
        while time.monotonic() < stop_at:
            n = t.claim()
            if n < 0:
                return
            try:
                one_connection(a, ctx, n, t)
                with t.lock:
                    t.done += 1
            except (OSError, ssl.SSLError, ValueError) as e:
                t.error(f"{type(e).__name__}: {e}")

    cpu0, own0 = server_cpu(a.pid) if a.pid else 0, client_cpu()
    begin = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.clients)]
    for th in threads:
        th.start()
    for th in threads:
        while th.is_alive():
            th.join(0.5)
    elapsed = time.monotonic() - begin
    fields = [f"clients={a.clients}", f"conns={t.done}", f"seconds={elapsed:.2f}", f"conns_per_s={t.done / elapsed:.1f}",
              f"errors={t.errors}", f"version={t.version}", f"cipher={t.cipher}",
              f"client_cpu={(client_cpu() - own0) / elapsed:.2f}"]
    if a.pid and t.done:
        fields.append(f"server_cpu_us_per_conn={(server_cpu(a.pid) - cpu0) * 1e6 / t.done:.0f}")
    report(a, fields, t.first_errors)
    return 1 if t.errors else 0


class Pattern:
    """Bytes of stream offset o are pattern[o % PERIOD]; a window past the end avoids wrapping."""

    def __init__(self, chunk):
        base = random.Random(20261201).randbytes(PERIOD)
        self.data = base + base[: max(chunk, 1 << 17)]

    def at(self, offset, n):
        start = offset % PERIOD
        return self.data[start: start + n]


class Stream:
    """One connection driven by a single nonblocking thread through memory BIOs, so that
    sending never waits on reading or the other way round."""

    IN_FLIGHT = 1 << 18  # ciphertext made but not yet taken by the socket

    def __init__(self, a):
        self.a = a
        self.pat = Pattern(a.chunk)
        self.sock = connect(a, 0)
        self.sock.setblocking(False)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context(a).wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.unsent = memoryview(b"")
        self.sent = self.received = 0
        self.shaken = self.closing = self.eof = False
        self.own0 = self.cpu0 = 0
        self.begin = self.last_progress = time.monotonic()

    def produce(self):
        """Handshake, then the pattern while the socket keeps up, then close_notify."""
        tls, a = self.tls, self.a
        try:
            if not self.shaken:
                tls.do_handshake()
                self.shaken = True
                self.begin = self.last_progress = time.monotonic()
                self.own0 = client_cpu()
                self.cpu0 = server_cpu(a.pid) if a.pid else 0
            while self.sent < a.bytes and self.outgoing.pending + len(self.unsent) < self.IN_FLIGHT:
                self.sent += tls.write(self.pat.at(self.sent, min(a.chunk, a.bytes - self.sent)))
            if self.received == a.bytes and not self.closing:
                self.closing = True
                tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        if not self.unsent and self.outgoing.pending:
            self.unsent = memoryview(self.outgoing.read())

    def send(self):
        if not self.unsent:
            return False
        try:
            n = self.sock.send(self.unsent)
        except BlockingIOError:
            return False
        self.unsent = self.unsent[n:]
        return n > 0

    def receive(self):
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return False
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()
        try:
            while not self.eof:
                plain = self.tls.read(1 << 17)
                if not plain:
                    self.eof = True
                elif plain != self.pat.at(self.received, len(plain)):
                    raise ValueError(f"echo differs at or after offset {self.received}")
                else:
                    self.received += len(plain)
                    self.last_progress = time.monotonic()
                    if self.received > self.a.bytes:
                        raise ValueError(f"{self.received - self.a.bytes} bytes more than were sent")
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self.eof = True  # close_notify, or a TCP end without it
        return True

    def run(self):
        """Returns an error message, or "" once every byte came back and the stream ended."""
        try:
            while not self.eof:
                self.produce()
                moved = self.send()
                moved = self.receive() or moved
                if not moved:
                    select.select([self.sock], [self.sock] if self.unsent else [], [], 0.5)
                if time.monotonic() - self.last_progress > self.a.stall:
                    return f"stalled: nothing echoed for {self.a.stall:g} s"
        except (OSError, ssl.SSLError, ValueError) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            self.sock.close()
        if self.received < self.a.bytes:
            return f"end of stream after {self.received} of {self.a.bytes} bytes"
        return ""


def stream(a):
    s = Stream(a)
    error = s.run()
    elapsed = time.monotonic() - s.begin
    own = client_cpu() - s.own0
    fields = [f"bytes={s.received}", f"seconds={elapsed:.3f}",
              f"mb_per_s={s.received / elapsed / 1e6:.1f}" if not error else "mb_per_s=-",
              f"errors={1 if error else 0}", f"version={s.tls.version() or '-'}",
              f"cipher={(s.tls.cipher() or ('-',))[0]}",
              f"client_cpu={own / elapsed:.2f}"]
    if a.pid and not error:
        time.sleep(0.3)  # a forking server reaps the connection's processes after the close
        fields.append(f"server_cpu_ms_per_mb={(server_cpu(a.pid) - s.cpu0) * 1e3 / (s.received / 1e6):.2f}")
    report(a, fields, [error] if error else [])
    return 1 if error else 0


def report(a, fields, errors):
    for e in errors:
        print(f"tls_client: {a.mode} {a.label}: {e}", file=sys.stderr)
    print(" ".join([f"result mode={a.mode}", f"label={a.label or '-'}"] + fields), flush=True)


def main(argv):
    a = parse_args(argv)

    def deadline(_sig, _frame):
        print(f"tls_client: {a.mode} {a.label}: --max-seconds {a.max_seconds:g} passed", file=sys.stderr, flush=True)
        os._exit(3)

    signal.signal(signal.SIGALRM, deadline)
    signal.setitimer(signal.ITIMER_REAL, a.max_seconds)
    try:
        return handshake(a) if a.mode == "handshake" else stream(a)
    except (OSError, ssl.SSLError) as e:
        print(f"tls_client: {a.mode} {a.label}: {type(e).__name__}: {e}", file=sys.stderr)
        print(f"result mode={a.mode} label={a.label or '-'} errors=1", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
