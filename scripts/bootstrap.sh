#!/usr/bin/env bash
# Installs what building, running and testing Gatehouse needs on Debian 12, only when missing.
# Safe to run repeatedly. Needs root (or sudo) for apt-get; Swift must already be on PATH
# (this workplace ships Swift 6.3.1 in /opt/swift).
set -euo pipefail

want_tests=0
[ "${1:-}" = "--tests" ] && want_tests=1

if [ -d /opt/swift/usr/bin ] && ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
command -v swift >/dev/null 2>&1 || { echo "bootstrap: swift not found (expected Swift 6.3 at /opt/swift)" >&2; exit 1; }

# Debian packages: C libraries linked as system libraries, and the Redis server the service
# starts on its embedded default.
packages=(pkg-config libhiredis-dev libssl-dev libqrencode-dev redis-server redis-tools)
if [ $want_tests = 1 ]; then
  # Real peers the tests use: zbarimg decodes our QR codes, rsvg-convert rasterises the SVG,
  # python3 runs PyJWT for token interoperability.
  packages+=(zbar-tools librsvg2-bin python3 python3-pip)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ $want_tests = 1 ]; then
  PY=python3
  if ! "$PY" -c 'import jwt, cryptography' >/dev/null 2>&1; then
    echo "bootstrap: installing PyJWT from PyPI"
    "$PY" -m pip install -q 'pyjwt[crypto]>=2.8' 2>/dev/null \
      || "$PY" -m pip install -q --break-system-packages 'pyjwt[crypto]>=2.8'
  fi
  # aiosmtpd: the real SMTP server the mail tests deliver to (GatehouseTesting.SMTPServerProcess).
  if ! "$PY" -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "bootstrap: installing aiosmtpd from PyPI"
    "$PY" -m pip install -q 'aiosmtpd>=1.4' 2>/dev/null \
      || "$PY" -m pip install -q --break-system-packages 'aiosmtpd>=1.4'
  fi
fi
