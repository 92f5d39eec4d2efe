#!/usr/bin/env bash
# Mail benchmarks, each as a ratio against a reference measured in the same run (median of
# interleaved repetitions; the order alternates every repetition):
#
#   a. IMAP LOGIN + LOGOUT per second through nginx's mail proxy → Gatehouse (auth_http, one
#      node) → Dovecot as the master user   vs   the same through an nginx mail proxy whose
#      auth_http is a static nginx stub answering OK with the same Dovecot and the same
#      master-user login (so Dovecot does the same work)                                   ≥ 0.80
#   b. POST /v1/mail/authenticate with a valid app password on one node (wrk -t2 -c50, every
#      answer 200)   vs   redis-benchmark -c 50 EVALSHA of the mail-auth script with the KEYS and
#      ARGV the node sends (`gatehouse debug mail-auth-args`, checked against the node's own
#      EVALSHA with MONITOR)                                                               ≥ 0.40
#
#   benchmarks/mail.sh [--reps N] [--duration S] [--users U] [--concurrency C] [--quick] [--strict] [--out FILE]
#
# Default: 5 repetitions of 5 s per run (about 5 minutes), 200 users, 40 IMAP connections at once.
# --quick: one repetition of 2 s (a smoke run, not a result). --strict: exit 1 when a target is
# missed. Exit 2 when something broke (a failed login or non-200 answer, a wrk socket error, a
# failed set-up check). Runs on loopback only, inside `scripts/topology.sh -n 1 --mail` (Redis
# with AOF, one node, Dovecot, nginx; run as root; GATEHOUSE_BINARY=<path> skips the build),
# plus an nginx of its own for both mail proxies of line a; everything is torn down on exit.
set -euo pipefail

reps=5 duration=5 users=200 concurrency=40 strict=0 out="" quick=0
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --strict) strict=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "mail: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
done
if [ "$quick" = 1 ]; then reps=1; duration=2; fi
[[ "$reps" =~ ^[0-9]+$ ]] && [ "$reps" -ge 1 ] && [ "$reps" -le 50 ] || { echo "mail: --reps must be 1..50" >&2; exit 64; }
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 1 ] && [ "$duration" -le 300 ] || { echo "mail: --duration must be 1..300 (whole seconds)" >&2; exit 64; }
[[ "$users" =~ ^[0-9]+$ ]] && [ "$users" -ge 1 ] && [ "$users" -le 5000 ] || { echo "mail: --users must be 1..5000" >&2; exit 64; }
[[ "$concurrency" =~ ^[0-9]+$ ]] && [ "$concurrency" -ge 1 ] && [ "$concurrency" -le 90 ] || { echo "mail: --concurrency must be 1..90 (Dovecot starts at most 100 login processes)" >&2; exit 64; }
root="$(cd "$(dirname "$0")/.." && pwd)"

# ---------------------------------------------------------------------------------------------
# Outside the topology: find the tools and the binary, then re-enter under scripts/topology.sh.
if [ "${GATEHOUSE_MAIL_BENCH_INNER:-}" != 1 ]; then
  "$root/scripts/bootstrap.sh" --require wrk jq nginx redis-server redis-cli redis-benchmark curl python3 \
    dovecot /usr/lib/dovecot/imap /usr/lib/nginx/modules/ngx_mail_module.so || exit 2
  if [ -z "${GATEHOUSE_BINARY:-}" ]; then
    if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
    echo "mail: building the release binary (set GATEHOUSE_BINARY to skip)" >&2
    (cd "$root" && swift build -c release --product gatehouse >&2)
    GATEHOUSE_BINARY="$(cd "$root" && swift build -c release --show-bin-path)/gatehouse"
  fi
  [ -x "$GATEHOUSE_BINARY" ] || { echo "mail: $GATEHOUSE_BINARY is not an executable" >&2; exit 2; }
  "$GATEHOUSE_BINARY" debug mail-auth-script --sha1 >/dev/null 2>&1 || {
    echo "mail: $GATEHOUSE_BINARY has no 'debug mail-auth-script' (Sources/gatehouse/DebugCommands.swift): rebuild it" >&2; exit 2; }
  export GATEHOUSE_BINARY GATEHOUSE_MAIL_BENCH_INNER=1 GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-notice}"
  topology_dir="$(mktemp -d /tmp/gh-mail-bench.XXXXXX)"
  rc=0
  "$root/scripts/topology.sh" -n 1 --mail -d "$topology_dir" -- "$0" "${args[@]}" || rc=$?
  if [ "$rc" = 0 ] || [ -f "$topology_dir/mail-bench-finished" ]; then rm -rf "$topology_dir"; else echo "mail: topology state kept in $topology_dir" >&2; fi
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside the topology (GH_* exported by scripts/topology.sh --mail).
bin="$GATEHOUSE_BINARY"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
read -r node1_url _ <<<"$GH_NODE_URLS"
read -r node1_pid _ <<<"$GH_NODE_PIDS"
node1_hostport="${node1_url#http://}"
redis_port="$GH_REDIS_PORT"
rcli() { redis-cli -p "$redis_port" "$@"; }
loader="$root/benchmarks/imap-logins.py"

