#!/usr/bin/env bash
# GatehouseRedis vs redis-benchmark, same script, same private server, same run.
# Usage: benchmarks/redis-bench.sh [RedisBench options, e.g. --ops 300000 --reps 5 --pool 1]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# What this script starts, checked against the table of external programs (names the packages;
# `scripts/bootstrap.sh --bench` installs them).
"$here/../scripts/bootstrap.sh" --require redis-server redis-cli redis-benchmark python3 || exit 1

# A free loopback port, and a private directory, torn down on exit.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
dir="$(mktemp -d /tmp/gatehouse-redis-bench-XXXXXX)"
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no --daemonize no \
    --logfile "$dir/redis.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT

for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
done
redis-cli -p "$port" ping >/dev/null || { echo "redis-server did not start: $(tail -3 "$dir/redis.log")" >&2; exit 1; }

swift build -c release --package-path "$here" --product RedisBench >&2
"$(swift build -c release --package-path "$here" --show-bin-path)/RedisBench" --port "$port" "$@"
