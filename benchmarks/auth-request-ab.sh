#!/usr/bin/env bash
# Two Gatehouse binaries on the nginx `auth_request` path, side by side: the same Redis, the same
# keys and session, one nginx with a front per binary (auth_request → that binary's
# `GET /v1/auth`, then a content server on a Unix socket), and wrk through each front in turn,
# the order alternating per repetition. Prints req/s per repetition, the medians and
# second / first. For "did this change make the auth_request path slower", without the rest of
# benchmarks/e2e.sh (whose line 2 compares against an nginx stub measured in its own moment).
#
#   benchmarks/auth-request-ab.sh FIRST_BINARY SECOND_BINARY [--reps N] [--duration S]
#
# Loopback only; everything is torn down on exit.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 64; }
first="$1" second="$2"; shift 2
reps=6 duration=5
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    *) echo "auth-request-ab: unknown option $1" >&2; exit 64 ;;
  esac
done
[[ "$reps" =~ ^[0-9]+$ ]] && [ "$reps" -ge 1 ] && [ "$reps" -le 30 ] || { echo "auth-request-ab: --reps must be 1..30" >&2; exit 64; }
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 1 ] && [ "$duration" -le 60 ] || { echo "auth-request-ab: --duration must be 1..60" >&2; exit 64; }
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh" --require wrk jq nginx redis-server curl python3 || exit 2
for bin in "$first" "$second"; do [ -x "$bin" ] || { echo "auth-request-ab: $bin is not an executable" >&2; exit 2; }; done
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

name=auth-request-ab work="$(mktemp -d /tmp/gatehouse-auth-ab.XXXXXX)" pids=()
chmod 755 "$work"  # nginx's workers (nobody) reach the content socket in it
. "$root/benchmarks/lib.sh"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no --logfile "$work/redis.log" &
pids+=($!)
"$second" keys create --file "$work/keyring.json" >/dev/null
"$second" data-key create --file "$work/data-key.json" >/dev/null
rand() { printf 'k%s' "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }
admin_key=$(rand) frontend_key=$(rand) verify_key=$(rand)
api_keys="admin:admin:$admin_key,frontend:frontend:$frontend_key,verify:verify:$verify_key"
start_node() {  # start_node NAME BINARY → port in $node_port
  node_port=$(free_port)
  GATEHOUSE_LISTEN="127.0.0.1:$node_port" GATEHOUSE_REDIS_URL="redis://127.0.0.1:$redis_port/0" GATEHOUSE_KEYRING_FILE="$work/keyring.json" \
  GATEHOUSE_DATA_KEY_FILE="$work/data-key.json" GATEHOUSE_API_KEYS="$api_keys" GATEHOUSE_STATE_DIR="$work/$1" GATEHOUSE_LOG_LEVEL=notice \
    "$2" serve >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$node_port/readyz" >/dev/null && return 0; sleep 0.1; done
  die "node $1 did not become ready: $(tail -3 "$work/$1.log")"
}
start_node first "$first"; first_port=$node_port
start_node second "$second"; second_port=$node_port

# One session, made on the second node; both verify it (same keyring).
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
api() { curl -s -m 10 -H "Authorization: Bearer $1" -H "Content-Type: application/json" -d "$3" "http://127.0.0.1:$second_port$2"; }
api "$admin_key" /v1/users/import "{\"user\":\"ab@example.org\",\"totp_secret\":\"$secret\",\"recovery_email\":\"b@example.net\",\"verified\":true}" >/dev/null
challenge=$(api "$frontend_key" /v1/login/start '{"user":"ab@example.org"}' | jq -r .challenge.token)
code=$("$second" otp --secret "$secret")
session=$(api "$frontend_key" /v1/login/finish "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$code\"}" | jq -r .session.token)
[ -n "$session" ] && [ "$session" != null ] || die "no session"

front_first=$(free_port) front_second=$(free_port)
front() {  # front PORT UPSTREAM
  cat <<EOC
  server { listen 127.0.0.1:$1;
    location /p { auth_request /_auth; proxy_pass http://content; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /_auth { internal; proxy_pass http://$2/v1/auth; proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header Authorization "Bearer $verify_key"; proxy_set_header Gatehouse-Session \$cookie_gatehouse_session;
      proxy_http_version 1.1; proxy_set_header Connection ""; } }
EOC
}
cat >"$work/nginx.conf" <<EOC
worker_processes auto; daemon off; pid $work/nginx.pid; error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen unix:$work/content.sock; location /p { return 200 "ok\n"; } }
  upstream content { server unix:$work/content.sock; keepalive 128; }
  upstream auth_first { server 127.0.0.1:$first_port; keepalive 128; }
  upstream auth_second { server 127.0.0.1:$second_port; keepalive 128; }
$(front "$front_first" auth_first)
$(front "$front_second" auth_second)
}
EOC
"$NGINX" -c "$work/nginx.conf" -p "$work" & pids+=($!)
for port in "$front_first" "$front_second"; do
  for _ in $(seq 1 100); do [ "$(curl -s -m 2 -H "Cookie: gatehouse_session=$session" "http://127.0.0.1:$port/p")" = ok ] && break; sleep 0.1; done
  [ "$(curl -s -m 2 -H "Cookie: gatehouse_session=$session" "http://127.0.0.1:$port/p")" = ok ] || die "the front on $port does not pass the session"
  [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/p")" = 401 ] || die "the front on $port lets a request without a session through"
done

run() {  # run first|second REP
  local port=$front_first; [ "$1" = second ] && port=$front_second
  local out; out=$(wrk -t2 -c100 -d"${duration}s" -H "Cookie: gatehouse_session=$session" "http://127.0.0.1:$port/p")
  grep -q "Non-2xx" <<<"$out" && die "wrk saw non-2xx answers through the $1 front: $out"
  local rate; rate=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  echo "$1 $rate" >>"$work/runs"
  printf '  rep %2d  %-6s %10.0f req/s\n' "$2" "$1" "$rate"
}
echo "== $reps repetition(s) of ${duration} s, wrk -t2 -c100 through nginx auth_request; first: $first, second: $second"
: >"$work/runs"
for rep in $(seq 1 "$reps"); do
  if [ $((rep % 2)) = 1 ]; then run first "$rep"; run second "$rep"; else run second "$rep"; run first "$rep"; fi
done
m1=$(awk '$1 == "first" { print $2 }' "$work/runs" | median)
m2=$(awk '$1 == "second" { print $2 }' "$work/runs" | median)
echo "medians: first $(printf '%.0f' "$m1") req/s, second $(printf '%.0f' "$m2") req/s, second / first $(awk -v a="$m1" -v b="$m2" 'BEGIN { printf "%.3f", b / a }') (load average $(cut -d' ' -f1-3 /proc/loadavg))"
