#!/usr/bin/env bash
# End-to-end benchmarks, all in one go, each as a ratio against a reference measured in
# the same run (median of interleaved repetitions; the order alternates every repetition):
#
#   1. GET /v1/auth on one node (wrk -t2 -c100)            vs nginx `return 204`          ≥ 0.60
#   2. nginx auth_request → Gatehouse (wrk -t2 -c100)      vs auth_request → nginx 204     ≥ 0.85
#   3. TOTP code checks over HTTP, one node (gatehouse load) vs redis-benchmark EVALSHA of
#      the same code-check script with the same KEYS/ARGV shape on the same Redis          ≥ 0.60
#   3w. wrong codes on challenges opened before the run, one node (load wrongcheck, 4 per
#      challenge, all inside the free failures) vs the valid code checks of line 3         ≥ 1.0
#      and the node's CPU per wrong code vs per valid check (progress-line windows)       ≤ 1.0
#   4. the same code checks on two nodes sharing the Redis  vs one node                    ≥ 0.95
#   5. resident memory of node 1: under the code-check load (highest mid-run sample)      ≤ 128 MiB
#      and idle after all the runs                                                          ≤ 96 MiB
#
#   benchmarks/e2e.sh [--reps N] [--duration S] [--users U] [--quick] [--strict] [--out FILE] [--charts DIR]
#
# Default: 5 repetitions of 4 s (about 18 minutes); on a shared machine three were too few for a
# stable median. A code-check run spends challenges opened before it, 90,000 for 100,000 users
# (the most `gatehouse load` seeds), so a run longer than 4 s can run out above 18,000 checks/s
# (it is then invalid, not a result). --quick: one repetition of 2 s (a smoke run, not a
# result). --strict: exit 1 when a target is missed. Exit 2 when something broke (a wrk run with
# non-2xx answers or socket errors, a load run that did not pass, a failed set-up check). Runs on
# loopback only, inside scripts/topology.sh (Redis with AOF + 2 nodes; GATEHOUSE_BINARY=<path>
# skips its build), plus an nginx of its own; everything is torn down on exit.
# GATEHOUSE_LOAD_BINARY=<path> runs the client side (`gatehouse load`, `gatehouse otp`) from
# another build than the nodes, so that two builds of the node can be compared under the same
# load generator (default: GATEHOUSE_BINARY).
# --charts DIR: where benchmarks/plot.sh draws the run's charts (SVG): per line the latency
# percentile curve of every repetition, Gatehouse against its reference, and the throughput per
# repetition; their data (TSV) goes to DIR/data. Default: a new /tmp/gatehouse-e2e-charts.XXXXXX,
# named at the end; `--charts benchmarks/charts` replaces the examples in the repository.
set -euo pipefail

reps=5 duration=4 users=100000 strict=0 out="" quick=0 charts=""
usage() { sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --strict) strict=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --charts) charts="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "e2e: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
done
if [ "$quick" = 1 ]; then reps=1; duration=2; fi
[[ "$reps" =~ ^[0-9]+$ ]] && [ "$reps" -ge 1 ] && [ "$reps" -le 50 ] || { echo "e2e: --reps must be 1..50" >&2; exit 64; }
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 1 ] && [ "$duration" -le 300 ] || { echo "e2e: --duration must be 1..300 (whole seconds)" >&2; exit 64; }
[[ "$users" =~ ^[0-9]+$ ]] && [ "$users" -ge 2 ] && [ "$users" -le 100000 ] || { echo "e2e: --users must be 2..100000" >&2; exit 64; }
root="$(cd "$(dirname "$0")/.." && pwd)"

# ---------------------------------------------------------------------------------------------
# Outside the topology: find the tools and the binary, then re-enter under scripts/topology.sh.
if [ "${GATEHOUSE_E2E_INNER:-}" != 1 ]; then
  # What this script starts, checked against the table of external programs, which names the
  # packages; `scripts/bootstrap.sh --bench` installs them all.
  "$root/scripts/bootstrap.sh" --require wrk jq nginx redis-server redis-cli redis-benchmark curl python3 gnuplot || exit 2
  # The charts' directory, made here so that the run inside the topology gets the same one.
  [ -n "$charts" ] || charts="$(mktemp -d /tmp/gatehouse-e2e-charts.XXXXXX)"
  mkdir -p "$charts" && GATEHOUSE_E2E_CHARTS="$(cd "$charts" && pwd)" && export GATEHOUSE_E2E_CHARTS
  if [ -z "${GATEHOUSE_BINARY:-}" ]; then
    if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
    echo "e2e: building the release binary (set GATEHOUSE_BINARY to skip)" >&2
    (cd "$root" && swift build -c release --product gatehouse >&2)
    GATEHOUSE_BINARY="$(cd "$root" && swift build -c release --show-bin-path)/gatehouse"
  fi
  [ -x "$GATEHOUSE_BINARY" ] || { echo "e2e: $GATEHOUSE_BINARY is not an executable" >&2; exit 2; }
  GATEHOUSE_LOAD_BINARY="${GATEHOUSE_LOAD_BINARY:-$GATEHOUSE_BINARY}"
  [ -x "$GATEHOUSE_LOAD_BINARY" ] || { echo "e2e: $GATEHOUSE_LOAD_BINARY is not an executable" >&2; exit 2; }
  "$GATEHOUSE_BINARY" debug code-check-script --sha1 >/dev/null 2>&1 || {
    echo "e2e: $GATEHOUSE_BINARY has no 'debug' subcommand (Sources/gatehouse/DebugCommands.swift): rebuild it" >&2; exit 2; }
  export GATEHOUSE_BINARY GATEHOUSE_LOAD_BINARY GATEHOUSE_E2E_INNER=1 GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-notice}"
  # The topology's state (Redis AOF, node logs) goes to a directory of ours, removed after a
  # clean run and kept (and named) when something broke.
  topology_dir="$(mktemp -d /tmp/gatehouse-e2e-topology.XXXXXX)"
  rc=0
  "$root/scripts/topology.sh" -n 2 -d "$topology_dir" -- "$0" "${args[@]}" || rc=$?
  if [ "$rc" = 0 ] || [ -f "$topology_dir/e2e-finished" ]; then rm -rf "$topology_dir"; else echo "e2e: topology state kept in $topology_dir" >&2; fi
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside the topology (GH_* exported by scripts/topology.sh).
bin="$GATEHOUSE_BINARY"             # the nodes' build: `serve` and the script it runs (`debug`)
load_bin="$GATEHOUSE_LOAD_BINARY"  # the client side: `load` and `otp`
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
read -r node1_url node2_url _ <<<"$GH_NODE_URLS"
read -r node1_pid node2_pid _ <<<"$GH_NODE_PIDS"
node1_hostport="${node1_url#http://}"
redis_port="$GH_REDIS_PORT"
rcli() { redis-cli -p "$redis_port" "$@"; }

