#!/usr/bin/env python3
"""IMAP login load generator for benchmarks/mail.sh: LOGIN + LOGOUT, over and over.

    imap-logins.py --port P --users FILE [--concurrency 40] [--duration 5] [--max-logins N]
                   [--timeout 30] [--json]

FILE has one `user password` per line. Each of the --concurrency slots runs one connection
at a time: connect, read the greeting (`* OK`), `a LOGIN "user" "password"`, expect the tagged
`a OK`, `b LOGOUT`, expect `* BYE` and then the tagged `b OK`, close. Slot k takes the users
k, k + C, k + 2C, … in turn, so with at least C users no user has two connections at once
(Dovecot allows 10 per user and address by default).

Every answer is checked: anything else (a NO or BAD, a missing BYE, the connection closing early,
no answer within --timeout) is a failure, counted by kind, and the slot goes on with its next
login. The timed window is --duration seconds from the first connection; logins completed in it
are counted and divided by the duration. No new login starts after the window (or after
--max-logins); the ones in flight are finished (failures still count) but not counted as logins.

Prints one line, or JSON with --json: logins, logins_per_s, failures (by kind), latency p50/p99
(ms, connect to closing), and the generator's own CPU (user + system seconds during the window,
from getrusage) so a run can show that the client was not the bottleneck.
Standard library only (asyncio protocols, no new dependency).
"""
import argparse
import asyncio
import json
import resource
import sys
import time


def quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Login(asyncio.Protocol):
    """One connection's exchange, as a small state machine over received lines."""

    __slots__ = ("login_line", "done", "transport", "buffer", "state", "bye")

    def __init__(self, login_line, done):
        self.login_line = login_line
        self.done = done
        self.transport = None
        self.buffer = b""
        self.state = "greeting"
        self.bye = False

    def connection_made(self, transport):
        self.transport = transport

    def finish(self, outcome):
        if not self.done.done():
            self.done.set_result(outcome)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = self.buffer[:end]
            self.buffer = self.buffer[end + 2:]
            self.line(line)
            if self.done.done():
                return

    def line(self, line):
        state = self.state
        if state == "greeting":
            if line.startswith(b"* OK"):
                self.state = "login"
                self.transport.write(self.login_line)
            else:
                self.finish("greeting:" + line[:40].decode("latin-1"))
        elif state == "login":
            if line.startswith(b"a "):
                if line.startswith(b"a OK"):
                    self.state = "logout"
                    self.transport.write(b"b LOGOUT\r\n")
                else:
                    self.finish("login:" + line[2:60].decode("latin-1"))
            elif not line.startswith(b"* "):
                self.finish("login-unexpected:" + line[:40].decode("latin-1"))
        elif state == "logout":
            if line.startswith(b"* BYE"):
                self.bye = True
            elif line.startswith(b"b "):
                self.finish("ok" if line.startswith(b"b OK") and self.bye else "logout:" + line[:40].decode("latin-1"))
            elif not line.startswith(b"* "):
                self.finish("logout-unexpected:" + line[:40].decode("latin-1"))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result("closed-in-" + self.state)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", required=True)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-logins", type=int, default=10_000_000)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 1000 or not 0 < args.duration <= 600 or args.max_logins < 1:
        parser.error("--concurrency 1..1000, --duration 0..600 s, --max-logins ≥ 1")

    users = []
    with open(args.users) as f:
        for text in f:
            parts = text.split()
            if len(parts) == 2:
                users.append(("a LOGIN %s %s\r\n" % (quoted(parts[0]), quoted(parts[1]))).encode())
    if not users:
        parser.error("no `user password` lines in " + args.users)
    concurrency = min(args.concurrency, len(users))

    loop = asyncio.get_running_loop()
    failures = {}
    latencies = []
    state = {"started": 0, "counted": 0}
    start = time.monotonic()
    deadline = start + args.duration
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)

    async def slot(k):
        turn = 0
        mine = users[k::concurrency]
        while time.monotonic() < deadline and state["started"] < args.max_logins:
            state["started"] += 1
            login_line = mine[turn % len(mine)]
            turn += 1
            done = loop.create_future()
            t0 = time.monotonic()
            transport = None
            try:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: Login(login_line, done), args.host, args.port), args.timeout)
                outcome = await asyncio.wait_for(done, args.timeout)
            except asyncio.TimeoutError:
                outcome = "timeout"
            except OSError as e:
                outcome = "connect:" + type(e).__name__
            finally:
                if transport is not None:
                    transport.close()
            t1 = time.monotonic()
            if outcome == "ok":
                if t1 <= deadline:
                    state["counted"] += 1
                    latencies.append(t1 - t0)
            else:
                failures[outcome] = failures.get(outcome, 0) + 1

    await asyncio.gather(*(slot(k) for k in range(concurrency)))
    end = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()

    def percentile(p):
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    report = {
        "logins": state["counted"],
        "duration_s": args.duration,
        "logins_per_s": round(state["counted"] / args.duration, 1),
        "failures": failures,
        "failed": sum(failures.values()),
        "started": state["started"],
        "concurrency": concurrency,
        "users": len(users),
        "latency_ms": {"p50": percentile(0.5), "p99": percentile(0.99)},
        "client_cpu_s": round(cpu, 3),
        "client_cpu_share": round(cpu / max(end - start, 1e-9), 3),
        "elapsed_s": round(end - start, 3),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print("%d logins in %.1f s: %.1f/s, %d failed %s, p50 %s ms, p99 %s ms, client CPU %.2f s (%.0f%% of a core)" % (
            report["logins"], args.duration, report["logins_per_s"], report["failed"], failures or "",
            report["latency_ms"]["p50"], report["latency_ms"]["p99"], cpu, 100 * report["client_cpu_share"]))
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
