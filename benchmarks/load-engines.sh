#!/usr/bin/env bash
# The load generator's own CPU per request with each engine of its timed run (`gatehouse load
# --engine epoll|nio`), against one running node, interleaved in one run:
#
#   for each mix (check=100, auth=100) and repetition: epoll then nio, or nio then epoll
#   (the order alternates every repetition), --concurrency 50, --duration S each
#
# Per run: the generator's CPU during the timed run (user + system, its own getrusage, the JSON
# report's `run_cpu_s`) divided by the operations it completed (`total_ops`), in µs per request;
# for the record also the whole process's CPU (seeding included, from the shell's `times`) per
# request. Per mix: the median of each engine's runs and the ratio nio/epoll of the medians. A
# run that did not pass, had errors or skipped operations is invalid and left out.
#
#   benchmarks/load-engines.sh [--reps N] [--duration S]
#
# Default: 5 repetitions of 5 s (about 6 minutes). Exit 2 when something broke (an invalid run, a
# failed set-up). Loopback only, inside scripts/topology.sh -n 1 (Redis with AOF, one node;
# GATEHOUSE_BINARY=<path> skips its build); everything is torn down and removed on exit.
set -euo pipefail

reps=5 duration=5
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "load-engines: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
done
[[ "$reps" =~ ^[0-9]+$ ]] && [ "$reps" -ge 1 ] && [ "$reps" -le 50 ] || { echo "load-engines: --reps must be 1..50" >&2; exit 64; }
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 1 ] && [ "$duration" -le 300 ] || { echo "load-engines: --duration must be 1..300 (whole seconds)" >&2; exit 64; }
root="$(cd "$(dirname "$0")/.." && pwd)"

# ---------------------------------------------------------------------------------------------
# Outside the topology: find the tools and the binary, then re-enter under scripts/topology.sh.
if [ "${GATEHOUSE_LOAD_ENGINES_INNER:-}" != 1 ]; then
  # What this script starts (topology.sh checks its own), from the table of external programs.
  "$root/scripts/bootstrap.sh" --require jq redis-server redis-cli nginx curl python3 || exit 2
  if [ -z "${GATEHOUSE_BINARY:-}" ]; then
    if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
    echo "load-engines: building the release binary (set GATEHOUSE_BINARY to skip)" >&2
    (cd "$root" && swift build -c release --product gatehouse >&2)
    GATEHOUSE_BINARY="$(cd "$root" && swift build -c release --show-bin-path)/gatehouse"
  fi
  [ -x "$GATEHOUSE_BINARY" ] || { echo "load-engines: $GATEHOUSE_BINARY is not an executable" >&2; exit 2; }
  help=$("$GATEHOUSE_BINARY" load --help 2>&1 || true)
  grep -q -- '--engine' <<<"$help" || {
    echo "load-engines: $GATEHOUSE_BINARY has no 'load --engine': rebuild it" >&2; exit 2; }
  export GATEHOUSE_BINARY GATEHOUSE_LOAD_ENGINES_INNER=1 GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-notice}"
  # The topology's state (Redis AOF: hundreds of MB after the check runs' users) goes to a
  # directory of ours, removed after a clean run and kept (and named) when something broke.
  topology_dir="$(mktemp -d /tmp/gatehouse-load-engines-topology.XXXXXX)"
  rc=0
  "$root/scripts/topology.sh" -n 1 -d "$topology_dir" -- "$0" "${args[@]}" || rc=$?
  if [ "$rc" = 0 ]; then rm -rf "$topology_dir"; else echo "load-engines: topology state kept in $topology_dir" >&2; fi
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside the topology (GH_* exported by scripts/topology.sh).
bin="$GATEHOUSE_BINARY"
read -r node_url _ <<<"$GH_NODE_URLS"
work="$(mktemp -d /tmp/gatehouse-load-engines.XXXXXX)"
keep=0
trap '[ "$keep" = 1 ] && echo "load-engines: logs kept in $work" >&2 || rm -rf "$work"' EXIT

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "nan" && b > 0) printf "%.3f\n", a / b; else print "nan" }'; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
# CPU seconds (user + system) of this shell's reaped children so far: the second line of `times`,
# run in this shell (in a pipe or a command substitution it would count a subshell's children).
children_cpu() { times >"$work/times"; awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } printf "%.3f\n", s }' "$work/times"; }

echo "== load-engines: node $node_url; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); binary $bin"

# Users: each `check` spends the one challenge opened for a user before the run (90% of the users
# get one), so a 1 s run measures the rate and the check runs get three times what they need.
"$bin" load --url "$node_url" --users 20000 --concurrency 50 --duration 1 --mix check=100 --json --no-progress \
  --admin-key "$GH_ADMIN_KEY" --frontend-key "$GH_FRONTEND_KEY" --verify-key "$GH_VERIFY_KEY" >"$work/calibrate.json" 2>&1 || true
rate=$(jq -r '.kinds.check.ops_per_s // empty' "$work/calibrate.json" 2>/dev/null || true)
[ -n "$rate" ] || { keep=1; echo "load-engines: the 1 s calibration run failed: $(head -c 300 "$work/calibrate.json")" >&2; exit 2; }
check_users=$(awk -v r="$rate" -v d="$duration" 'BEGIN { if (r < 1500) r = 1500; u = int(r * d * 3 / 0.9) + 1; if (u > 100000) u = 100000; print u }')
echo "users: check runs $check_users (calibration: $(printf '%.0f' "$rate") checks/s), auth runs 200"

