#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs Gatehouse (the README's run command).
# Until the HTTP service lands (issue 4) this builds the CLI and shows an enrolment preview;
# then it will be `gatehouse serve` on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
swift build -c release --product gatehouse
bin="$(swift build -c release --show-bin-path)/gatehouse"
if [ $# -gt 0 ]; then
  exec "$bin" "$@"
fi
"$bin" --help
echo
exec "$bin" enroll-preview --user "${GATEHOUSE_DEMO_USER:-demo@example.org}"