# Our own nginx (the references and the auth_request front), in a private directory. The master
# runs as root and the workers as nobody: nothing is read from disk, temp paths and logs live here.
work="$(mktemp -d /tmp/gatehouse-e2e.XXXXXX)"
chmod 755 "$work"
nginx_pid="" bg_pids=()
teardown() {
  local rc=$? pid
  for pid in "${bg_pids[@]}" $nginx_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $nginx_pid; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "e2e: logs kept in $work" >&2; fi
}
trap teardown EXIT
trap 'exit 130' INT TERM

die() { echo "e2e: $*" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_for() {  # wait_for SECONDS command…
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}}'; }
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x == "" || x == "nan") print "n/a"; else printf "%.*f\n", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'; }

# CPU seconds (user + system) of processes, and the machine's busy CPU seconds, for a CPU split.
hz=$(getconf CLK_TCK)
cpu_of() {  # cpu_of PID… → seconds
  local total=0 pid f
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  awk -v t="$total" -v hz="$hz" 'BEGIN { printf "%.2f\n", t / hz }'
}
busy_cpu() { awk '/^cpu / { printf "%.2f\n", ($2+$3+$4+$7+$8) / '"$hz"' }' /proc/stat; }
nginx_pids() { echo "$nginx_pid $(pgrep -P "$nginx_pid" 2>/dev/null | tr '\n' ' ')"; }
cpu_snapshot() { echo "$(cpu_of "$node1_pid") $(cpu_of "$node2_pid") $(cpu_of $(nginx_pids)) $(cpu_of "$GH_REDIS_PID") $(busy_cpu)"; }
cpu_split() {  # cpu_split "BEFORE" "AFTER" → text
  awk -v b="$1" -v a="$2" 'BEGIN { split(b, x, " "); split(a, y, " ");
    n1 = y[1]-x[1]; n2 = y[2]-x[2]; ng = y[3]-x[3]; rd = y[4]-x[4]; all = y[5]-x[5];
    printf "cpu s: node1 %.1f node2 %.1f nginx %.1f redis %.1f clients+other %.1f", n1, n2, ng, rd, all-n1-n2-ng-rd }'
}
mem_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

echo "== set-up (state in $GH_DIR and $work; machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"

# --- A signed-in user for wrk: import, login/start, login/finish with the current TOTP code. ----
secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
wrk_user="e2e-wrk@load.example"
import_status=$(curl -s -o "$work/import.json" -w '%{http_code}' --max-time 10 -X POST "$node1_url/v1/users/import" \
  -H "Authorization: Bearer $GH_ADMIN_KEY" -H 'Content-Type: application/x-ndjson' \
  --data-binary "{\"user\":\"$wrk_user\",\"totp_secret\":\"$secret\",\"recovery_email\":\"recovery+$wrk_user\",\"verified\":true}")
[ "$import_status" = 200 ] || die "import answered $import_status: $(cat "$work/import.json")"
login() {  # login USER CODE → writes $work/finish.json, prints the finish status
  local challenge
  challenge=$(curl -s --max-time 10 -X POST "$node1_url/v1/login/start" -H "Authorization: Bearer $GH_FRONTEND_KEY" \
    -H 'Content-Type: application/json' -d "{\"user\":\"$1\"}" | jq -r '.challenge.token // empty')
  [ -n "$challenge" ] || die "login/start for $1 gave no challenge"
  curl -s -o "$work/finish.json" -w '%{http_code}' --max-time 10 -X POST "$node1_url/v1/login/finish" \
    -H "Authorization: Bearer $GH_FRONTEND_KEY" -H 'Content-Type: application/json' \
    -d "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$2\"}"
}
finish_status=$(login "$wrk_user" "$("$load_bin" otp --secret "$secret")")
session=$(jq -r '.session.token // empty' "$work/finish.json")
[ "$finish_status" = 200 ] && [ -n "$session" ] || die "login/finish answered $finish_status: $(cat "$work/finish.json")"
auth_headers=(-H "Authorization: Bearer $GH_VERIFY_KEY" -H "Gatehouse-Session: $session")
[ "$(status_of "${auth_headers[@]}" "$node1_url/v1/auth")" = 204 ] || die "GET /v1/auth with the session is not 204"
[ "$(status_of -H "Authorization: Bearer $GH_VERIFY_KEY" "$node1_url/v1/auth")" = 401 ] || die "GET /v1/auth without a session is not 401"
echo "session: GET $node1_url/v1/auth → 204 with the session, 401 without"

