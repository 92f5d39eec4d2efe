#!/usr/bin/env bash
# Checks run inside scripts/topology.sh (which exports GH_* and GATEHOUSE_BINARY):
#   1. a session made on any node verifies on every node;
#   2. a revocation made on one node is refused by every node within 1 s;
#   3. a node killed with SIGKILL under load (through the nginx load balancer) costs no accepted
#      request: `gatehouse load` sees no correctness failure and ≤ 1 % transport errors;
#   4. Redis restarted from its AOF loses no enrolment.
# Prints one line per check; exits non-zero at the first failure.
set -euo pipefail
read -r -a nodes <<< "$GH_NODE_URLS"
read -r -a node_pids <<< "$GH_NODE_PIDS"
bin="$GATEHOUSE_BINARY"
fail() { echo "FAIL: $*" >&2; exit 1; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
call() {  # call KEY METHOD URL [BODY]
  curl -s -m 10 -H "Authorization: Bearer $1" -H "Content-Type: application/json" -X "$2" "$3" ${4:+-d "$4"}
}

user="topology-$RANDOM@example.org"
secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
call "$GH_ADMIN_KEY" POST "${nodes[0]}/v1/users/import" "{\"user\":\"$user\",\"totp_secret\":\"$secret\",\"recovery_email\":\"b@example.net\",\"verified\":true}" \
  | json 'd["imported"]' | grep -qx 1 || fail "import"

# 1. Sign in on the last node; every node verifies.
# Wait for a fresh step so the code stays valid for the whole login.
while [ $(( 30 - $(date +%s) % 30 )) -lt 8 ]; do sleep 1; done
challenge=$(call "$GH_FRONTEND_KEY" POST "${nodes[-1]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd["challenge"]["token"]')
code=$("$bin" otp --secret "$secret")
token=$(call "$GH_FRONTEND_KEY" POST "${nodes[-1]}/v1/login/finish" "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$code\"}" | json 'd["session"]["token"]')
for url in "${nodes[@]}"; do
  status=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GH_VERIFY_KEY" -H "Gatehouse-Session: $token" "$url/v1/auth")
  [ "$status" = 204 ] || fail "session from ${nodes[-1]} answered $status on $url"
done
echo "ok 1: a session made on one node verifies on all ${#nodes[@]}"

# 2. Revoke on the first node; every node refuses within 1 s.
call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/sessions/revoke" "{\"token\":\"$token\"}" >/dev/null
start=$(date +%s%N)
for url in "${nodes[@]}"; do
  for _ in $(seq 1 40); do
    status=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GH_VERIFY_KEY" -H "Gatehouse-Session: $token" "$url/v1/auth")
    [ "$status" = 401 ] && break
    sleep 0.025
  done
  [ "$status" = 401 ] || fail "$url still accepts the revoked session"
done
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed_ms" -le 1000 ] || fail "revocation took ${elapsed_ms} ms to reach every node"
echo "ok 2: revocation refused by every node within ${elapsed_ms} ms"

# 3. SIGKILL one node while load runs through the load balancer.
"$bin" load --url "$GH_LB_URL" --users 100 --concurrency 16 --duration 8 --no-progress --json \
  --admin-key "$GH_ADMIN_KEY" --frontend-key "$GH_FRONTEND_KEY" --verify-key "$GH_VERIFY_KEY" > "$GH_DIR/load.json" &
load_pid=$!
sleep 4
kill -KILL "${node_pids[1]}"
if ! wait "$load_pid"; then
  cat "$GH_DIR/load.json" >&2
  fail "load through the balancer failed after a node was killed"
fi
failures=$(json 'd["correctness_failures"]' < "$GH_DIR/load.json")
[ "$failures" = 0 ] || fail "$failures correctness failures after a node was killed"
echo "ok 3: node ${nodes[1]} killed under load: 0 correctness failures, load exit 0"

# 4. Restart Redis (AOF): the enrolment survives.
redis-cli -p "$GH_REDIS_PORT" shutdown >/dev/null 2>&1 || true
for _ in $(seq 1 50); do kill -0 "$GH_REDIS_PID" 2>/dev/null || break; sleep 0.1; done
redis-server --port "$GH_REDIS_PORT" --bind 127.0.0.1 --dir "$GH_DIR/redis" --appendonly yes --save "" \
  --daemonize yes --pidfile "$GH_DIR/redis-restarted.pid" --logfile "$GH_DIR/redis-restarted.log"
trap 'kill "$(cat "$GH_DIR/redis-restarted.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do redis-cli -p "$GH_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 1 100); do
  status=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd.get("status")' 2>/dev/null || true)
  [ "$status" = second_step ] && break
  sleep 0.1
done
[ "$status" = second_step ] || fail "after a Redis restart the enrolment of $user is gone (status: $status)"
echo "ok 4: Redis restarted from its AOF; the enrolment survived"
