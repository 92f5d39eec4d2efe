#!/usr/bin/env bash
# Builds Gatehouse's fuzz targets (fuzz/, a package of its own) with libFuzzer and
# AddressSanitizer, and runs each for a bounded time over its committed seed corpus.
#
#   scripts/fuzz.sh [--all | --target NAME ...] [--seconds N | --runs N] [--no-build] [-- libFuzzer flags]
#
# Targets (what each checks besides "no crash": fuzz/Package.swift and the head of each target):
#   cbor      WebAuthn: CBOR reader, attestation object, authenticator data, COSE key, verifier
#   token     TokenAuthority: verify arbitrary and hand-signed tokens, sign → verify round trips
#   json      JSONObjectReader against a reference RFC 8259 reader; JSONText/JSONWriter read back
#   base      Base32 and Base64URL, both ways, against reference decoders
#   otpauth   otpauth:// URIs, imported TOTP secrets, typed codes
#   smtp      the SMTP client's reply parser over a byte stream in pieces; rendered messages
#   resp      hiredis's reader with the Swift conversion and size limit; CLUSTER SLOTS, redirects,
#             Sentinel, stream and command parsing
#   fastpath  NIO's HTTP/1 decoder as a node configures it, driving the fast path's state machine
#
# --target NAME  run this target (repeatable); --all, the default, runs every one
# --seconds N    run time per target (libFuzzer -max_total_time), default 60
# --runs N       instead: stop each target after N inputs (libFuzzer -runs)
# --no-build     use the binaries of the previous build
# --list         print the target names and exit
# Anything after `--` goes to libFuzzer as it is (e.g. -- -jobs=1 -max_len=512).
#
# The package is built once (release, -sanitize=fuzzer,address; the first build takes many
# minutes), then the targets run one after another, never two at once. The seeds in
# fuzz/corpus/<name>/ are read, never written: inputs a run finds interesting go to a scratch
# corpus, fuzz/.build/corpus-<name>/, which the next run reads as well, so coverage accumulates
# on one machine without the committed corpus growing. Each run's libFuzzer output goes to
# fuzz/.build/logs/<name>.log. For each target the script prints the inputs executed (libFuzzer's
# stat::number_of_executed_units), the seconds taken and the crashes. A crash, a sanitizer report
# or a broken invariant (a line starting `==INVARIANT==`) writes the input to fuzz/artifacts/,
# prints the end of the log, and makes the script exit non-zero once every target has run.
# Reproduce with `fuzz/.build/release/<Program> fuzz/artifacts/<file>`; when fixing, add a unit
# test in the matching Tests/ target and the input to fuzz/corpus/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

# name  program  -max_len
table="cbor CBORFuzzer 8192
token TokenFuzzer 4200
json JSONFuzzer 4096
base BaseEncodingFuzzer 1024
otpauth OTPAuthFuzzer 1024
smtp SMTPReplyFuzzer 12288
resp RESPFuzzer 4096
fastpath FastPathFuzzer 8192"
all_names=$(awk '{print $1}' <<<"$table")

seconds=60
runs=""
build=1
targets=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --all) targets=(); shift ;;
        --target) targets+=("$2"); shift 2 ;;
        --target=*) targets+=("${1#*=}"); shift ;;
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --runs) runs="$2"; shift 2 ;;
        --runs=*) runs="${1#*=}"; shift ;;
        --no-build) build=0; shift ;;
        --list) echo "$all_names"; exit 0 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        --) shift; extra+=("$@"); break ;;
        *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then read -r -d '' -a targets <<<"$all_names" || true; fi
for name in "${targets[@]}"; do
    grep -q "^$name " <<<"$table" || { echo "fuzz.sh: no target '$name' (targets: $(echo $all_names))" >&2; exit 2; }
done

flags=(-c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
if [ "$build" = 1 ]; then
    echo "== building fuzz/ (release, -sanitize=fuzzer,address)"
    started=$(date +%s)
    swift build "${flags[@]}"
    echo "== built in $(( $(date +%s) - started ))s"
fi
bin="$(swift build "${flags[@]}" --show-bin-path)"

# A Swift runtime failure (a broken invariant is one) should end the run at once: without this
# the runtime's backtracer symbolicates for many seconds first.
export SWIFT_BACKTRACE=enable=no
mkdir -p fuzz/artifacts fuzz/.build/logs
failed=()
for name in "${targets[@]}"; do
    read -r _ program max_len <<<"$(grep "^$name " <<<"$table")"
    seeds="fuzz/corpus/$name"
    scratch="fuzz/.build/corpus-$name"
    log="fuzz/.build/logs/$name.log"
    mkdir -p "$scratch"
    if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
    echo "== $name ($program): $(ls "$seeds" | wc -l) seeds, ${limit[0]#-}"
    started=$(date +%s)
    status=0
    "$bin/$program" "${limit[@]}" -max_len="$max_len" -timeout=60 -print_final_stats=1 \
        -artifact_prefix=fuzz/artifacts/ ${extra[@]+"${extra[@]}"} "$scratch" "$seeds" >"$log" 2>&1 || status=$?
    took=$(( $(date +%s) - started ))
    executed=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    if [ -z "$executed" ]; then
        # No final statistics (the run crashed): the last status line's count.
        executed=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    crashes=0
    if [ "$status" -ne 0 ] || grep -q -e '^==INVARIANT==' -e 'ERROR: AddressSanitizer' -e 'ERROR: libFuzzer' -e 'SUMMARY: ' "$log"; then
        crashes=1
    fi
    echo "$name: executed ${executed:-0} inputs in ${took}s, crashes: $crashes"
    if [ "$crashes" -ne 0 ]; then
        failed+=("$name")
        grep -e '^==INVARIANT==' -e 'ERROR:' -e 'SUMMARY:' -e 'Test unit written to' "$log" | head -20 || true
        grep -m 12 -e '^    #[0-9]* 0x.* in \$s' "$log" || true
        echo "-- the whole output: $log"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran without a crash"
