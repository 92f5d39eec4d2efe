#!/usr/bin/env bash
# Saves screenshots of the main pages — the second step, the authenticator enrolment with its QR
# code, the backup codes, the settings page and "Forgot password" — as PNGs 1280 px wide (a
# 1280×900 window, the whole page when it is taller) into docs/screenshots/, or DIR.
#
#   scripts/screenshots.sh [DIR]
#
# It runs the browser suite's screenshots test (Tests/GatehouseServiceTests/BrowserTests.swift:
# one node with the stand-in webmail, a real redis-server and SMTP sink, headless Chromium driven
# by Tests/browser/flows.py), which keeps the images in GATEHOUSE_SCREENSHOTS_DIR. The addresses
# and codes in them belong to a throwaway node.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-docs/screenshots}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
./scripts/bootstrap.sh --require redis-server python3 aiosmtpd cryptography chromium chromedriver selenium zbarimg
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
swift build --build-tests
GATEHOUSE_SCREENSHOTS_DIR="$dir" swift test --skip-build --no-parallel --filter 'BrowserTests/screenshots'
ls -l "$dir"/*.png