# --- nginx: reference 204, auth stub, protected content, and the two auth_request fronts. -------
# Four ports at once, held open together while they are picked, so no two are the same (picked
# one by one, a port just let go can come back).
read -r p204 pstub pfront_gh pfront_stub < <(python3 -c '
import socket
held = [socket.socket() for _ in range(4)]
for s in held: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
for s in held: s.close()')
[ -n "$pfront_stub" ] || die "could not pick four free ports"
front() {  # front PORT UPSTREAM: the same front for both variants, only the auth upstream differs
  cat <<EOF
  server { listen 127.0.0.1:$1;
    location /p { auth_request /_auth;
      proxy_pass http://content; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /_auth { internal; proxy_pass http://$2/v1/auth;
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header Authorization "Bearer $GH_VERIFY_KEY";
      proxy_set_header Gatehouse-Session \$cookie_gatehouse_session;
      proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
EOF
}
cat >"$work/nginx.conf" <<EOF
worker_processes auto; daemon off; pid $work/nginx.pid; error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi; client_body_buffer_size 64k;
  # 1: the reference for GET /v1/auth.
  server { listen 127.0.0.1:$p204; location = /x { return 204; } }
  # 2: the reference auth service (same path as Gatehouse's) and the protected content.
  server { listen 127.0.0.1:$pstub; location = /v1/auth { return 204; } }
  server { listen unix:$work/content.sock; location /p { return 200 "ok\n"; } }
  # Idle upstream connections kept per worker: above wrk's 100 connections, so neither side pays
  # for connection set-up when the two workers' share of them is uneven (with 64, one did).
  upstream content { server unix:$work/content.sock; keepalive 128; }
  upstream auth_gatehouse { server $node1_hostport; keepalive 128; }
  upstream auth_stub { server 127.0.0.1:$pstub; keepalive 128; }
$(front "$pfront_gh" auth_gatehouse)
$(front "$pfront_stub" auth_stub)
}
EOF
"$NGINX" -t -q -c "$work/nginx.conf" -p "$work" 2>"$work/nginx-t.log" || die "nginx config: $(cat "$work/nginx-t.log")"
"$NGINX" -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$p204/x" || die "nginx did not start: $(tail -3 "$work/error.log")"
cookie="Cookie: gatehouse_session=$session"
[ "$(status_of "http://127.0.0.1:$p204/x")" = 204 ] || die "nginx /x is not 204"
[ "$(curl -s --max-time 5 -H "$cookie" "http://127.0.0.1:$pfront_gh/p")" = ok ] || die "front → Gatehouse with the session is not 200 ok"
[ "$(status_of "http://127.0.0.1:$pfront_gh/p")" = 401 ] || die "front → Gatehouse without a session is not 401 (auth_request did not run?)"
[ "$(status_of -H "Cookie: gatehouse_session=${session}x" "http://127.0.0.1:$pfront_gh/p")" = 401 ] || die "front → Gatehouse with a tampered session is not 401"
[ "$(curl -s --max-time 5 -H "$cookie" "http://127.0.0.1:$pfront_stub/p")" = ok ] || die "front → stub with the session is not 200 ok"
echo "nginx: /x → 204; /p via Gatehouse → 200 with the session, 401 without or tampered; /p via stub → 200"

# --- The code-check script and its arguments, from the binary; checked against a real request. --
sha=$("$bin" debug code-check-script --sha1)
"$bin" debug code-check-script >"$work/code-check.lua"
loaded=$(rcli SCRIPT LOAD "$(cat "$work/code-check.lua")")
[ "$loaded" = "$sha" ] || die "SCRIPT LOAD named the script $loaded, the binary calls it $sha"
# One wrong TOTP code through the node while MONITOR records what the node sends.
probe_user="e2e-probe@load.example"
curl -s -o /dev/null --max-time 10 -X POST "$node1_url/v1/users/import" -H "Authorization: Bearer $GH_ADMIN_KEY" \
  -H 'Content-Type: application/x-ndjson' --data-binary "{\"user\":\"$probe_user\",\"totp_secret\":\"$secret\",\"recovery_email\":\"r@load.example\",\"verified\":true}"
now=$(date +%s) wrong=""
for candidate in 000000 111111 222222 333333; do
  clash=0
  for t in $((now - 60)) $((now - 30)) "$now" $((now + 30)) $((now + 60)); do
    [ "$("$load_bin" otp --secret "$secret" --time "$t")" = "$candidate" ] && clash=1
  done
  [ "$clash" = 0 ] && { wrong=$candidate; break; }
done
timeout 10 redis-cli -p "$redis_port" MONITOR >"$work/monitor.txt" 2>/dev/null &
monitor=$!; bg_pids+=("$monitor")
sleep 0.3
probe_status=$(login "$probe_user" "$wrong")
sleep 0.3
kill "$monitor" 2>/dev/null || true
[ "$probe_status" = 401 ] || die "a wrong code answered $probe_status, not 401: $(cat "$work/finish.json")"
# MONITOR quotes each argument: "EVALSHA" "<sha>" "5" "gh:{…}:user" …
seen=$(grep -F "\"EVALSHA\" \"$sha\"" "$work/monitor.txt" | grep -F "{$probe_user}" | head -1 | sed 's/^[^"]*//') || true
[ -n "$seen" ] || die "MONITOR did not show the node's EVALSHA of the code-check script"
# Fields: 1 EVALSHA, 2 sha, 3 numkeys, then the keys (KEYS[5] is the challenge marker), then ARGV.
cred_version=$(awk '{ n = $3; gsub(/"/, "", n); print $(n + 4) }' <<<"$seen" | tr -d '"')
challenge_key=$(awk '{ print $8 }' <<<"$seen" | tr -d '"')
mapfile -t probe_args < <("$bin" debug code-check-args --user "$probe_user" --cred-version "$cred_version" --challenge-id "${challenge_key##*:}")
expected="\"EVALSHA\" \"$sha\"$(printf ' "%s"' "${probe_args[@]}")"
# ARGV[13], [14], [15] and [20] are what the script does on success: the session it records (id,
# record, the session list's TTL) and the success event. The node sends them empty for a code that
# matches no step; the reference carries them as a valid check's call does (a fresh id and record:
# as many bytes as the calls line 3 measures), so they are compared by position only.
mask() {
  awk '{ n = $3; gsub(/"/, "", n); $(n + 3 + 13) = "<session-id>"; $(n + 3 + 14) = "<session-record>"
         $(n + 3 + 15) = "<session-list-ttl>"; $(n + 3 + 20) = "<success-event>"; print }' <<<"$1"
}
[ "$(mask "$seen")" = "$(mask "$expected")" ] || die "the node sent
  $seen
but code-check-args gives
  $expected"
echo "code check: SCRIPT LOAD → $sha; code-check-args equals the node's EVALSHA for a wrong code (seen with MONITOR) but for the arguments of success, which the reference carries as a valid check does"

# --- Which load operation measures one code check. ----------------------------------------------
# `check` (one POST /v1/login/finish per op on a challenge made before the run); until the load
# generator has it, `wrong` (login/start + login/finish per op) stands in.
probe_err=$("$load_bin" load --url http://127.0.0.1:1 --users 2 --concurrency 1 --duration 0.01 --mix check=100 \
  --admin-key x --frontend-key x --verify-key x --json --no-progress 2>&1 >/dev/null || true)
if grep -q -- "check=100" <<<"$probe_err"; then op=wrong; else op=check; fi
echo "load operation: $op$([ "$op" = wrong ] && echo " (the load generator has no 'check' yet: each op is login/start + login/finish)")"

# Wrong codes alone (line 3w), if the binary's load generator has them.
probe_err=$("$load_bin" load --url http://127.0.0.1:1 --users 2 --concurrency 1 --duration 0.01 --mix wrongcheck=100 \
  --admin-key x --frontend-key x --verify-key x --json --no-progress 2>&1 >/dev/null || true)
if grep -q -- "wrongcheck=100" <<<"$probe_err"; then wrong_op=""; echo "wrong codes alone: the load generator has no 'wrongcheck' (line 3w is left out)"; else wrong_op=wrongcheck; fi

# Every load run seeds --users users (default 100,000, the figure line 5's memory targets are
# for). A `check` spends the challenge opened for its user before the run, so the users bound
# the checks a run can make; a run that runs out is invalid. A `wrongcheck` user takes 4.
echo "users: $users per load run"

# The reference users: e2e-ref-<12 digits>@load.example, as redis-benchmark expands __rand_int__.
ref_template="e2e-ref-__rand_int__@load.example"
mapfile -t ref_args < <("$bin" debug code-check-args --user "$ref_template" --cred-version "$cred_version")
prefix="${probe_args[1]%%:*}"
# The prefix of the template's keys must be the node's (gh unless GATEHOUSE_REDIS_PREFIX says otherwise).
[ "${ref_args[1]%%:*}" = "$prefix" ] || die "reference keys and node keys differ in prefix"
awk -v n="$users" -v p="$prefix" -v v="$cred_version" \
  'BEGIN { for (i = 0; i < n; i++) printf "HSET %s:{e2e-ref-%012d@load.example}:user cred_version %s\n", p, i, v }' | rcli >/dev/null

# --- The measurements. ------------------------------------------------------------------------
declare -A value   # value[<series>,<rep>] = throughput (empty = invalid)
declare -A extra   # latency and notes
invalid_runs=()

run_wrk() {  # run_wrk SERIES REP SECONDS URL [curl-style -H args…]; SECONDS 0 = warm-up (1 s, not recorded)
  local series=$1 rep=$2 secs=$3 url=$4; shift 4
  local d=$secs; [ "$secs" = 0 ] && d=1
  local before after log="$work/wrk-$series-$rep.txt"
  before=$(cpu_snapshot)
  timeout $((d + 30)) wrk -t2 -c100 -d"${d}s" --latency -s "$root/benchmarks/wrk-percentiles.lua" "$@" "$url" >"$log" 2>&1 || true
  after=$(cpu_snapshot)
  [ "$secs" = 0 ] && return 0
  local rps non2xx sockerr p50 p99
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$log")
  sockerr=$(grep -m1 'Socket errors:' "$log" || true)
  p50=$(awk '$1 == "50%" { print $2 }' "$log"); p99=$(awk '$1 == "99%" { print $2 }' "$log")
  if [ -z "$rps" ] || [ -n "$non2xx" ] || [ -n "$sockerr" ]; then
    value[$series,$rep]=""
    # wrk counts a request as a timeout after 2 s without an answer.
    local why="${non2xx:+non-2xx answers $non2xx; }${sockerr:+$(sed 's/^ *//' <<<"$sockerr"); }${rps:+$rps req/s}"
    [ -n "$rps" ] || why+="wrk failed: $(head -c 200 "$log")"
    invalid_runs+=("$series rep $rep: $why")
    printf '  rep %d  %-14s INVALID (%s)  %s\n' "$rep" "$series" "$why" "$(cpu_split "$before" "$after")"
  else
    value[$series,$rep]=$rps
    printf '  rep %d  %-14s %9.0f req/s  p50 %-8s p99 %-8s %s\n' "$rep" "$series" "$rps" "$p50" "$p99" "$(cpu_split "$before" "$after")"
  fi
}

# Redis rewrites its append-only file in a forked child once the file has doubled since the last
# rewrite (auto-aof-rewrite-percentage 100). Each load run writes 100,000 users and their
# records, so such a rewrite — a child process busy on one of the two cores for seconds — fell
# into whichever run happened to cross the line (seen: a valid-check run at half its rate with
# one fork in it). So the automatic rewrite is off while the runs go (set-up below), and before
# each run that writes to Redis (the load runs and redis-benchmark) the file is rewritten and the
# run starts once the rewrite is over: the same work, between the runs instead of inside one.
# The append-only file itself stays on, fsync every second. Each run's line says if Redis forked
# anyway while it ran.
redis_forks() { rcli INFO stats | tr -d '\r' | awk -F: '$1 == "total_forks" { print $2 }'; }
settle_count=0 settle_ms=0
redis_settle() {
  local t0 i; t0=$(date +%s%N)
  rcli BGREWRITEAOF >/dev/null 2>&1 || true
  for i in $(seq 1 600); do
    if ! rcli INFO persistence | tr -d '\r' | grep -qE '^aof_rewrite_(in_progress|scheduled):1'; then
      settle_count=$((settle_count + 1)) settle_ms=$((settle_ms + ($(date +%s%N) - t0) / 1000000))
      return 0
    fi
    sleep 0.2
  done
  echo "  (Redis was still rewriting its AOF after 120 s; running anyway)"
}
forks_note() {  # forks_note BEFORE → " redis forked N× during the run" when it did
  local now; now=$(redis_forks)
  [ -n "$1" ] && [ -n "$now" ] && [ "$now" != "$1" ] && echo " (redis forked $((now - $1))× during this run: an AOF rewrite)"
  return 0
}

mem_samples=()
run_load() {  # run_load SERIES REP OP URL…
  local series=$1 rep=$2 op=$3; shift 3
  local urls=() u
  for u in "$@"; do urls+=(--url "$u"); done
  local log="$work/load-$series-$rep.json" before after sampler=""
  rm -f "$work/load-phase"
  if [ "$series" = check_1node ]; then
    # VmRSS of node 1 in the middle of the timed run (after seeding; a sample each second).
    # The first progress line comes 1 s into the timed run.
    ( for _ in $(seq 1 $(((duration + 240) * 5))); do
        sleep 0.2
        grep -q 'run' "$work/load-phase" 2>/dev/null && { sleep "$(awk -v d="$duration" 'BEGIN { s = d / 2 - 1; print (s > 0 ? s : 0) }')"; mem_kb "$node1_pid" VmRSS >"$work/mem-under-$rep"; break; }
      done ) &
    sampler=$!; bg_pids+=("$sampler")
  fi
  # Seeding is not timed by us; the load generator reports its own duration. The CPU split below
  # covers seeding + run.
  redis_settle
  local forks0; forks0=$(redis_forks)
  before=$(cpu_snapshot)
  local rc=0
  ( "$load_bin" load "${urls[@]}" --users "$users" --concurrency 50 --duration "$duration" --mix "$op=100" \
      --admin-key "$GH_ADMIN_KEY" --frontend-key "$GH_FRONTEND_KEY" --verify-key "$GH_VERIFY_KEY" --json --progress \
      2> >(while IFS= read -r line; do
             case "$line" in
               # A progress line each second of the timed run: the nodes' CPU seconds and the
               # operations so far, for the CPU per operation over whole seconds of the run.
               load:*) echo run >"$work/load-phase"; echo "$(cpu_of "$node1_pid") $(cpu_of "$node2_pid") $(awk '{ print $4 }' <<<"$line")" >>"$work/cpu-$series-$rep" ;;
               *) echo "$line" >>"$log.stderr" ;;
             esac
           done) ) >"$log" &
  local lp=$!
  if ! timeout $((duration + 240)) tail --pid="$lp" -f /dev/null; then kill "$lp" 2>/dev/null || true; fi
  wait "$lp" || rc=$?
  after=$(cpu_snapshot)
  [ -n "$sampler" ] && { wait "$sampler" 2>/dev/null || true; [ -s "$work/mem-under-$rep" ] && mem_samples+=("$(cat "$work/mem-under-$rep")"); }
  local ops passed failures p50 p99 transport errors skipped
  ops=$(jq -r ".kinds.$op.ops_per_s // empty" "$log" 2>/dev/null || true)
  passed=$(jq -r '.passed // empty' "$log" 2>/dev/null || true)
  failures=$(jq -r '.correctness_failures // empty' "$log" 2>/dev/null || true)
  transport=$(jq -r '.transport_errors // empty' "$log" 2>/dev/null || true)
  p50=$(jq -r ".kinds.$op.latency_ms.p50 // empty" "$log" 2>/dev/null || true)
  p99=$(jq -r ".kinds.$op.latency_ms.p99 // empty" "$log" 2>/dev/null || true)
  errors=$(jq -c '.errors // {}' "$log" 2>/dev/null || echo '?')
  skipped=$(jq -r ".skipped.${op}_skipped // 0" "$log" 2>/dev/null || echo '?')
  if [ "$rc" != 0 ] || [ "$passed" != true ] || [ "$failures" != 0 ] || [ -z "$ops" ] || [ "$errors" != "{}" ] || [ "$skipped" != 0 ]; then
    value[$series,$rep]=""
    local why="exit $rc, passed ${passed:-?}, correctness failures ${failures:-?}, errors $errors"
    [ "$skipped" != 0 ] && why+=", $skipped ${op}s skipped (out of pre-opened challenges: shorten --duration)"
    invalid_runs+=("$series rep $rep: $why")
    printf '  rep %d  %-14s INVALID (%s) %s\n' "$rep" "$series" "$why" "$(head -c 300 "$log.stderr" 2>/dev/null || true)"
  else
    value[$series,$rep]=$ops
    extra[$series,$rep,p50]=$p50; extra[$series,$rep,p99]=$p99
    # Nodes' CPU µs per operation between the first and the last progress line.
    local cpu_us
    cpu_us=$(awk 'NR == 1 { c = $1 + $2; o = $3 } { lc = $1 + $2; lo = $3 } END { if (NR >= 2 && lo > o) printf "%.1f\n", (lc - c) * 1e6 / (lo - o) }' "$work/cpu-$series-$rep" 2>/dev/null || true)
    value[cpu_$series,$rep]=$cpu_us
    printf '  rep %d  %-14s %9.0f ops/s  p50 %s ms  p99 %s ms  (%s ops, %s transport errors; nodes %s µs CPU/op in the run)  %s (seed+run)%s\n' "$rep" "$series" "$ops" "$p50" "$p99" \
      "$(jq -r ".kinds.$op.count" "$log")" "$transport" "${cpu_us:-n/a}" "$(cpu_split "$before" "$after")" "$(forks_note "$forks0")"
  fi
}

rb_n=0
run_rb() {  # run_rb SERIES REP [N]: redis-benchmark EVALSHA of the code-check script, -c 50 -P 1 -r users
  local series=$1 rep=$2 n=${3:-$rb_n}
  local log="$work/rb-$series-$rep.txt" before after forks0
  redis_settle
  forks0=$(redis_forks)
  before=$(cpu_snapshot)
  # The text output (not --csv): its summary has the figures the CSV line has, and it also has
  # the latency percentile distribution the charts draw.
  timeout 300 redis-benchmark -p "$redis_port" -c 50 -P 1 -n "$n" -r "$users" \
    EVALSHA "$sha" "${ref_args[@]}" >"$log" 2>&1 || true
  after=$(cpu_snapshot)
  # "throughput summary: R requests per second", then "latency summary (msec):", a header line
  # "avg min p50 p95 p99 max" and their values. Progress lines end in \r.
  local rps p50 p99
  rps=$(tr '\r' '\n' <"$log" | awk '/^ *throughput summary:/ { print $3 }')
  p50=$(tr '\r' '\n' <"$log" | awk '/^ *latency summary \(msec\):/ { getline; getline; print $3 }')
  p99=$(tr '\r' '\n' <"$log" | awk '/^ *latency summary \(msec\):/ { getline; getline; print $5 }')
  if [ -z "$rps" ] || grep -qi 'error' "$log"; then
    value[$series,$rep]=""
    invalid_runs+=("$series rep $rep: $(head -c 300 "$log")")
    printf '  rep %d  %-14s INVALID — %s\n' "$rep" "$series" "$log"
  else
    value[$series,$rep]=$rps
    # Aim the next run at the requested duration.
    rb_n=$(awk -v r="$rps" -v d="$duration" 'BEGIN { n = int(r * d); if (n < 20000) n = 20000; if (n > 5000000) n = 5000000; print n }')
    printf '  rep %d  %-14s %9.0f calls/s  p50 %s ms  p99 %s ms  (%d calls)  %s%s\n' "$rep" "$series" "$rps" "$p50" "$p99" "$n" "$(cpu_split "$before" "$after")" "$(forks_note "$forks0")"
  fi
}

# What the reference's calls came to (a sample of its users after the runs), for the record.
ref_outcomes() {
  local i out=""
  for i in $(seq 0 19); do
    out+="$(rcli HGET "$prefix:{e2e-ref-$(printf '%012d' $((i * users / 20)))@load.example}:throttle" fails) "
  done
  echo "$out"
}

rcli CONFIG SET auto-aof-rewrite-percentage 0 >/dev/null || die "redis: cannot turn the automatic AOF rewrite off"
mem_idle_rss=$(mem_kb "$node1_pid" VmRSS)
echo "== warm-up (1 s each, not recorded)"
run_wrk auth_gatehouse 0 0 "$node1_url/v1/auth" "${auth_headers[@]}"
run_wrk auth_nginx 0 0 "http://127.0.0.1:$p204/x"
run_wrk front_gatehouse 0 0 "http://127.0.0.1:$pfront_gh/p" -H "$cookie"
run_wrk front_stub 0 0 "http://127.0.0.1:$pfront_stub/p" -H "$cookie"
run_rb rb_warmup 0 20000 >/dev/null
echo "  redis-benchmark calibrated to $rb_n calls per run (≈ ${duration} s)"

echo "== $reps repetition(s) of ${duration} s per run; wrk -t2 -c100; load --concurrency 50 --users $users --mix $op=100"
for rep in $(seq 1 "$reps"); do
  if [ $((rep % 2)) = 1 ]; then
    run_wrk auth_gatehouse "$rep" "$duration" "$node1_url/v1/auth" "${auth_headers[@]}"
    run_wrk auth_nginx "$rep" "$duration" "http://127.0.0.1:$p204/x"
    run_wrk front_gatehouse "$rep" "$duration" "http://127.0.0.1:$pfront_gh/p" -H "$cookie"
    run_wrk front_stub "$rep" "$duration" "http://127.0.0.1:$pfront_stub/p" -H "$cookie"
  else
    run_wrk auth_nginx "$rep" "$duration" "http://127.0.0.1:$p204/x"
    run_wrk auth_gatehouse "$rep" "$duration" "$node1_url/v1/auth" "${auth_headers[@]}"
    run_wrk front_stub "$rep" "$duration" "http://127.0.0.1:$pfront_stub/p" -H "$cookie"
    run_wrk front_gatehouse "$rep" "$duration" "http://127.0.0.1:$pfront_gh/p" -H "$cookie"
  fi
  # The code-check runs rotate their order: 1-node, reference, 2-node, wrong codes / reference, …
  order=(one ref two wrong)
  for k in 0 1 2 3; do
    case "${order[$(((k + rep - 1) % 4))]}" in
      one) run_load check_1node "$rep" "$op" "$node1_url" ;;
      ref) run_rb check_redis "$rep" ;;
      two) run_load check_2nodes "$rep" "$op" "$node1_url" "$node2_url" ;;
      wrong) [ -n "$wrong_op" ] && run_load wrong_1node "$rep" "$wrong_op" "$node1_url" ;;
    esac
  done
