#!/usr/bin/env python3
"""Sums sampled stacks of a Gatehouse node into the parts of a request.

    profile-parts.py SCRIPT CPU_US_PER_OP

SCRIPT is `perf script -F comm,tid,ip,sym,dso` of a `perf record -g`; Swift symbols are demangled
with swift-demangle. Prints, each with its share of the samples and its µs per operation (that
share of CPU_US_PER_OP): the samples by the part of a request nearest the sampled function on its
stack (so the kernel's socket work under NIO counts as HTTP, a retain inside token verification
as tokens), by the sampled function's own kind (kernel, Swift runtime, malloc, …), by thread, and
the 12 hottest functions. Used by benchmarks/profile.sh.
"""
import re
import subprocess
import sys

# Checked in order on the demangled name with generic-specialization prefixes removed; the first
# part whose pattern matches takes the sample.
PARTS = [
    ("kernel (sockets, epoll, futex, scheduling)", None),
    ("malloc/free", re.compile(r"^(_int_malloc|_int_free|malloc|free|cfree|realloc|calloc|malloc_consolidate|tcache_\w+|__libc_malloc|__libc_free|__libc_calloc|__libc_realloc|_int_realloc|unlink_chunk\S*|__malloc_\w+|__free_\w+|arena_\w+|sysmalloc|malloc_usable_size) @")),
    ("TOTP (HMAC-SHA-1, codes, the cache)", re.compile(r"sha1_block|SHA1_|TOTP|HOTP|InlineSecret")),
    ("tokens (sign, verify, HMAC-SHA-256, base64url)", re.compile(r"sha256_block|SHA256_|Token|Base64URL|Claims|JWT|HMACKey|GatehouseCrypto\.HMAC")),
    ("JSON (read and write)", re.compile(r"JSON")),
    ("Redis client (hiredis, I/O thread, commands, replies)", re.compile(r"GatehouseRedis|redis[A-Z_]|hiredis|sds[A-Z]|RESP")),
    ("HTTP (NIO pipeline, HTTP/1, fast path, router)", re.compile(r"\bNIO|Hummingbird|HTTPTypes|GatehouseHTTP|llhttp|c_nio_|CNIO")),
    ("the service (login, code check, sessions)", re.compile(r"GatehouseService|GatehouseApp|GatehouseCore")),
    ("libcrypto (other: random, AES-GCM, EVP)", re.compile(r"@libcrypto")),
    ("Swift runtime (retain/release, allocation, tasks, stdlib)", re.compile(r"^swift_|^_swift_|^\$s|^Swift\.|^__swift|^_dispatch|^dispatch_|protocol witness for Swift\.|^static Swift\.|^(generic )?specialization|@libswift|@libdispatch")),
    ("Foundation", re.compile(r"Foundation")),
    ("libc (memcpy, memmove, strings, locks)", re.compile(r"@libc[.-]|@libpthread")),
]


def strip_prefixes(name: str) -> str:
    """`generic specialization <…> of X` → `X`, also for nested and `merged`/thunk prefixes."""
    changed = True
    while changed:
        changed = False
        for prefix in ("merged ", "partial apply forwarder for ", "outlined copy of ", "outlined consume of ",
                       "outlined destroy of ", "outlined init with take of ", "reabstraction thunk helper from "):
            if name.startswith(prefix):
                name = name[len(prefix):]
                changed = True
        m = re.match(r"^(generic |function signature |generic partial )?specialization <", name)
        if m:
            depth, i = 0, m.end() - 1
            while i < len(name):
                if name[i] == "<":
                    depth += 1
                elif name[i] == ">":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            rest = name[i + 1:]
            if rest.startswith(" of "):
                name = rest[4:]
                changed = True
    return name


def classify(core: str, dso: str, kernel: bool, parts) -> str:
    if kernel:
        return PARTS[0][0]
    # The name, then the library it is in after an @ (for the parts matched on the library).
    subject = core + " @" + dso.rsplit("/", 1)[-1]
    for pname, pattern in parts:
        if pattern is not None and pattern.search(subject):
            return pname
    return "other"