work="$(mktemp -d /tmp/gh-mail-bench-work.XXXXXX)"
chmod 755 "$work"
nginx_pid="" bg_pids=()
teardown() {
  local rc=$? pid
  for pid in "${bg_pids[@]}" $nginx_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $nginx_pid; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "mail: logs kept in $work" >&2; fi
}
trap teardown EXIT
trap 'exit 130' INT TERM

die() { echo "mail: $*" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {  # wait_for SECONDS command…
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}}'; }
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x == "" || x == "nan") print "n/a"; else printf "%.*f\n", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'; }

# CPU seconds (user + system; with the children each process has reaped) of processes and of
# whole process trees, and the machine's busy CPU seconds, for a CPU split.
hz=$(getconf CLK_TCK)
ticks_of() {  # ticks_of PID… → utime + stime + cutime + cstime, in ticks
  local total=0 pid f
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    set -- $f
    total=$((total + ${12} + ${13} + ${14} + ${15}))
  done
  echo "$total"
}
tree_of() {  # tree_of PID → PID and its descendants
  local pid=$1 child
  echo "$pid"
  for child in $(pgrep -P "$pid" 2>/dev/null); do tree_of "$child"; done
}
seconds() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.2f\n", t / hz }'; }
busy_cpu() { awk '/^cpu / { printf "%.2f\n", ($2+$3+$4+$7+$8) / '"$hz"' }' /proc/stat; }
cpu_snapshot() {
  echo "$(seconds "$(ticks_of "$node1_pid")") $(seconds "$(ticks_of $(tree_of "$nginx_pid"))") $(seconds "$(ticks_of "$GH_REDIS_PID")") $(seconds "$(ticks_of $(tree_of "$GH_DOVECOT_PID"))") $(busy_cpu)"
}
cpu_split() {  # cpu_split "BEFORE" "AFTER" [CLIENT_SECONDS [OPERATIONS]] → text
  awk -v b="$1" -v a="$2" -v c="${3:-}" -v ops="${4:-}" 'BEGIN { split(b, x, " "); split(a, y, " ");
    n = y[1]-x[1]; ng = y[2]-x[2]; rd = y[3]-x[3]; dv = y[4]-x[4]; all = y[5]-x[5];
    if (c == "") printf "cpu s: node %.2f nginx %.2f redis %.2f dovecot %.2f clients+other %.2f", n, ng, rd, dv, all-n-ng-rd-dv;
    else printf "cpu s: node %.2f nginx %.2f redis %.2f dovecot %.2f client %.2f other %.2f", n, ng, rd, dv, c, all-n-ng-rd-dv-c;
    if (ops > 0) printf "; per op µs: node %.0f nginx %.0f redis %.0f dovecot %.0f", n * 1e6 / ops, ng * 1e6 / ops, rd * 1e6 / ops, dv * 1e6 / ops }'
}

echo "== set-up (state in $GH_DIR and $work; machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"

