#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs the whole test suite (the README's test command;
# .ci/run runs exactly this). Tests start their own redis-server and other real peers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --tests
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
swift build --build-tests
# Serial on purpose: the suites start real redis-server, gatehouse, nginx, Dovecot and SMTP
# processes, and on a 2-core CI machine dozens of them starting at once make start-up deadlines
# meaningless. Serially the whole suite takes about six minutes, plus the build.
swift test --skip-build --no-parallel "$@"