done
# Idle: 35 s after the last run (a node returns freed memory to the system every 30 s).
sleep 35
mem_after_rss=$(mem_kb "$node1_pid" VmRSS)
mem_hwm=$(mem_kb "$node1_pid" VmHWM)
ref_fails=$(ref_outcomes)

# --- The table. -------------------------------------------------------------------------------
rows=() broken=0 missed=0 chart_lines=()
line() {  # line MEASURE SERIES_A SERIES_B TARGET UNIT [le]: the median ratio A/B must be ≥ TARGET (≤ with le)
  local measure=$1 a=$2 b=$3 target=$4 unit=$5 cmp=${6:-ge}
  local ra=() rb=() rr=() per="" r ok=1
  for r in $(seq 1 "$reps"); do
    local va=${value[$a,$r]:-} vb=${value[$b,$r]:-}
    if [ -n "$va" ] && [ -n "$vb" ]; then
      ra+=("$va"); rb+=("$vb"); rr+=("$(ratio "$va" "$vb")"); per+="$(ratio "$va" "$vb") "
    else
      per+="invalid "; ok=0
    fi
  done
  local med="nan" verdict
  [ "${#rr[@]}" -gt 0 ] && med=$(median "${rr[@]}")
  if [ "$ok" = 0 ] || [ "$med" = nan ]; then verdict=INVALID; broken=1
  elif awk -v m="$med" -v t="$target" -v c="$cmp" 'BEGIN { exit !(c == "le" ? m <= t : m >= t) }'; then verdict=PASS
  else verdict=MISS; missed=1; fi
  local sign="≥"; [ "$cmp" = le ] && sign="≤"
  local digits=0; [ "$unit" = "µs" ] && digits=1
  chart_lines+=("$measure"$'\t'"$a"$'\t'"$b"$'\t'"$unit")
  rows+=("$measure|$(fmt "$(median "${ra[@]:-}")" $digits) $unit|$(fmt "$(median "${rb[@]:-}")" $digits) $unit|$(fmt "$med" 3)|${per% }|$sign $target|$verdict")
}
line "1. GET /v1/auth, 1 node vs nginx return 204 (wrk -t2 -c100)" auth_gatehouse auth_nginx 0.60 "req/s"
line "2. nginx auth_request → Gatehouse vs → nginx 204 stub (wrk -t2 -c100)" front_gatehouse front_stub 0.85 "req/s"
line "3. TOTP code checks over HTTP, 1 node (load $op, c50) vs redis-benchmark EVALSHA (c50 -P1)" check_1node check_redis 0.60 "/s"
if [ -n "$wrong_op" ]; then
  line "3w. wrong codes on pre-opened challenges, 1 node (load wrongcheck, c50) vs the valid checks of line 3" wrong_1node check_1node 1.0 "/s"
  line "3w. node CPU per wrong code vs per valid check (same runs; reference column: the valid check)" cpu_wrong_1node cpu_check_1node 1.0 "µs" le