# --- Users: imported with an authenticator secret (two-step on), signed in, one app password
#     each (all services), and a primary password in Dovecot's passwd-file (a master login needs
#     the user to exist there). ------------------------------------------------------------------
secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
GH_BENCH_USERS="$users" GH_BENCH_SECRET="$secret" GH_BENCH_OUT="$work/users.txt" timeout 300 python3 - <<'PY' || die "setting up the users failed"
import json, os, subprocess, sys, time, urllib.request
node = os.environ["GH_NODE_URLS"].split()[0]
count, secret, out = int(os.environ["GH_BENCH_USERS"]), os.environ["GH_BENCH_SECRET"], os.environ["GH_BENCH_OUT"]
def call(key, method, path, body, headers=None, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(node + path, data=data, method=method, headers={
        "Authorization": "Bearer " + key, "Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
users = ["mail-bench-%05d@bench.example" % i for i in range(count)]
status, answer = call(os.environ["GH_ADMIN_KEY"], "POST", "/v1/users/import",
    "".join(json.dumps({"user": u, "totp_secret": secret}) + "\n" for u in users).encode(), content_type="application/x-ndjson")
if status != 200 or answer.get("imported") != count:
    sys.exit("import answered %s: %s" % (status, str(answer)[:300]))
codes = {}
def code():
    # One code per 30 s step serves every user (replays are refused per user).
    step = int(time.time()) // 30
    if step not in codes:
        codes[step] = subprocess.run([os.environ["GATEHOUSE_BINARY"], "otp", "--secret", secret, "--time", str(step * 30)],
                                     check=True, capture_output=True, text=True).stdout.strip()
    return codes[step]
lines = []
for user in users:
    for attempt in range(3):
        status, start = call(os.environ["GH_FRONTEND_KEY"], "POST", "/v1/login/start", {"user": user})
        if status != 200:
            sys.exit("login/start for %s answered %s: %s" % (user, status, start))
        status, finish = call(os.environ["GH_FRONTEND_KEY"], "POST", "/v1/login/finish",
                              {"challenge": start["challenge"]["token"], "method": "totp", "code": code()})
        if status == 200:
            break
        time.sleep(1)  # a step boundary between the code and the check
    else:
        sys.exit("login/finish for %s answered %s: %s" % (user, status, finish))
    status, app = call(os.environ["GH_FRONTEND_KEY"], "POST", "/v1/me/app-passwords", {"label": "mail benchmark"},
                       headers={"Gatehouse-Session": finish["session"]["token"]})
    if status != 201:
        sys.exit("app password for %s answered %s: %s" % (user, status, app))
    lines.append("%s %s\n" % (user, app["password"].replace(" ", "")))
with open(out, "w") as f:
    f.writelines(lines)
PY
# Dovecot's primary passwords (never used here: every login is a master login or a refusal).
mapfile -t pairs < <(awk '{ printf "%s\nprimary-%s\n", $1, NR }' "$work/users.txt")
"$GH_DOVECOT_ADD_USER" "${pairs[@]}"
read -r user0 app0 < "$work/users.txt"
echo "users: $users two-step users with an app password each (imported, signed in, app password made through the API), in Dovecot's passwd-file"

# --- nginx: the stub auth server and the two IMAP proxies (same nginx, same workers; only
#     auth_http differs). ------------------------------------------------------------------------
master_password=$(cat "$GH_DOVECOT_MASTER_PASSWORD_FILE")
pstub=$(free_port) pimap_gh=$(free_port) pimap_stub=$(free_port)
cat >"$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes auto; daemon off; pid $work/nginx.pid; error_log $work/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  # The reference auth server: every login OK, to the same Dovecot as the same master-user login
  # Gatehouse answers for a two-step user (Auth-User arrives URL-escaped; these addresses have
  # nothing to escape).
  server { listen 127.0.0.1:$pstub;
    location = /v1/mail/auth-http {
      add_header Auth-Status OK; add_header Auth-Server 127.0.0.1; add_header Auth-Port $GH_DOVECOT_IMAP_PORT;
      add_header Auth-User "\$http_auth_user*$GH_DOVECOT_MASTER_USER"; add_header Auth-Pass "$master_password";
      return 204;
    }
  }
}
mail {
  server_name mail.gatehouse.test;
  auth_http_header Authorization "Bearer $GH_MAIL_KEY";
  proxy_pass_error_message on;
  server { listen 127.0.0.1:$pimap_gh; protocol imap; imap_auth plain login; auth_http $node1_hostport/v1/mail/auth-http; }
  server { listen 127.0.0.1:$pimap_stub; protocol imap; imap_auth plain login; auth_http 127.0.0.1:$pstub/v1/mail/auth-http; }
}
EOF
"$NGINX" -t -q -c "$work/nginx.conf" -p "$work" 2>"$work/nginx-t.log" || die "nginx config: $(cat "$work/nginx-t.log")"
"$NGINX" -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
for p in "$pstub" "$pimap_gh" "$pimap_stub"; do wait_for 10 port_open "$p" || die "nginx did not listen on $p: $(tail -3 "$work/error.log")"; done

# Each proxy lets a valid app password in; through Gatehouse a wrong password is refused (so
# Gatehouse, not the stub, answered), and a stub login reaches Dovecot as the master user.
imap_check() {  # imap_check PORT USERS_FILE → the loader's JSON for a few logins, one at a time
  timeout 90 python3 "$loader" --port "$1" --users "$2" --concurrency 1 --duration 60 --max-logins "${3:-2}" --timeout 40 --json || true
}
for p in "$pimap_gh" "$pimap_stub"; do
  check=$(imap_check "$p" "$work/users.txt" 3)
  [ "$(jq -r '.failed' <<<"$check")" = 0 ] && [ "$(jq -r '.started' <<<"$check")" = 3 ] || die "logins through the proxy on $p failed: $check"
done
# One wrong password for the last user (one guess of its ten per window from this address).
echo "$(tail -1 "$work/users.txt" | cut -d' ' -f1) notanapppasswordatall" >"$work/wrong.txt"
check=$(imap_check "$pimap_gh" "$work/wrong.txt" 1)
jq -e '.failures | keys[0] | test("Two-step verification is on")' <<<"$check" >/dev/null \
  || die "a wrong password through Gatehouse was not refused as it should be: $check"
dovecot_logins=$(grep -c "auth: Info: Master user logging in as " "$GH_DOVECOT_DIR/dovecot.log" || true)
[ "${dovecot_logins:-0}" -ge 6 ] || die "Dovecot's log shows $dovecot_logins master-user logins, expected at least 6"
echo "imap: both proxies log in with an app password (Dovecot logged $dovecot_logins master-user logins); Gatehouse refuses a wrong password"

# --- Line b: the mail-auth script and its arguments, from the binary; checked against the node. --
sha=$("$bin" debug mail-auth-script --sha1)
"$bin" debug mail-auth-script >"$work/mail-auth.lua"
loaded=$(rcli SCRIPT LOAD "$(cat "$work/mail-auth.lua")")
[ "$loaded" = "$sha" ] || die "SCRIPT LOAD named the script $loaded, the binary calls it $sha"
client_ip=192.0.2.10
body="{\"user\":\"$user0\",\"password\":\"$app0\",\"service\":\"imap\",\"client_ip\":\"$client_ip\"}"
timeout 10 redis-cli -p "$redis_port" MONITOR >"$work/monitor.txt" 2>/dev/null &
monitor=$!; bg_pids+=("$monitor")
sleep 0.3
probe=$(curl -s -w ' %{http_code}' --max-time 5 -X POST "$node1_url/v1/mail/authenticate" -H "Authorization: Bearer $GH_MAIL_KEY" \
  -H 'Content-Type: application/json' -d "$body")
sleep 0.3
kill "$monitor" 2>/dev/null || true
case "$probe" in *'"result":"ok"'*' 200') ;; *) die "POST /v1/mail/authenticate with the app password answered $probe" ;; esac
seen=$(grep -F "\"EVALSHA\" \"$sha\"" "$work/monitor.txt" | grep -F "{$user0}" | head -1 | sed 's/^[^"]*//') || true
[ -n "$seen" ] || die "MONITOR did not show the node's EVALSHA of the mail-auth script"
# Fields: 1 EVALSHA, 2 sha, 3 numkeys, the keys, then ARGV; ARGV[3] is the time of the check.
seen_now=$(awk '{ n = $3; gsub(/"/, "", n); print $(n + 6) }' <<<"$seen" | tr -d '"')
export GATEHOUSE_DATA_KEY_FILE="$GH_DIR/data-key.json"
mapfile -t probe_args < <("$bin" debug mail-auth-args --user "$user0" --password "$app0" --service imap --client-ip "$client_ip" --now "$seen_now")
expected="\"EVALSHA\" \"$sha\"$(printf ' "%s"' "${probe_args[@]}")"
[ "$seen" = "$expected" ] || die "the node sent
  $seen
