#!/usr/bin/env bash
# Where one node's CPU goes per request: a sampled profile (perf) of `gatehouse serve` under each
# kind of code-check traffic, summed into the parts of a request, with the node's CPU per request.
#
#   benchmarks/profile.sh [--duration S] [--users U] [--kinds LIST] [--out FILE]
#
# Starts, on loopback, one redis-server (AOF on, fsync every second) and one node, then for each
# kind (default all four) runs `gatehouse load` with 50 in flight and records the node with
# `perf record -F 999 -g` for --duration seconds (default 4) of the timed run, which lasts 3 s
# more (each valid check spends a challenge opened before the run: 90,000 of them must last; a
# run that runs out is an error, not a profile):
#   valid      `--mix check=100`: a valid TOTP code on a challenge opened before the run
#              (POST /v1/login/finish → the code-check script → a session token)
#   wrong      `--mix wrongcheck=100`: a wrong code on such a challenge, 4 per challenge,
#              inside the user's free failures (401 invalid_code)
#   throttled  `--mix wrongcheck=100 --wrong-per-challenge 1000` on 500 users: after each
#              user's 5 free failures nearly every answer is 429
#   replay     `--mix replay=100`: login/start, then a code the user already spent (two
#              requests per operation: the start is in the profile too)
#   auth       `GET /v1/auth` with a valid session (`wrk -t2 -c100`, as e2e.sh's line 1; not in
#              the default set): the check every webmail request makes
# For each kind it prints the operations per second, the node's CPU µs per operation (from
# /proc over the recorded window), and the node's samples with their µs per operation split three
# ways (benchmarks/profile-parts.py): by the part of a request nearest on the stack (HTTP: NIO,
# HTTP/1, the fast path, the router; JSON; tokens; TOTP; the Redis client; the service), by what
# the sampled function is (kernel, Swift runtime, malloc/free, libc, libcrypto, or one of those
# parts), and by thread; then the 12 hottest functions.
# Needs perf (Debian's linux-perf; `scripts/bootstrap.sh --bench`) and swift-demangle (the Swift
# toolchain). Exit 2 when something broke, including a load run that did not pass.
set -euo pipefail

duration=4 users=100000 kinds="valid wrong throttled replay" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --kinds) kinds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile: unknown option $1" >&2; exit 64 ;;
  esac
done
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 2 ] && [ "$duration" -le 120 ] || { echo "profile: --duration must be 2..120" >&2; exit 64; }
[[ "$users" =~ ^[0-9]+$ ]] && [ "$users" -ge 1000 ] && [ "$users" -le 100000 ] || { echo "profile: --users must be 1000..100000" >&2; exit 64; }
for k in $kinds; do case "$k" in valid|wrong|throttled|replay|auth) ;; *) echo "profile: unknown kind $k" >&2; exit 64 ;; esac; done
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh" --require perf redis-server redis-cli jq curl python3 wrk || exit 2
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
command -v swift-demangle >/dev/null || { echo "profile: swift-demangle (part of the Swift toolchain) is not on PATH" >&2; exit 2; }

name=profile work="$(mktemp -d /tmp/gatehouse-profile.XXXXXX)" pids=()
. "$root/benchmarks/lib.sh"
bench_binary
redis_port=$(free_port)
start_redis redis "$redis_port"
bench_keys
start_node node "redis://127.0.0.1:$redis_port"
echo "== profile: node $node_url (pid $node_pid), Redis 127.0.0.1:$redis_port; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); binary $bin"

# The node's samples over the recording, summed into parts (profile-parts.py) with CPU per operation.
summarize() {  # summarize KIND HEADLINE CPU_US
  local kind=$1
  perf script -i "$work/perf-$run_number-$kind.data" -F comm,tid,ip,sym,dso >"$work/script-$run_number-$kind.txt" 2>/dev/null || true
  [ -s "$work/script-$run_number-$kind.txt" ] || die "$kind: perf script gave nothing ($work/perf-$run_number-$kind.data)"
  echo
  echo "== $2"
  { echo "$kind: ${2#*: }"
    python3 "$root/benchmarks/profile-parts.py" "$work/script-$run_number-$kind.txt" "$3"; } | tee "$work/parts-$run_number-$kind.txt"
}