fi
line "4. code checks, 2 nodes vs 1 node (same load, c50)" check_2nodes check_1node 0.95 "/s"
p50s=() p99s=()
for r in $(seq 1 "$reps"); do
  [ -n "${extra[check_1node,$r,p50]:-}" ] && p50s+=("${extra[check_1node,$r,p50]}") && p99s+=("${extra[check_1node,$r,p99]}")
done
mem_under=$( [ "${#mem_samples[@]}" -gt 0 ] && printf '%s\n' "${mem_samples[@]}" | sort -n | tail -1 || echo "")
to_mib() { awk -v k="$1" 'BEGIN { if (k == "") print "n/a"; else printf "%.1f MiB\n", k / 1024 }'; }
memory_row() {  # memory_row MEASURE KB LIMIT_MIB
  local verdict
  if [ -z "$2" ]; then verdict=INVALID; broken=1
  elif awk -v k="$2" -v l="$3" 'BEGIN { exit !(k / 1024 <= l) }'; then verdict=PASS
  else verdict=MISS; missed=1; fi
  rows+=("$1|$(to_mib "$2")|–|–|–|≤ $3 MiB|$verdict")
}
memory_row "5. node 1 resident memory under the 1-node code-check load ($users users; highest mid-run sample)" "$mem_under" 128
memory_row "5. node 1 resident memory idle, 35 s after all the runs" "$mem_after_rss" 96