but mail-auth-args gives
  $expected"
mapfile -t ref_args < <("$bin" debug mail-auth-args --user "$user0" --password "$app0" --service imap --client-ip "$client_ip")
echo "mail auth: SCRIPT LOAD → $sha; mail-auth-args equals the node's EVALSHA for a valid app password (seen with MONITOR)"
cat >"$work/mail-auth.wrk.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $GH_MAIL_KEY"
EOF

# --- The measurements. ------------------------------------------------------------------------
declare -A value   # value[<series>,<rep>] = throughput (empty = invalid)
declare -A extra
invalid_runs=()

run_imap() {  # run_imap SERIES REP SECONDS PORT; SECONDS 0 = warm-up (1 s, not recorded)
  local series=$1 rep=$2 secs=$3 port=$4
  local d=$secs; [ "$secs" = 0 ] && d=1
  local log="$work/imap-$series-$rep.json" before after
  before=$(cpu_snapshot)
  timeout $((d + 120)) python3 "$loader" --port "$port" --users "$work/users.txt" --concurrency "$concurrency" \
    --duration "$d" --timeout 60 --json >"$log" 2>"$log.stderr" || true
  after=$(cpu_snapshot)
  local rate failed cpu share p50 p99
  rate=$(jq -r '.logins_per_s // empty' "$log" 2>/dev/null || true)
  failed=$(jq -r '.failed // empty' "$log" 2>/dev/null || true)
  cpu=$(jq -r '.client_cpu_s // empty' "$log" 2>/dev/null || true)
  share=$(jq -r '.client_cpu_share // empty' "$log" 2>/dev/null || true)
  p50=$(jq -r '.latency_ms.p50 // empty' "$log" 2>/dev/null || true); p99=$(jq -r '.latency_ms.p99 // empty' "$log" 2>/dev/null || true)
  if [ -z "$rate" ] || [ "$failed" != 0 ]; then
    [ "$secs" = 0 ] && die "warm-up $series failed: $(head -c 400 "$log") $(head -c 400 "$log.stderr")"
    value[$series,$rep]=""
    local why="failed ${failed:-?}: $(jq -c '.failures' "$log" 2>/dev/null || head -c 200 "$log.stderr")"
    invalid_runs+=("$series rep $rep: $why")
    printf '  rep %d  %-14s INVALID (%s)  %s\n' "$rep" "$series" "$why" "$(cpu_split "$before" "$after")"
    return 0
  fi
  [ "$secs" = 0 ] && return 0
  value[$series,$rep]=$rate
  extra[$series,$rep,share]=$share
  printf '  rep %d  %-14s %9.1f logins/s  p50 %s ms  p99 %s ms  (%s logins, client CPU %s s = %.0f%% of a core)  %s\n' "$rep" "$series" "$rate" "$p50" "$p99" \
    "$(jq -r '.logins' "$log")" "$cpu" "$(awk -v s="$share" 'BEGIN { print s * 100 }')" "$(cpu_split "$before" "$after" "$cpu" "$(jq -r '.started' "$log")")"
}

