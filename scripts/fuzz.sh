#!/usr/bin/env bash
# Builds the CBOR / WebAuthn fuzzer (fuzz/, a package of its own) with libFuzzer and
# AddressSanitizer, and runs it for a bounded time over the committed seed corpus.
#
#   scripts/fuzz.sh [--seconds N] [extra libFuzzer flags, e.g. -max_len=2048]
#
# --seconds N   total run time (libFuzzer -max_total_time), default 60
#
# The seeds in fuzz/corpus/cbor/ are read, never written: inputs the run finds interesting go to
# a scratch corpus under fuzz/.build/, which the next run reads as well, so coverage accumulates
# on one machine without the committed corpus growing. A crash, sanitizer report or broken
# invariant writes its input to fuzz/artifacts/ and the script exits non-zero; add that input to
# the unit tests (Tests/GatehouseCoreTests/WebAuthn*.swift) when fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

seconds=60
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) extra+=("$1"); shift ;;
    esac
done

# -parse-as-library: the target has no main; libFuzzer's main calls LLVMFuzzerTestOneInput.
flags=(-c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
echo "== building fuzz/ (release, -sanitize=fuzzer,address)"
swift build "${flags[@]}" --product CBORFuzzer
bin="$(swift build "${flags[@]}" --show-bin-path)/CBORFuzzer"

scratch=fuzz/.build/corpus-cbor
mkdir -p "$scratch" fuzz/artifacts
echo "== running CBORFuzzer for ${seconds}s (seeds: fuzz/corpus/cbor, $(ls fuzz/corpus/cbor | wc -l) files)"
# -max_len: the largest seed (an attestation object with a TPM certificate chain) is under 2 KiB;
# real attestation objects stay well under 8 KiB.
"$bin" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 -artifact_prefix=fuzz/artifacts/ \
    ${extra[@]+"${extra[@]}"} "$scratch" fuzz/corpus/cbor