report() {  # report md|text
  local r
  if [ "$1" = md ]; then
    echo "| measure | Gatehouse | reference | ratio (median) | per rep | target | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
  else
    printf '%-92s %14s %14s %7s  %-23s %7s %s\n' "measure" "Gatehouse" "reference" "ratio" "per rep" "target" "result"
    for r in "${rows[@]}"; do
      IFS='|' read -r m g f q p t v <<<"$r"
      printf '%-92s %14s %14s %7s  %-23s %7s %s\n' "$m" "$g" "$f" "$q" "$p" "$t" "$v"
    done
  fi
  echo
  echo "- code checks over HTTP (1 node): p50 $(fmt "$(median "${p50s[@]:-}")" 3) ms, p99 $(fmt "$(median "${p99s[@]:-}")" 3) ms (medians over reps; per rep p50: ${p50s[*]:-n/a}; p99: ${p99s[*]:-n/a})"
  echo "- 5. node 1 resident memory: idle before the runs VmRSS $(to_mib "$mem_idle_rss"); under the 1-node code-check load (highest mid-run sample) VmRSS $(to_mib "$mem_under"); after all runs VmRSS $(to_mib "$mem_after_rss"), VmHWM $(to_mib "$mem_hwm") (targets: ≤ 128 MiB under the load, ≤ 96 MiB after)"
  echo "- line 3 reference: redis-benchmark -c 50 -P 1 -r $users EVALSHA $sha with the arguments of \`gatehouse debug code-check-args\` (numkeys 7, keys of user $ref_template, a wrong code: ARGV[2] = -1), on the topology's own redis-server (127.0.0.1:$redis_port, AOF everysec) that the nodes use; the arguments were checked equal to a node's EVALSHA for a wrong code (MONITOR) but for the arguments of success (ARGV 13–15, 20: session id, record, list TTL, success event), which the node leaves empty for a code matching no step and the reference carries as a valid check does. redis-benchmark expands each __rand_int__ on its own, so the seven keys of one call name up to seven different users (the script reads them the same way; per-key traffic is the same). Throttle failures recorded on 20 sampled reference users: ${ref_fails}"
  echo "- line 3 Gatehouse: \`gatehouse load --mix $op=100 --concurrency 50 --users $users\`$([ "$op" = wrong ] && echo " — stand-in: each op is login/start + a wrong code at login/finish (two requests)"); ops/s from \`kinds.$op.ops_per_s\`, runs with \`passed\` false or correctness failures are invalid"
  echo "- line 4: both runs use --concurrency 50 (the load generator keeps 50 requests in flight on one epoll thread, each on its own keep-alive connection per URL; with two URLs the same 50 are spread over both nodes). On 2 cores both nodes share the same CPUs: this only shows that nothing is serialised on a node-local lock, not that a second node adds capacity."
  echo "- Redis's automatic AOF rewrite off during the runs; the AOF rewritten before each run that writes to Redis: $settle_count times, $(awk -v m="$settle_ms" -v n="$settle_count" 'BEGIN { printf "%.1f s in all, %.1f s on average", m / 1000, (n ? m / n / 1000 : 0) }') (rewrite and wait)"
  echo "- $reps rep(s) × ${duration} s, order alternating per rep; machine $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg); binary $bin$([ "$load_bin" != "$bin" ] && echo ", load generator $load_bin")"
  if [ "${#invalid_runs[@]}" -gt 0 ]; then
    echo "- INVALID runs: $(printf '%s; ' "${invalid_runs[@]}")"
  fi
}
echo
echo "== results"
report text
if [ -n "$out" ]; then
  { echo "# Gatehouse end-to-end benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC'))"; echo; report md; } >"$out"
  echo "(written to $out)"