run_wrk() {  # run_wrk SERIES REP SECONDS; SECONDS 0 = warm-up (1 s, not recorded)
  local series=$1 rep=$2 secs=$3
  local d=$secs; [ "$secs" = 0 ] && d=1
  local before after log="$work/wrk-$series-$rep.txt"
  before=$(cpu_snapshot)
  timeout $((d + 30)) wrk -t2 -c50 -d"${d}s" --latency -s "$work/mail-auth.wrk.lua" "$node1_url/v1/mail/authenticate" >"$log" 2>&1 || true
  after=$(cpu_snapshot)
  local rps non2xx sockerr p50 p99
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$log")
  sockerr=$(grep -m1 'Socket errors:' "$log" || true)
  p50=$(awk '$1 == "50%" { print $2 }' "$log"); p99=$(awk '$1 == "99%" { print $2 }' "$log")
  if [ -z "$rps" ] || [ -n "$non2xx" ] || [ -n "$sockerr" ]; then
    local why="${non2xx:+non-2xx answers $non2xx; }${sockerr:+$(sed 's/^ *//' <<<"$sockerr"); }${rps:+$rps req/s}"
    [ -n "$rps" ] || why+="wrk failed: $(head -c 200 "$log")"
    [ "$secs" = 0 ] && die "warm-up $series failed: $why"
    value[$series,$rep]=""
    invalid_runs+=("$series rep $rep: $why")
    printf '  rep %d  %-14s INVALID (%s)  %s\n' "$rep" "$series" "$why" "$(cpu_split "$before" "$after")"
    return 0
  fi
  [ "$secs" = 0 ] && return 0
  value[$series,$rep]=$rps
  printf '  rep %d  %-14s %9.0f req/s  p50 %-8s p99 %-8s %s\n' "$rep" "$series" "$rps" "$p50" "$p99" \
    "$(cpu_split "$before" "$after" "" "$(awk '/requests in/ { print $1 }' "$log")")"
}

