#!/usr/bin/env bash
# Code checks on a Redis Cluster against the same checks on one Redis, in the same run.
#
#   benchmarks/cluster.sh [--reps N] [--duration S] [--client-ips N] [--strict] [--out FILE]
#
# Starts, on loopback: one redis-server, a Redis Cluster of three masters (no replicas: on two
# cores a replica only takes CPU from the masters; replication is the same cost with one Redis or
# many), and two `gatehouse serve` nodes sharing keys — one on `redis://` the single server, one
# on `redis-cluster://` the masters. Every Redis has AOF on, fsync every second. Then it runs
# `gatehouse load --mix check=100` (a valid TOTP code on a challenge opened before the run, over
# HTTP, 50 in flight) against each node, interleaved, the order alternating per repetition, and
# prints:
#
#   - checks/s on each and the ratio cluster / single (median of the repetitions; target ≥ 0.70:
#     the routing layer must not be the cost);
#   - Redis CPU per check: the redis-server processes' user+system time over the timed run
#     (/proc), divided by the checks; and the time Redis itself reports for the scripts
#     (`INFO commandstats`, cmdstat_evalsha usec) per check, per server and in total;
#   - round trips per check: EVALSHA calls per check, per server (1 on one Redis; on the cluster 1
#     without a client_ip, 2 with one: the address budget on the address's master, then the
#     code-check script on the user's);
#   - each node's CPU per check.
#
# --client-ips N (default 1000): checks carry a client_ip, one of N addresses; 0 sends none.
# Default 3 repetitions of 5 s. Exit 1 with --strict when the ratio misses 0.70, exit 2 when
# something broke (a run with a correctness failure or errors is not a result).
set -euo pipefail

reps=3 duration=5 client_ips=1000 strict=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --client-ips) client_ips="$2"; shift 2 ;;
    --strict) strict=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster: unknown option $1" >&2; exit 64 ;;
  esac
done
[[ "$reps" =~ ^[0-9]+$ ]] && [ "$reps" -ge 1 ] && [ "$reps" -le 20 ] || { echo "cluster: --reps must be 1..20" >&2; exit 64; }
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 3 ] && [ "$duration" -le 120 ] || { echo "cluster: --duration must be 3..120 (the CPU is read from 1 s into the run)" >&2; exit 64; }
[[ "$client_ips" =~ ^[0-9]+$ ]] || { echo "cluster: --client-ips must be a number" >&2; exit 64; }
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh" --require redis-server redis-cli jq curl python3 || exit 2

name=cluster work="$(mktemp -d /tmp/gatehouse-cluster-bench.XXXXXX)" pids=()
. "$root/benchmarks/lib.sh"
bench_binary

# --- Redis: one server, and a three-master cluster. ------------------------------------------
single_port=$(free_port)
start_redis single "$single_port"; single_pid=$redis_pid
cluster_ports=() cluster_pids=()
for i in 1 2 3; do
  port=$(free_port)
  # The cluster bus port is the client port + 10000 unless set: a free one of its own.
  start_redis "m$i" "$port" --cluster-enabled yes --cluster-config-file "$work/m$i/nodes.conf" --cluster-node-timeout 2000 \
    --cluster-port "$(free_port)"
  cluster_ports+=("$port"); cluster_pids+=("$redis_pid")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas 0 --cluster-yes >"$work/cluster-create.log" 2>&1 \
  || die "redis-cli --cluster create failed: $(tail -5 "$work/cluster-create.log")"
