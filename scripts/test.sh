#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs the whole test suite (the README's test command;
# .ci/run runs exactly this). Tests start their own redis-server and other real peers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --tests
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
swift build --build-tests
swift test --skip-build "$@"
