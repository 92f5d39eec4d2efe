#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs Gatehouse (the README's run command):
# `gatehouse serve` on its embedded default — its own redis-server (AOF) and fresh keys under
# ./.gatehouse, a development API key printed on first start, listening on 127.0.0.1:8080.
# Any arguments run that gatehouse subcommand instead (e.g. `./scripts/run.sh keys list`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
swift build -c release --product gatehouse
bin="$(swift build -c release --show-bin-path)/gatehouse"
if [ $# -gt 0 ]; then
  exec "$bin" "$@"
fi
exec "$bin" serve