rb_n=20000
run_rb() {  # run_rb SERIES REP [N]: redis-benchmark EVALSHA of the mail-auth script, -c 50 -P 1
  local series=$1 rep=$2 n=${3:-$rb_n}
  local log="$work/rb-$series-$rep.csv" before after
  before=$(cpu_snapshot)
  timeout 300 redis-benchmark -p "$redis_port" -c 50 -P 1 -n "$n" --csv EVALSHA "$sha" "${ref_args[@]}" >"$log" 2>&1 || true
  after=$(cpu_snapshot)
  # "EVALSHA …","rps","avg","min","p50","p95","p99","max"
  local rps p50 p99
  rps=$(awk -F'","' 'NR > 1 && /^"EVALSHA/ { print $(NF - 6) }' "$log")
  p50=$(awk -F'","' 'NR > 1 && /^"EVALSHA/ { print $(NF - 3) }' "$log"); p99=$(awk -F'","' 'NR > 1 && /^"EVALSHA/ { print $(NF - 1) }' "$log")
  if [ -z "$rps" ] || grep -qi 'error' "$log"; then
    value[$series,$rep]=""
    invalid_runs+=("$series rep $rep: $(head -c 300 "$log")")
    printf '  rep %d  %-14s INVALID — %s\n' "$rep" "$series" "$log"
    return 0
  fi
  # Aim the next run at the requested duration.
  rb_n=$(awk -v r="$rps" -v d="$duration" 'BEGIN { n = int(r * d); if (n < 20000) n = 20000; if (n > 5000000) n = 5000000; print n }')
  [ "$rep" = 0 ] && return 0
  value[$series,$rep]=$rps
  printf '  rep %d  %-14s %9.0f calls/s  p50 %s ms  p99 %s ms  (%d calls)  %s\n' "$rep" "$series" "$rps" "$p50" "$p99" "$n" "$(cpu_split "$before" "$after" "" "$n")"
}

echo "== warm-up (1 s each, not recorded)"
run_imap imap_gatehouse 0 0 "$pimap_gh"
run_imap imap_stub 0 0 "$pimap_stub"
run_wrk auth_http 0 0
run_rb auth_redis 0 20000
echo "  redis-benchmark calibrated to $rb_n calls per run (≈ ${duration} s)"

echo "== $reps repetition(s) of ${duration} s per run; IMAP: $concurrency connections at once over $users users; wrk -t2 -c50; redis-benchmark -c 50 -P 1"
for rep in $(seq 1 "$reps"); do
  if [ $((rep % 2)) = 1 ]; then
    run_imap imap_gatehouse "$rep" "$duration" "$pimap_gh"
    run_imap imap_stub "$rep" "$duration" "$pimap_stub"
    run_wrk auth_http "$rep" "$duration"
    run_rb auth_redis "$rep"
  else
    run_imap imap_stub "$rep" "$duration" "$pimap_stub"
    run_imap imap_gatehouse "$rep" "$duration" "$pimap_gh"
    run_rb auth_redis "$rep"
    run_wrk auth_http "$rep" "$duration"
  fi
done
# After the runs: the wrk user's app password still works and nothing throttled it.
final=$(curl -s -w ' %{http_code}' --max-time 5 -X POST "$node1_url/v1/mail/authenticate" -H "Authorization: Bearer $GH_MAIL_KEY" \
  -H 'Content-Type: application/json' -d "$body")
case "$final" in *'"result":"ok"'*' 200') ;; *) die "after the runs POST /v1/mail/authenticate answered $final" ;; esac

