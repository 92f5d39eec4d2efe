# Shell helpers the benchmark scripts share; source it after setting `name` (the script's name
# for messages), `work` (its scratch directory) and `pids=()` (what teardown stops).
#
#   name=cluster work="$(mktemp -d …)" pids=(); . "$(dirname "$0")/lib.sh"
#
# Sets the EXIT/INT/TERM traps: on exit every pid in `pids` gets SIGTERM, then SIGKILL after 5 s;
# `work` is removed after a clean run and kept (and named) otherwise. `bench_root` is the
# repository.

bench_teardown() {
  local rc=$? pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "$name: logs kept in $work" >&2; fi
}
trap bench_teardown EXIT
trap 'exit 130' INT TERM

die() { echo "$name: $*" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_for() {  # wait_for SECONDS command…
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
bench_hz=$(getconf CLK_TCK)
cpu_of() {  # cpu_of PID… → user+system seconds
  local total=0 pid f
  for pid in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    total=$(awk -v t="$total" -v f="$f" -v hz="$bench_hz" 'BEGIN { split(f, a, " "); printf "%.3f", t + (a[12] + a[13]) / hz }')
  done
  echo "$total"
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bench_binary() {  # → $bin: GATEHOUSE_BINARY, else the release build (built now)
  bin="${GATEHOUSE_BINARY:-}"
  if [ -z "$bin" ]; then
    if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
    echo "$name: building the release binary (set GATEHOUSE_BINARY to skip)" >&2
    (cd "$bench_root" && swift build -c release --product gatehouse >&2)
    bin="$(cd "$bench_root" && swift build -c release --show-bin-path)/gatehouse"
  fi
  [ -x "$bin" ] || die "$bin is not an executable"
}

start_redis() {  # start_redis NAME PORT [extra args…] → pid in $redis_pid (AOF on, fsync every second)
  local node=$1 port=$2; shift 2
  mkdir -p "$work/$node"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/$node" --save "" --appendonly yes --appendfsync everysec \
    --logfile "$work/$node/redis.log" "$@" &
  redis_pid=$!; pids+=("$redis_pid")
  wait_for 10 redis-cli -p "$port" PING || die "redis-server $node did not start: $(tail -3 "$work/$node/redis.log")"
}

bench_keys() {  # a keyring and data key under $work (made with $bin); → admin_key frontend_key verify_key api_keys
  "$bin" keys create --file "$work/keyring.json" >/dev/null
  "$bin" data-key create --file "$work/data-key.json" >/dev/null
  local rand; rand() { printf 'k%s' "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }
  admin_key=$(rand) frontend_key=$(rand) verify_key=$(rand)
  api_keys="admin:admin:$admin_key,frontend:frontend:$frontend_key,verify:verify:$verify_key"
}

start_node() {  # start_node NAME REDIS_URL → url in $node_url, pid in $node_pid (after bench_keys)
  local port; port=$(free_port)
  GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_REDIS_URL="$2" GATEHOUSE_KEYRING_FILE="$work/keyring.json" \
  GATEHOUSE_DATA_KEY_FILE="$work/data-key.json" GATEHOUSE_API_KEYS="$api_keys" GATEHOUSE_STATE_DIR="$work/$1-state" \
  GATEHOUSE_LOG_LEVEL=notice "$bin" serve >"$work/$1.log" 2>&1 &
  node_pid=$!; pids+=("$node_pid"); node_url="http://127.0.0.1:$port"
  wait_for 30 curl -sf "$node_url/readyz" || die "node $1 did not become ready: $(tail -5 "$work/$1.log")"
}
