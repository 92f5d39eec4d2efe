#!/usr/bin/env bash
# A bounded soak of one node: mixed traffic plus slow and malformed clients, with the node's memory
# and open file descriptors sampled throughout.
#
#   benchmarks/soak.sh [--duration S] [--sample S] [--rate R|half] [--users U] [--workers N] [--out FILE]
#                      [--charts DIR]
#
# Starts, on loopback, one redis-server (AOF on, fsync every second) and one `gatehouse serve`
# node, then for the whole duration (default 600 s):
#   - `gatehouse load` with the default mix (session checks 70, valid codes 10, wrong 15, replays 5)
#     over --users users (default 100,000), capped at --rate operations per second (default 3000;
#     `half`: half the rate a 10 s run of the same load without a cap reaches first), 50 in flight;
#   - benchmarks/soak-clients.py with --workers threads (default 20) of slow and malformed
#     clients: silent connections, heads and bodies in pieces, garbage, bad request lines, heads
#     over the limit, requests without Host, bad JSON, resets;
#   - every --sample seconds (default 10) the node's resident memory (VmRSS), open file
#     descriptors and threads, from /proc.
# Then it prints the samples and the verdict: memory and descriptors "flat" when the median of the
# last minute is within ±10% of the median of the second minute (the first is warm-up), the load's
# correctness failures (must be 0) and the abusive clients' bad endings (a 5xx or a connection the
# node never closed; must be 0). Exit 1 when any of these misses, 2 when something broke.
# --charts DIR: benchmarks/plot.sh draws DIR/soak-memory.svg, the node's memory and descriptors
# over the soak, from the samples it writes to DIR/data/soak-samples.tsv. Default: a new
# /tmp/gatehouse-soak-charts.XXXXXX, named at the end.
set -euo pipefail

duration=600 sample=10 rate=3000 users=100000 workers=20 out="" charts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --sample) sample="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --charts) charts="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown option $1" >&2; exit 64 ;;
  esac
done
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 180 ] && [ "$duration" -le 3600 ] || { echo "soak: --duration must be 180..3600 (minute 2 is the baseline, the last minute the end)" >&2; exit 64; }
[[ "$sample" =~ ^[0-9]+$ ]] && [ "$sample" -ge 1 ] && [ "$sample" -le 60 ] || { echo "soak: --sample must be 1..60" >&2; exit 64; }
[ "$rate" = half ] || { [[ "$rate" =~ ^[0-9]+$ ]] && [ "$rate" -ge 1 ]; } || { echo "soak: --rate must be a positive number or half" >&2; exit 64; }
[[ "$users" =~ ^[0-9]+$ ]] && [ "$users" -ge 100 ] && [ "$users" -le 100000 ] || { echo "soak: --users must be 100..100000" >&2; exit 64; }
[[ "$workers" =~ ^[0-9]+$ ]] && [ "$workers" -ge 1 ] && [ "$workers" -le 200 ] || { echo "soak: --workers must be 1..200" >&2; exit 64; }
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh" --require redis-server redis-cli jq curl python3 gnuplot || exit 2
[ -n "$charts" ] || charts="$(mktemp -d /tmp/gatehouse-soak-charts.XXXXXX)"
mkdir -p "$charts/data"

name=soak work="$(mktemp -d /tmp/gatehouse-soak.XXXXXX)" pids=()
. "$root/benchmarks/lib.sh"
bench_binary