# GET /v1/auth: a signed-in user, then wrk on the node with the session for the recording and
# a second either side.
profile_auth() {
  run_number=$((run_number + 1))
  local secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ user=profile-auth@load.example challenge session wrk_log="$work/wrk-$run_number.txt"
  curl -sf --max-time 10 -o /dev/null -X POST "$node_url/v1/users/import" -H "Authorization: Bearer $admin_key" \
    -H 'Content-Type: application/x-ndjson' --data-binary "{\"user\":\"$user\",\"totp_secret\":\"$secret\",\"recovery_email\":\"r@load.example\",\"verified\":true}" \
    || die "auth: importing the user failed"
  challenge=$(curl -sf --max-time 10 -X POST "$node_url/v1/login/start" -H "Authorization: Bearer $frontend_key" \
    -H 'Content-Type: application/json' -d "{\"user\":\"$user\"}" | jq -r '.challenge.token // empty')
  session=$(curl -sf --max-time 10 -X POST "$node_url/v1/login/finish" -H "Authorization: Bearer $frontend_key" \
    -H 'Content-Type: application/json' -d "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$("$bin" otp --secret "$secret")\"}" \
    | jq -r '.session.token // empty')
  [ -n "$session" ] || die "auth: signing in the wrk user failed"
  timeout $((duration + 30)) wrk -t2 -c100 -d"$((duration + 2))s" -H "Authorization: Bearer $verify_key" -H "Gatehouse-Session: $session" \
    "$node_url/v1/auth" >"$wrk_log" 2>&1 &
  local wp=$! cpu0 cpu1
  sleep 1
  cpu0=$(cpu_of "$node_pid")
  perf record -F 999 -g -p "$node_pid" -o "$work/perf-$run_number-auth.data" -- sleep "$duration" >"$work/perf-$run_number-auth.log" 2>&1 \
    || die "auth: perf record failed: $(tail -3 "$work/perf-$run_number-auth.log")"
  cpu1=$(cpu_of "$node_pid")
  wait "$wp" || die "auth: wrk failed: $(head -c 300 "$wrk_log")"
  ! grep -qE 'Non-2xx|Socket errors' "$wrk_log" || die "auth: wrk saw errors: $(grep -E 'Non-2xx|Socket errors' "$wrk_log")"
  local rate cpu_us
  rate=$(awk '/^Requests\/sec:/ { print $2 }' "$wrk_log")
  [ -n "$rate" ] || die "auth: wrk gave no rate: $(head -c 300 "$wrk_log")"
  # wrk's rate is over its whole run; the recording is the middle of it.
  cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v r="$rate" -v d="$duration" 'BEGIN { printf "%.1f", (b - a) * 1e6 / (r * d) }')
  summarize auth "auth (GET /v1/auth, wrk -t2 -c100): $(printf '%.0f' "$rate") ops/s, node $cpu_us µs CPU per operation" "$cpu_us"
}

profile_kind() {  # profile_kind KIND
  local kind=$1 mix extra=() kind_users=$users
  [ "$kind" = auth ] && { profile_auth; return; }
  case "$kind" in
    valid) mix="check=100" ;;
    wrong) mix="wrongcheck=100" ;;
    throttled) mix="wrongcheck=100"; extra=(--wrong-per-challenge 1000); kind_users=500 ;;
    replay) mix="replay=100" ;;
  esac
  run_number=$((run_number + 1))
  local log="$work/load-$run_number-$kind.json" phase="$work/phase-$run_number-$kind"
  # The timed run: 1 s to its first progress line, 1 s more, the recording, 1 s after.
  "$bin" load --url "$node_url" --users "$kind_users" --concurrency 50 --duration $((duration + 3)) --mix "$mix" "${extra[@]}" \
    --admin-key "$admin_key" --frontend-key "$frontend_key" --verify-key "$verify_key" --json --progress \
    2> >(while IFS= read -r line; do case "$line" in load:*) echo "$line" >>"$phase" ;; *) echo "$line" >>"$log.stderr" ;; esac; done) >"$log" &
  local lp=$!
  # Wait for the timed run (its first progress line comes 1 s in), then 1 s more.
  for _ in $(seq 1 3000); do [ -s "$phase" ] && break; kill -0 "$lp" 2>/dev/null || break; sleep 0.1; done
  [ -s "$phase" ] || die "$kind: the load run did not start: $(tail -c 300 "$log.stderr" 2>/dev/null)"
  sleep 1
  local ops0 cpu0 ops1 cpu1
  ops0=$(tail -1 "$phase" | awk '{ print $4 }'); cpu0=$(cpu_of "$node_pid")
  perf record -F 999 -g -p "$node_pid" -o "$work/perf-$run_number-$kind.data" -- sleep "$duration" >"$work/perf-$run_number-$kind.log" 2>&1 \
    || die "$kind: perf record failed: $(tail -3 "$work/perf-$run_number-$kind.log")"
  ops1=$(tail -1 "$phase" | awk '{ print $4 }'); cpu1=$(cpu_of "$node_pid")
  wait "$lp" || die "$kind: the load run failed: $(head -c 400 "$log") $(tail -c 300 "$log.stderr" 2>/dev/null)"
  [ "$(jq -r .passed "$log")" = true ] && [ "$(jq -r '.errors | length' "$log")" = 0 ] && [ "$(jq -r '.skipped | length' "$log")" = 0 ] \
    || die "$kind: the load run did not pass or ran out of users (skipped operations become session checks): $(jq -c '{passed, errors, failures, skipped}' "$log")"
  local op="${mix%%=*}" rate cpu_us
  rate=$(jq -r ".kinds.$op.ops_per_s" "$log")
  # Progress lines come once a second, so the ops window is within a second of the recording.
  cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v o0="$ops0" -v o1="$ops1" 'BEGIN { if (o1 > o0) printf "%.1f", (b - a) * 1e6 / (o1 - o0); else print "nan" }')
  summarize "$kind" "$kind ($mix${extra[*]:+ ${extra[*]}}, $kind_users users): $(printf '%.0f' "$rate") ops/s, node $cpu_us µs CPU per operation; $(jq -c '.throttled' "$log") throttled" "$cpu_us"
}

run_number=0
for kind in $kinds; do profile_kind "$kind"; done

if [ -n "$out" ]; then
  {
    echo "# Gatehouse node CPU per request ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for parts in "$work"/parts-*.txt; do echo; echo '```'; cat "$parts"; echo '```'; done
  } >"$out"
  echo "(written to $out)"
fi
