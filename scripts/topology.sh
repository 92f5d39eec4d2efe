#!/usr/bin/env bash
# The docker/compose.yaml topology as local processes on loopback: redis-server (AOF on),
# N gatehouse nodes sharing one keyring and data key, and nginx load-balancing them with
# auth_request in front of /webmail/. Waits until every part is ready, prints the URLs, then
# either runs the command after `--` (with the topology's variables exported) or waits for
# Ctrl-C; everything is torn down on exit.
#
#   scripts/topology.sh [-n NODES] [-d DIR] [-- command args…]
#
# Exported to the command: GH_DIR, GH_REDIS_PORT, GH_REDIS_PID, GH_NODE_URLS (space-separated),
# GH_NODE_PIDS, GH_LB_URL, GH_NGINX_PID, GH_ADMIN_KEY, GH_FRONTEND_KEY, GH_VERIFY_KEY, GH_MAIL_KEY.
set -euo pipefail
nodes=3
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nodes="$2"; shift 2 ;;
    -d) dir="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [-n NODES] [-d DIR] [-- command…]" >&2; exit 64 ;;
  esac
done
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${GATEHOUSE_BINARY:-}"
if [ -z "$bin" ]; then
  if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
  (cd "$root" && swift build -c release --product gatehouse >/dev/null)
  bin="$(cd "$root" && swift build -c release --show-bin-path)/gatehouse"
fi
# What this script starts, checked against the table of external programs (names the packages).
"$root/scripts/bootstrap.sh" --require redis-server redis-cli nginx curl python3 || exit 1
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -n "$dir" ] || dir="$(mktemp -d /tmp/gatehouse-topology.XXXXXX)"
mkdir -p "$dir"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_for() {  # wait_for SECONDS command…
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# Redis with AOF.
redis_port=$(free_port)
mkdir -p "$dir/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --appendfsync everysec \
  --save "" --daemonize no --logfile "$dir/redis.log" &
redis_pid=$!; pids+=("$redis_pid")
wait_for 10 redis-cli -p "$redis_port" ping || { echo "topology: redis did not start" >&2; exit 1; }

# Shared keys.
[ -f "$dir/keyring.json" ] || "$bin" keys create --file "$dir/keyring.json" >/dev/null
[ -f "$dir/data-key.json" ] || "$bin" data-key create --file "$dir/data-key.json" >/dev/null
# A letter first: a key starting with "-" would read as an option on a command line.
rand() { printf 'k%s' "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }
admin_key=$(rand); frontend_key=$(rand); verify_key=$(rand); mail_key=$(rand)
api_keys="admin:admin:$admin_key,frontend:frontend:$frontend_key,verify:verify:$verify_key,mail:mail:$mail_key"

# Nodes.
node_urls=(); node_pids=()
for i in $(seq 1 "$nodes"); do
  port=$(free_port)
  GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  GATEHOUSE_KEYRING_FILE="$dir/keyring.json" GATEHOUSE_DATA_KEY_FILE="$dir/data-key.json" \
  GATEHOUSE_API_KEYS="$api_keys" GATEHOUSE_STATE_DIR="$dir/node$i" GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-notice}" \
    "$bin" serve >"$dir/node$i.log" 2>&1 &
  pid=$!; pids+=("$pid"); node_pids+=("$pid"); node_urls+=("http://127.0.0.1:$port")
done
for url in "${node_urls[@]}"; do
  wait_for 30 curl -sf "$url/readyz" || { echo "topology: $url did not become ready; see $dir/node*.log" >&2; exit 1; }
done

# nginx: load balancer + auth_request.
lb_port=$(free_port)
mkdir -p "$dir/nginx"
{
  echo "worker_processes 1; pid $dir/nginx/nginx.pid; error_log $dir/nginx/error.log warn; daemon off;"
  echo "events { worker_connections 4096; }"
  echo "http { access_log off; client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;"
  echo "  client_max_body_size 10m; client_body_buffer_size 10m;  # bodies in memory: workers may not own the temp dir"
  echo "  fastcgi_temp_path $dir/nginx/fastcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;"
  echo "  upstream gatehouse { keepalive 64;"
  for url in "${node_urls[@]}"; do echo "    server ${url#http://} max_fails=1 fail_timeout=2s;"; done
  echo "  }"
  echo "  server { listen unix:$dir/nginx/webmail.sock; location / { return 200 \"webmail for \$http_x_gatehouse_user\\n\"; } }"
  echo "  server { listen 127.0.0.1:$lb_port;"
  echo "    location = /nginx-204 { return 204; }"
  echo "    location /v1/ { proxy_pass http://gatehouse; proxy_http_version 1.1; proxy_set_header Connection \"\";"
  echo "      proxy_next_upstream error timeout http_502 http_503; }"
  echo "    location /webmail/ { auth_request /_gatehouse_auth; auth_request_set \$gh_user \$upstream_http_gatehouse_user;"
  echo "      proxy_set_header X-Gatehouse-User \$gh_user; proxy_pass http://unix:$dir/nginx/webmail.sock; }"
  echo "    location = /_gatehouse_auth { internal; proxy_pass http://gatehouse/v1/auth; proxy_pass_request_body off;"
  echo "      proxy_set_header Content-Length \"\"; proxy_set_header Authorization \"Bearer $verify_key\";"
  echo "      proxy_set_header Gatehouse-Session \$cookie_gatehouse_session; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
  echo "  }"
  echo "}"
} > "$dir/nginx/nginx.conf"
"$NGINX" -c "$dir/nginx/nginx.conf" -p "$dir/nginx" &
nginx_pid=$!; pids+=("$nginx_pid")
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$lb_port/nginx-204" || { echo "topology: nginx did not start; see $dir/nginx/error.log" >&2; exit 1; }

export GH_DIR="$dir" GH_REDIS_PORT="$redis_port" GH_REDIS_PID="$redis_pid" GH_NODE_URLS="${node_urls[*]}" GH_NODE_PIDS="${node_pids[*]}" \
  GH_LB_URL="http://127.0.0.1:$lb_port" GH_NGINX_PID="$nginx_pid" GH_ADMIN_KEY="$admin_key" GH_FRONTEND_KEY="$frontend_key" \
  GH_VERIFY_KEY="$verify_key" GH_MAIL_KEY="$mail_key" GATEHOUSE_BINARY="$bin"
echo "topology ready: redis 127.0.0.1:$redis_port, nodes ${node_urls[*]}, load balancer $GH_LB_URL (state in $dir)"
if [ $# -gt 0 ]; then
  "$@"
else
  echo "Ctrl-C to stop"
  wait "$redis_pid"
fi
