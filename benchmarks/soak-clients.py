#!/usr/bin/env python3
"""Slow and malformed HTTP clients for benchmarks/soak.sh, on loopback only.

    soak-clients.py --port PORT --duration SECONDS [--workers N] [--hold SECONDS]

Each worker thread, until the duration ends, opens a connection to 127.0.0.1:PORT and plays one
of the clients below, then the next. Every connection is bounded: the client gives up after
--hold seconds (default 20; the node's head and body timeouts are 10 s, so it should always be
the node that closes first). Prints one JSON object: per kind, how the connections ended.

    silent       connects and sends nothing
    partial_head half a request head
    slow_lines   a head one line every 2 s
    partial_body a head declaring 100 bytes, then 10 of them
    garbage      random bytes
    bad_line     a request line that is not HTTP/1.x
    huge_head    a head of 100 KiB in one field
    no_host      an HTTP/1.1 request without Host
    bad_json     a complete request whose body is not JSON
    reset        half a request, then a TCP reset

Exit status 1 when any connection got a 5xx answer or was still open when the client gave up.
"""
import argparse
import json
import os
import random
import socket
import struct
import threading
import time

KINDS = ["silent", "partial_head", "slow_lines", "partial_body", "garbage", "bad_line", "huge_head", "no_host", "bad_json", "reset"]


def play(kind, port, hold):
    """One connection; returns how it ended: closed, answered-4xx, answered-5xx, held, reset."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(0.5)
    deadline = time.monotonic() + hold
    received = b""

    def send(data):
        try:
            s.sendall(data)
            return True
        except OSError:
            return False

    try:
        if kind == "partial_head":
            send(b"GET /v1/auth HTTP/1.1\r\nHost: t\r\nGatehouse-Ses")
        elif kind == "slow_lines":
            send(b"GET /v1/auth HTTP/1.1\r\n")
        elif kind == "partial_body":
            send(b"POST /v1/login/start HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\":\"a")
        elif kind == "garbage":
            send(os.urandom(random.randint(1, 4096)))
        elif kind == "bad_line":
            send(b"FETCH /v1/auth HTTP/9.9\r\nHost: t\r\n\r\n")
        elif kind == "huge_head":
            send(b"GET /v1/auth HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n")
        elif kind == "no_host":
            send(b"GET /v1/auth HTTP/1.1\r\n\r\n")
        elif kind == "bad_json":
            body = b"{\"user\": [}"
            send(b"POST /v1/login/start HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        elif kind == "reset":
            send(b"POST /v1/login/start HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return "reset"
        line = 0
        next_line = time.monotonic() + 2
        while time.monotonic() < deadline:
            if kind == "slow_lines" and time.monotonic() >= next_line:
                if not send(b"X-Slow-%d: %d\r\n" % (line, line)):
                    break
                line += 1
                next_line = time.monotonic() + 2
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            return "held"
    finally:
        s.close()
    if received.startswith(b"HTTP/1.1 5") or b"\r\nHTTP/1.1 5" in received:
        return "answered-5xx"
    if received.startswith(b"HTTP/1.1 4"):
        return "answered-4xx"
    if received:
        return "answered-other"
    return "closed"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--hold", type=float, default=20)
    args = parser.parse_args()
    if not 1 <= args.workers <= 200 or not 0 < args.duration <= 7200:
        parser.error("--workers 1..200, --duration up to 7200")
    end = time.monotonic() + args.duration
    results = {kind: {} for kind in KINDS}
    errors = []
    lock = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        while time.monotonic() < end:
            kind = rng.choice(KINDS)
            try:
                outcome = play(kind, args.port, args.hold)
            except OSError as error:
                outcome = "connect-error"
                with lock:
                    if len(errors) < 10:
                        errors.append(f"{kind}: {error}")
                time.sleep(0.2)
            with lock:
                results[kind][outcome] = results[kind].get(outcome, 0) + 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + args.hold + 30)
    bad = sum(r.get("answered-5xx", 0) + r.get("held", 0) for r in results.values())
    total = sum(sum(r.values()) for r in results.values())
    print(json.dumps({"connections": total, "bad": bad, "kinds": results, "errors": errors}))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