redis_port=$(free_port)
start_redis redis "$redis_port"
bench_keys
start_node node "redis://127.0.0.1:$redis_port/0"; url=$node_url port=${node_url##*:}
# --- The soak. ----------------------------------------------------------------------------------
# Users: a valid code needs a user whose current step is unspent; past that, the load answers with
# a session check instead, so the mix holds for the whole run.
if [ "$rate" = half ]; then
  # The peak: the same load for 10 s without a cap (its own users, seeded first).
  "$bin" load --url "$url" --users "$users" --concurrency 50 --duration 10 --json \
    --admin-key "$admin_key" --frontend-key "$frontend_key" --verify-key "$verify_key" >"$work/peak.json" 2>"$work/peak.err" \
    || die "the 10 s peak run failed: $(head -c 400 "$work/peak.json") $(tail -3 "$work/peak.err")"
  peak=$(jq -r '.throughput' "$work/peak.json")
  rate=$(awk -v p="$peak" 'BEGIN { r = int(p / 2); print (r < 1 ? 1 : r) }')
  echo "soak: the same load without a cap made $(printf '%.0f' "$peak") ops/s for 10 s; the soak runs at half: $rate ops/s" >&2
fi
"$bin" load --url "$url" --users "$users" --concurrency 50 --duration "$duration" --rate "$rate" --json --progress \
  --admin-key "$admin_key" --frontend-key "$frontend_key" --verify-key "$verify_key" >"$work/load.json" 2>"$work/load.err" &
load_pid=$!; pids+=("$load_pid")
# Seeding takes up to a minute; the abusive clients and the samples start with the timed run
# (its first progress line comes a second into it).
for _ in $(seq 1 3000); do
  grep -q '^load:' "$work/load.err" 2>/dev/null && break
  kill -0 "$load_pid" 2>/dev/null || break
  sleep 0.1
done
python3 "$root/benchmarks/soak-clients.py" --port "$port" --duration "$duration" --workers "$workers" >"$work/clients.json" 2>"$work/clients.err" &
clients_pid=$!; pids+=("$clients_pid")

echo "soak: ${duration}s on $url: gatehouse load at ≤ $rate ops/s, $workers slow or malformed clients; sampling every ${sample}s" >&2
printf '%8s %10s %6s %8s\n' seconds rss_kib fds threads
start=$(date +%s)
: >"$work/samples"
while kill -0 "$load_pid" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$node_pid/status" 2>/dev/null || echo 0)
  threads=$(awk '/^Threads:/ { print $2 }' "/proc/$node_pid/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$node_pid/fd" 2>/dev/null | wc -l)
  echo "$now $rss $fds $threads" >>"$work/samples"
  printf '%8s %10s %6s %8s\n' "$now" "$rss" "$fds" "$threads"
  [ "$now" -le $(( duration + 120 )) ] || die "gatehouse load ran 2 minutes past its duration"
  sleep "$sample"
done
wait "$load_pid" || die "gatehouse load failed: $(head -c 400 "$work/load.json") $(grep -v '^load:' "$work/load.err" | tail -3)"
wait "$clients_pid"; clients_status=$?
kill -0 "$node_pid" 2>/dev/null || die "the node exited during the soak: $(tail -5 "$work/node.log")"

# --- Verdict. -----------------------------------------------------------------------------------
window() {  # window FROM TO COLUMN → median of the column over samples with FROM <= t < TO
  awk -v a="$1" -v b="$2" -v c="$3" '$1 >= a && $1 < b { print $c }' "$work/samples" | median | awk '{ printf "%.0f\n", $1 }'
}
last_from=$(( $(tail -1 "$work/samples" | cut -d' ' -f1) - 60 ))
rss0=$(window 60 120 2) rss1=$(window "$last_from" 999999 2)
fds0=$(window 60 120 3) fds1=$(window "$last_from" 999999 3)
[ -n "$rss0" ] && [ -n "$rss1" ] || die "too few samples"
rss_ratio=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN { printf "%.3f", b / a }')
fds_ratio=$(awk -v a="$fds0" -v b="$fds1" 'BEGIN { printf "%.3f", b / a }')
rss_max=$(cut -d' ' -f2 "$work/samples" | sort -n | tail -1)
fds_max=$(cut -d' ' -f3 "$work/samples" | sort -n | tail -1)
failures=$(jq -r '.correctness_failures' "$work/load.json")
ops=$(jq -r '[.kinds[] | .count] | add' "$work/load.json")
errors=$(jq -c '.errors // {}' "$work/load.json")
connections=$(jq -r '.connections' "$work/clients.json")
bad=$(jq -r '.bad' "$work/clients.json")

verdict=0
flat() { awk -v r="$1" 'BEGIN { exit !(r >= 0.90 && r <= 1.10) }'; }
{
  echo "soak: $(date -u +%Y-%m-%dT%H:%MZ), ${duration}s, node $(basename "$bin")"
  echo "  memory (VmRSS): minute 2 median ${rss0} KiB, last minute ${rss1} KiB, ratio ${rss_ratio} (max ${rss_max} KiB) — $(flat "$rss_ratio" && echo flat || echo GROWING)"
  echo "  open descriptors: minute 2 median ${fds0}, last minute ${fds1}, ratio ${fds_ratio} (max ${fds_max}) — $(flat "$fds_ratio" && echo flat || echo GROWING)"
  echo "  gatehouse load: ${ops} operations, correctness failures ${failures}, errors ${errors}"
  echo "  slow and malformed clients: ${connections} connections, ${bad} answered 5xx or left open; by kind: $(jq -c '.kinds' "$work/clients.json")"
} | tee "$work/verdict"
[ -n "$out" ] && cp "$work/verdict" "$out"
{ printf '# seconds\trss_kib\tfds\tthreads\n'; tr ' ' '\t' <"$work/samples"; } >"$charts/data/soak-samples.tsv"
"$root/benchmarks/plot.sh" soak "$charts" >"$work/plot.out" 2>&1 || die "the chart failed: $(tail -3 "$work/plot.out")"
echo "  chart: $(cat "$work/plot.out")"
flat "$rss_ratio" || verdict=1
flat "$fds_ratio" || verdict=1
[ "$failures" = 0 ] || verdict=1
[ "$bad" = 0 ] && [ "$clients_status" = 0 ] || verdict=1
grep -q 'Fatal error\|fatalError\|Assertion failed' "$work/node.log" && { echo "soak: the node log has a crash report" >&2; verdict=1; }
exit $verdict