declare -A run_us whole_us
invalid=()
run() {  # run MIX ENGINE REP
  local mix=$1 engine=$2 rep=$3 users=200
  [ "$mix" = check ] && users=$check_users
  local log="$work/$mix-$engine-$rep.json" before after load_before rc=0
  load_before=$(loadavg)
  children_cpu >"$work/before"
  # Not in a command substitution: `times` counts the generator only once it is reaped here.
  timeout $((duration + 300)) "$bin" load --url "$node_url" --users "$users" --concurrency 50 --duration "$duration" \
    --mix "$mix=100" --engine "$engine" --json --no-progress \
    --admin-key "$GH_ADMIN_KEY" --frontend-key "$GH_FRONTEND_KEY" --verify-key "$GH_VERIFY_KEY" >"$log" 2>"$log.stderr" || rc=$?
  children_cpu >"$work/after"
  before=$(cat "$work/before") after=$(cat "$work/after")
  local ops cpu passed errors skipped transport seen
  ops=$(jq -r '.total_ops // empty' "$log" 2>/dev/null || true)
  cpu=$(jq -r '.run_cpu_s // empty' "$log" 2>/dev/null || true)
  passed=$(jq -r '.passed // empty' "$log" 2>/dev/null || true)
  errors=$(jq -c '.errors // {}' "$log" 2>/dev/null || echo '?')
  skipped=$(jq -c '.skipped // {}' "$log" 2>/dev/null || echo '?')
  transport=$(jq -r '.transport_errors // empty' "$log" 2>/dev/null || true)
  seen=$(jq -r '.engine // empty' "$log" 2>/dev/null || true)
  if [ "$rc" != 0 ] || [ "$passed" != true ] || [ "$errors" != "{}" ] || [ "$skipped" != "{}" ] || [ "$transport" != 0 ] \
     || [ "$seen" != "$engine" ] || [ -z "$ops" ] || [ "$ops" = 0 ] || [ -z "$cpu" ]; then
    keep=1
    invalid+=("$mix $engine rep $rep")
    printf '  %-5s rep %d  %-5s INVALID (exit %s, passed %s, errors %s, skipped %s) %s\n' "$mix" "$rep" "$engine" "$rc" "${passed:-?}" "$errors" "$skipped" \
      "$(head -c 300 "$log.stderr")"
    return
  fi
  run_us[$mix,$engine,$rep]=$(awk -v c="$cpu" -v n="$ops" 'BEGIN { printf "%.2f\n", c / n * 1e6 }')
  whole_us[$mix,$engine,$rep]=$(awk -v a="$before" -v b="$after" -v n="$ops" 'BEGIN { printf "%.2f\n", (b - a) / n * 1e6 }')
  printf '  %-5s rep %d  %-5s %8d ops  %7.0f ops/s  run CPU %6.2f s  %7s µs/op   whole process %7s µs/op (seeding included)  load average %s → %s\n' \
    "$mix" "$rep" "$engine" "$ops" "$(jq -r '.throughput' "$log")" "$cpu" "${run_us[$mix,$engine,$rep]}" "${whole_us[$mix,$engine,$rep]}" \
    "$load_before" "$(loadavg)"
}

echo "== $reps repetition(s) of ${duration} s per run and mix; --concurrency 50, one node"
for mix in check auth; do
  for rep in $(seq 1 "$reps"); do
    if [ $((rep % 2)) = 1 ]; then run "$mix" epoll "$rep"; run "$mix" nio "$rep"; else run "$mix" nio "$rep"; run "$mix" epoll "$rep"; fi
  done
done

echo
echo "== results (µs of generator CPU per request; medians over the valid repetitions)"
printf '%-6s %-28s %-28s %-14s %-44s %s\n' mix "epoll run (whole process)" "nio run (whole process)" "ratio nio/epoll" "per rep epoll / nio (run)" "ratio whole process"
for mix in check auth; do
  declare -A m=()
  for engine in epoll nio; do
    runs=() wholes=()
    for rep in $(seq 1 "$reps"); do
      [ -n "${run_us[$mix,$engine,$rep]:-}" ] || continue
      runs+=("${run_us[$mix,$engine,$rep]}"); wholes+=("${whole_us[$mix,$engine,$rep]}")
    done
    m[$engine]=$(median "${runs[@]}"); m[$engine,whole]=$(median "${wholes[@]}")
    m[$engine,list]="${runs[*]}"
  done
  printf '%-6s %-28s %-28s %-14s %-44s %s\n' "$mix" "${m[epoll]} (${m[epoll,whole]})" "${m[nio]} (${m[nio,whole]})" \
    "$(ratio "${m[nio]}" "${m[epoll]}")" "${m[epoll,list]} / ${m[nio,list]}" "$(ratio "${m[nio,whole]}" "${m[epoll,whole]}")"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${#invalid[@]}" -gt 0 ]; then
  echo "INVALID runs (left out): ${invalid[*]}"
  exit 2
fi
