#!/usr/bin/env bash
# Builds the core benchmarks (TokenBench, TOTPBench, WebAuthnBench) in release mode, runs them, and prints the
# machine line and every RATIO / ALLOC line at the end.
#
#   benchmarks/run-core.sh [--strict] [benchmark options: --quick | --rounds N --slice S
#                          --openssl-seconds N --alloc-iterations N --json]
#
# Exit status: 1 when the build fails or a benchmark cannot run (a sanity check failed, so it
# has no figures); a missed target is printed as FAIL but exits 0, unless --strict is given.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
strict=0
args=()
for arg in "$@"; do
    case "$arg" in
        --strict) strict=1 ;;
        *) args+=("$arg") ;;
    esac
done

# What this script starts, checked against the table of external programs (names the packages;
# `scripts/bootstrap.sh --bench` installs them, and liboath-dev for the TOTP reference).
"$here/../scripts/bootstrap.sh" --require openssl || exit 1

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
machine="nproc=$(nproc) cpu=\"${cpu:-unknown}\" openssl=\"$(openssl version 2>/dev/null || echo missing)\" swift=\"$(swift --version 2>/dev/null | head -1)\""
echo "== machine: $machine"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) (every figure is a ratio against a reference measured in the same run)"

# Each product on its own, so a broken or unfinished other benchmark target cannot stop these.
for product in TokenBench TOTPBench WebAuthnBench; do
    echo "== building $product (release)"
    if ! swift build -c release --package-path "$here" --product "$product"; then
        echo "FAIL build of $product"
        exit 1
    fi
done
bin="$(swift build -c release --package-path "$here" --show-bin-path)"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
status=0
for product in TokenBench TOTPBench WebAuthnBench; do
    echo
    echo "== running $product ${args[*]:-}"
    "$bin/$product" "${args[@]}" | tee "$logs/$product.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "FAIL $product exited $rc (no figures)"
        status=1
    fi
done

echo
echo "== summary ($machine)"
for product in TokenBench TOTPBench WebAuthnBench; do grep -hE '^(RATIO|ALLOC) ' "$logs/$product.log" 2>/dev/null; done
if [ "$status" -ne 0 ]; then
    exit 1
fi
if [ "$strict" -eq 1 ] && grep -qhE '^(RATIO|ALLOC) .* FAIL$' "$logs"/*.log; then
    echo "== --strict: at least one target missed"
    exit 1
fi
exit 0