cluster_ok() { for p in "${cluster_ports[@]}"; do redis-cli -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' || return 1; done; }
wait_for 30 cluster_ok || die "the cluster did not reach cluster_state:ok"

# --- Two nodes sharing keys. ------------------------------------------------------------------
bench_keys
start_node single "redis://127.0.0.1:$single_port/0"; single_url=$node_url single_node_pid=$node_pid
start_node cluster "redis-cluster://$(printf '127.0.0.1:%s,' "${cluster_ports[@]}" | sed 's/,$//')"; cluster_url=$node_url cluster_node_pid=$node_pid

# --- One timed run. -----------------------------------------------------------------------------
# Users: each check spends the challenge opened for a user before the run (90% of the users get
# one); 13,500 checks/s for the whole run is far above what two cores give, so no run runs out
# (a run that does would be capped at users × 0.9 / duration, and the script stops on it).
users=$(( duration * 15000 ))
[ "$users" -le 100000 ] || users=100000
evalsha() {  # evalsha PORT → "calls usec" of EVALSHA so far
  redis-cli -p "$1" INFO commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_evalsha:/ { print $3, $5; found=1 } END { if (!found) print "0 0" }'
}
run() {  # run single|cluster REP → one line of figures in $work/runs
  local kind=$1 rep=$2 url node ports redis_pids
  if [ "$kind" = single ]; then url=$single_url node=$single_node_pid ports=("$single_port") redis_pids=("$single_pid")
  else url=$cluster_url node=$cluster_node_pid ports=("${cluster_ports[@]}") redis_pids=("${cluster_pids[@]}"); fi
  local out="$work/$kind-$rep.json" before_stats=() after_stats=()
  # Seeding happens first inside `gatehouse load`; the counters are read from its first progress
  # line (one second into the timed run; the checks made until then are taken off) to its end.
  "$bin" load --url "$url" --users "$users" --concurrency 50 --duration "$duration" --mix check=100 --client-ips "$client_ips" \
    --json --progress --admin-key "$admin_key" --frontend-key "$frontend_key" --verify-key "$verify_key" \
    >"$out" 2>"$work/$kind-$rep.progress" &
  local load_pid=$!
  for _ in $(seq 1 2400); do grep -q ' ops ' "$work/$kind-$rep.progress" 2>/dev/null && break; kill -0 "$load_pid" 2>/dev/null || break; sleep 0.05; done
  local redis0 node0 ops0; redis0=$(cpu_of "${redis_pids[@]}"); node0=$(cpu_of "$node")
  ops0=$(awk '/ ops / { print $4; exit }' "$work/$kind-$rep.progress")
  [ -n "$ops0" ] || die "no progress line from gatehouse load ($kind, rep $rep): $(tail -3 "$work/$kind-$rep.progress")"
  for p in "${ports[@]}"; do before_stats+=("$(evalsha "$p")"); done
  wait "$load_pid" || die "gatehouse load ($kind, rep $rep) failed: $(head -c 400 "$out") $(tail -3 "$work/$kind-$rep.progress")"
  local redis1 node1; redis1=$(cpu_of "${redis_pids[@]}"); node1=$(cpu_of "$node")
  for p in "${ports[@]}"; do after_stats+=("$(evalsha "$p")"); done
  jq -e '.passed == true and .correctness_failures == 0 and ((.errors // {}) | length) == 0' "$out" >/dev/null \
    || die "the $kind run $rep is not a result: $(jq -c '{passed, correctness_failures, errors, failures}' "$out")"
  local checks rate calls="" usec="" i
  local total; total=$(jq -r '.kinds.check.count' "$out")
  [ "$total" -lt $(( users * 85 / 100 )) ] || die "the $kind run $rep used up its $users users' challenges ($total checks): not a result"
  checks=$(( total - ops0 )); rate=$(jq -r '.kinds.check.ops_per_s' "$out")
  for i in "${!ports[@]}"; do
    read -r c0 u0 <<<"${before_stats[$i]}"; read -r c1 u1 <<<"${after_stats[$i]}"
    calls+="$((c1 - c0)) "; usec+="$((u1 - u0)) "
  done
  echo "$kind $rep $rate $checks $(awk -v a="$redis0" -v b="$redis1" 'BEGIN { printf "%.3f", b - a }') $(awk -v a="$node0" -v b="$node1" 'BEGIN { printf "%.3f", b - a }') calls ${calls% } usec ${usec% }" >>"$work/runs"
  printf '  rep %s  %-7s %8.0f checks/s  (%s checks)  redis cpu %ss  node cpu %ss  evalsha calls per server: %s\n' \
    "$rep" "$kind" "$rate" "$checks" "$(awk -v a="$redis0" -v b="$redis1" 'BEGIN { printf "%.2f", b - a }')" \
    "$(awk -v a="$node0" -v b="$node1" 'BEGIN { printf "%.2f", b - a }')" "${calls% }"
}

echo "== $reps repetition(s) of ${duration} s; gatehouse load --mix check=100 --concurrency 50 --users $users --client-ips $client_ips"
: >"$work/runs"
for rep in $(seq 1 "$reps"); do
  if [ $((rep % 2)) = 1 ]; then run single "$rep"; run cluster "$rep"; else run cluster "$rep"; run single "$rep"; fi
done

# --- Figures. -----------------------------------------------------------------------------------
ratios=$(awk '$1 == "single" { s[$2] = $3 } $1 == "cluster" { c[$2] = $3 } END { for (r in s) printf "%.3f\n", c[r] / s[r] }' "$work/runs")
ratio=$(median <<<"$ratios")
per() {  # per KIND FIELD → median over reps of FIELD / checks
  awk -v k="$1" -v f="$2" '$1 == k { printf "%.9f\n", $f / $4 }' "$work/runs" | median
}
calls_per() {  # calls_per KIND → median EVALSHA calls per check, all servers
  awk -v k="$1" '$1 == k { n = 0; for (i = 8; $i != "usec"; i++) n += $i; printf "%.3f\n", n / $4 }' "$work/runs" | median
}
usec_per() {  # usec_per KIND → median script time per check (µs), all servers
  awk -v k="$1" '$1 == k { for (i = 8; $i != "usec"; i++); n = 0; for (j = i + 1; j <= NF; j++) n += $j; printf "%.3f\n", n / $4 }' "$work/runs" | median
}
shares() {  # the cluster's EVALSHA calls per server, summed over reps, as shares
  awk '$1 == "cluster" { for (i = 8; $i != "usec"; i++) c[i - 8] += $i } END { t = 0; for (i in c) t += c[i]; for (i = 0; i in c; i++) printf "%s%.0f%%", (i ? " / " : ""), 100 * c[i] / t }' "$work/runs"
}
single_rate=$(awk '$1 == "single" { print $3 }' "$work/runs" | median)
cluster_rate=$(awk '$1 == "cluster" { print $3 }' "$work/runs" | median)
result=PASS; awk -v r="$ratio" 'BEGIN { exit !(r >= 0.70) }' || result=MISS
report() {
  echo "# Code checks on a Redis Cluster vs one Redis ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "| measure | one Redis | 3-master cluster | ratio (median) | per rep | target | result |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  echo "| TOTP code checks over HTTP, 1 node, load check c50 | $(printf '%.0f' "$single_rate") /s | $(printf '%.0f' "$cluster_rate") /s | $ratio | $(tr '\n' ' ' <<<"$ratios") | ≥ 0.70 | $result |"
  echo
  echo "Per check (medians over the repetitions):"
  echo
  echo "| per check | one Redis | 3-master cluster |"
  echo "| --- | --- | --- |"
  echo "| Redis CPU (all redis-server processes, /proc user+system) | $(awk -v v="$(per single 5)" 'BEGIN { printf "%.1f µs", v * 1e6 }') | $(awk -v v="$(per cluster 5)" 'BEGIN { printf "%.1f µs", v * 1e6 }') |"
  echo "| script time Redis reports (INFO commandstats, EVALSHA usec) | $(printf '%.1f µs' "$(usec_per single)") | $(printf '%.1f µs' "$(usec_per cluster)") |"
  echo "| EVALSHA calls (round trips to Redis) | $(calls_per single) | $(calls_per cluster) |"
  echo "| node CPU | $(awk -v v="$(per single 6)" 'BEGIN { printf "%.1f µs", v * 1e6 }') | $(awk -v v="$(per cluster 6)" 'BEGIN { printf "%.1f µs", v * 1e6 }') |"
  echo
  echo "- the cluster's EVALSHA calls by master: $(shares) (users and addresses spread by CRC16 slot)"
  echo "- $reps repetition(s) × $duration s, order alternating per rep; checks carry a client_ip from $client_ips addresses; every Redis AOF everysec; cluster without replicas; machine $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg); binary $bin"
}
if [ -n "$out" ]; then report | tee "$out"; else report; fi
if [ "$strict" = 1 ] && [ "$result" = MISS ]; then exit 1; fi