# Dovecot's complaints during the runs (a process limit reached, a connection limit), for the record.
dovecot_warnings=$(grep -E ': (Warning|Error|Fatal|Panic): ' "$GH_DOVECOT_DIR/dovecot.log" | sed 's/^[A-Za-z]* [0-9]* [0-9:]* //' | sort | uniq -c | sort -rn | head -5 || true)

# --- The table. -------------------------------------------------------------------------------
rows=() broken=0 missed=0
line() {  # line MEASURE SERIES_A SERIES_B TARGET UNIT
  local measure=$1 a=$2 b=$3 target=$4 unit=$5
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
  elif awk -v m="$med" -v t="$target" 'BEGIN { exit !(m >= t) }'; then verdict=PASS
  else verdict=MISS; missed=1; fi
  rows+=("$measure|$(fmt "$(median "${ra[@]:-}")" 1) $unit|$(fmt "$(median "${rb[@]:-}")" 1) $unit|$(fmt "$med" 3)|${per% }|≥ $target|$verdict")
}
line "a. IMAP LOGIN+LOGOUT, nginx mail → Gatehouse → Dovecot vs nginx mail → stub → Dovecot" imap_gatehouse imap_stub 0.80 "/s"
line "b. POST /v1/mail/authenticate (wrk -t2 -c50) vs redis-benchmark EVALSHA (c50 -P1)" auth_http auth_redis 0.40 "/s"
shares=()
for r in $(seq 1 "$reps"); do
  for s in imap_gatehouse imap_stub; do [ -n "${extra[$s,$r,share]:-}" ] && shares+=("${extra[$s,$r,share]}"); done
done
max_share=$( [ "${#shares[@]}" -gt 0 ] && printf '%s\n' "${shares[@]}" | sort -g | tail -1 || echo "")

report() {  # report md|text
  local r
  if [ "$1" = md ]; then
    echo "| measure | Gatehouse | reference | ratio (median) | per rep | target | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
  else
    printf '%-90s %12s %12s %7s  %-35s %7s %s\n' "measure" "Gatehouse" "reference" "ratio" "per rep" "target" "result"
    for r in "${rows[@]}"; do
      IFS='|' read -r m g f q p t v <<<"$r"
      printf '%-90s %12s %12s %7s  %-35s %7s %s\n' "$m" "$g" "$f" "$q" "$p" "$t" "$v"
    done
  fi
  echo
  echo "- line a: \`benchmarks/imap-logins.py\`, $concurrency connections at once over $users users (each: connect, greeting, LOGIN, tagged OK, LOGOUT, BYE, tagged OK, close; every answer checked). Both proxies are the same nginx (workers: $(nproc)); Dovecot logs in the master user \`$GH_DOVECOT_MASTER_USER\` for both. The load generator used at most $(awk -v s="$max_share" 'BEGIN { if (s == "") print "n/a"; else printf "%.0f%%", s * 100 }') of one core in any run (single-threaded asyncio)."
  echo "- line b: wrk POSTs one user's valid app password (\`{\"user\",\"password\",\"service\":\"imap\",\"client_ip\":\"$client_ip\"}\`, every answer 200 \`ok\`); the reference runs EVALSHA $sha with the output of \`gatehouse debug mail-auth-args\` for the same user, password, service and address, on the topology's redis-server (AOF everysec) the node uses; checked equal to the node's own EVALSHA (MONITOR)."
  echo "- Dovecot's log during the run: $( [ -n "$dovecot_warnings" ] && echo "warnings/errors (count, text): $(tr '\n' ';' <<<"$dovecot_warnings")" || echo "no warnings or errors")"
  echo "- $reps rep(s) × ${duration} s, order alternating per rep; machine $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg); binary $bin"
  if [ "${#invalid_runs[@]}" -gt 0 ]; then
    echo "- INVALID runs: $(printf '%s; ' "${invalid_runs[@]}")"
  fi
}
echo
echo "== results"
report text
if [ -n "$out" ]; then
  { echo "# Gatehouse mail benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC'))"; echo; report md; } >"$out"
  echo "(written to $out)"
fi
touch "$GH_DIR/mail-bench-finished"
[ "$broken" = 1 ] && exit 2
[ "$strict" = 1 ] && [ "$missed" = 1 ] && exit 1
exit 0