fi

# --- The charts: each line's series, their throughput per repetition and each run's latency curve.
charts="$GATEHOUSE_E2E_CHARTS"
mkdir -p "$charts/data"
rm -f "$charts/data"/e2e-*.tsv
printf '%s\n' "${chart_lines[@]}" >"$charts/data/e2e-lines.tsv"
: >"$charts/data/e2e-throughput.tsv"
for key in "${!value[@]}"; do
  series=${key%,*} rep=${key##*,}
  [ "$rep" -ge 1 ] || continue  # the warm-up
  printf '%s\t%s\t%s\n' "$series" "$rep" "${value[$key]}" >>"$charts/data/e2e-throughput.tsv"
  for log in "$work/wrk-$series-$rep.txt" "$work/load-$series-$rep.json" "$work/rb-$series-$rep.txt"; do
    [ -s "$log" ] && "$root/benchmarks/plot.sh" curve "$log" >"$charts/data/e2e-latency-$series-$rep.tsv" 2>>"$work/plot.log" || true
  done
done
sort -o "$charts/data/e2e-throughput.tsv" "$charts/data/e2e-throughput.tsv"
if "$root/benchmarks/plot.sh" e2e "$charts" >"$work/plot.out" 2>>"$work/plot.log"; then
  echo "charts: $(tr '\n' ' ' <"$work/plot.out")"
else
  echo "e2e: the charts failed: $(tail -3 "$work/plot.log")" >&2; broken=1
fi
touch "$GH_DIR/e2e-finished"
[ "$broken" = 1 ] && exit 2
[ "$strict" = 1 ] && [ "$missed" = 1 ] && exit 1
exit 0