# The parts a request's own code is in: a sample is charged to the nearest of these on its stack.
CALLERS = [p for p in PARTS if p[0].split(" ")[0] in ("TOTP", "tokens", "JSON", "Redis", "HTTP", "the")]
HTTP = next(p[0] for p in PARTS if p[0].startswith("HTTP"))


def read_samples(path: str):
    """`perf script -F comm,tid,ip,sym,dso` → [(thread, [(sym, dso, kernel)] leaf first)]."""
    samples, frames, thread = [], None, ""
    frame = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$")
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if frames is not None:
                    samples.append((thread, frames))
                frames = None
                continue
            if not line[0].isspace():
                thread = re.sub(r"\s+\d+\s*$", "", line.rstrip())
                frames = []
                continue
            m = frame.match(line)
            if m and frames is not None:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
                frames.append((sym, m.group(3), m.group(3).startswith("[kernel")))
    if frames:
        samples.append((thread, frames))
    return samples


def main() -> None:
    script, cpu_us = sys.argv[1], sys.argv[2]
    samples = read_samples(script)
    if not samples:
        sys.exit("profile-parts: no samples in " + script)
    names = sorted({sym for _, frames in samples for sym, _, _ in frames})
    demangled = subprocess.run(["swift-demangle", "--compact"], input="\n".join(names), capture_output=True, text=True, check=True).stdout.split("\n")
    core = {n: strip_prefixes(d) for n, d in zip(names, demangled)}
    try:
        per_op = float(cpu_us)
    except ValueError:
        per_op = float("nan")
    leaf, caller, thread_share, functions, http_split = {}, {}, {}, {}, {}
    for thread, frames in samples:
        if not frames:
            continue
        sym, dso, kernel = frames[0]
        what = classify(core[sym], dso, kernel, PARTS[1:])
        leaf[what] = leaf.get(what, 0) + 1
        # The innermost frame in one of the request's own parts; HTTP (NIO's event loop is at the
        # root of nearly every stack) only when no other part is on the stack.
        who, seen_http = None, False
        for s, d, k in frames:
            if not k:
                part = classify(core[s], d, False, CALLERS)
                if part.startswith("HTTP"):
                    seen_http = True
                elif part != "other":
                    who = part
                    break
        if who is None:
            who = HTTP if seen_http else "outside a request's code: " + what
        if who == HTTP:
            # Within HTTP: the kernel's share, then the innermost of Gatehouse's edge,
            # Hummingbird and HTTP/1 parsing, else NIO's channel machinery.
            sub = "NIO (channels, pipeline, event loop, buffers)"
            if kernel:
                sub = "kernel (socket reads and writes, epoll, wake-ups)"
            else:
                for s2, d2, k2 in frames:
                    c = core[s2]
                    if "GatehouseHTTP" in c or "GatehouseApp" in c:
                        sub = "Gatehouse's edge (fast path, routes, bodies)"
                        break
                    if "Hummingbird" in c:
                        sub = "Hummingbird (router, request and response, tasks)"
                        break
                    if "llhttp" in c or "NIOHTTP1" in c:
                        sub = "HTTP/1 parsing and writing (NIOHTTP1)"
                        break
            http_split[sub] = http_split.get(sub, 0) + 1
        caller[who] = caller.get(who, 0) + 1
        thread = re.sub(r"#\d+$", "#n", thread)
        thread_share[thread] = thread_share.get(thread, 0) + 1
        name = core[sym][:140] + "  [" + dso.rsplit("/", 1)[-1] + "]"
        functions[name] = functions.get(name, 0) + 1
    total = len(samples)

    def table(title, counts, limit=None):
        print(title)
        rows = sorted(counts.items(), key=lambda kv: -kv[1])
        for name, n in rows[:limit]:
            pct = n * 100 / total
            print(f"  {pct:5.1f}%  {per_op * pct / 100:6.1f} µs  {name}")

    table("by the code that asked for it (the innermost part of a request on the stack; HTTP when no other):", caller)
    table("the HTTP part, split:", http_split)
    table("by what ran (the sampled function itself):", leaf)
    table("by thread:", thread_share)
    table("hottest functions:", functions, 12)
    print(f"({total} samples)")


if __name__ == "__main__":
    main()
