#!/usr/bin/env bash
# Checks run inside scripts/topology.sh (which exports GH_* and GATEHOUSE_BINARY):
#   1. a session made on any node verifies on every node;
#   2. a revocation made on one node is refused by every node within 1 s;
#   3. a node killed with SIGKILL under load (through the nginx load balancer) costs no accepted
#      request: `gatehouse load` sees no correctness failure and ≤ 1 % transport errors;
#   4. Redis paused (SIGSTOP) for 10 s under load: session checks keep answering 204, code checks
#      answer 503 within their timeout, nothing hangs, and after SIGCONT everything recovers with no
#      replay accepted;
#   5. Redis restarted from its AOF loses no enrolment;
#   (with --redis-cluster, 4 and 5 are instead: the master that holds the test user's keys
#   SIGKILLed under load, its replica promoted and followed by the nodes, and the user signing in
#   on it;)
#   6. the webmail hand-off through nginx: a ticket from the API, the browser's landing on the
#      pages behind the load balancer, and the session cookie it sets opening /webmail/.
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

if [ -n "${GH_REDIS_CLUSTER_PORTS:-}" ]; then
# 4 (Redis Cluster). SIGKILL the master that holds the user's keys while load runs through the
# balancer: the cluster promotes its replica and the nodes follow. Code checks of that master's
# users answer 503 until then (tolerated); nothing else may go wrong, except that a code accepted
# in the last moments before the kill may be accepted once more (asynchronous replication,
# docs/redis-scaling.md): at most the checks in flight.
read -r -a cluster_ports <<< "$GH_REDIS_CLUSTER_PORTS"
read -r -a cluster_pids <<< "$GH_REDIS_CLUSTER_PIDS"
slot=$(redis-cli -p "${cluster_ports[0]}" CLUSTER KEYSLOT "gh:{$user}:user")
owner_of() {  # owner_of PORT → the port of the master that PORT's node says serves $slot
  redis-cli -p "$1" CLUSTER NODES 2>/dev/null | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
    for (i = 9; i <= NF; i++) { n = split($i, r, "-"); if (n == 1) r[2] = r[1]
      if (s + 0 >= r[1] + 0 && s + 0 <= r[2] + 0) { split($2, a, "@"); m = split(a[1], hp, ":"); print hp[m] } } }'
}
dead=$(owner_of "${cluster_ports[0]}")
[ -n "$dead" ] || fail "no master serves slot $slot"
dead_pid="" survivor=""
for i in "${!cluster_ports[@]}"; do
  if [ "${cluster_ports[$i]}" = "$dead" ]; then dead_pid="${cluster_pids[$i]}"; elif [ -z "$survivor" ]; then survivor="${cluster_ports[$i]}"; fi
done
"$bin" load --url "$GH_LB_URL" --users 100 --concurrency 16 --duration 14 --no-progress --json --tolerate-unavailable \
  --admin-key "$GH_ADMIN_KEY" --frontend-key "$GH_FRONTEND_KEY" --verify-key "$GH_VERIFY_KEY" > "$GH_DIR/load-failover.json" &
load_pid=$!
sleep 4
kill -KILL "$dead_pid"
killed_at=$(date +%s%N)
promoted=""
for _ in $(seq 1 300); do
  promoted=$(owner_of "$survivor")
  if [ -n "$promoted" ] && [ "$promoted" != "$dead" ] && redis-cli -p "$survivor" CLUSTER INFO | grep -q '^cluster_state:ok'; then break; fi
  promoted=""
  sleep 0.1
done
[ -n "$promoted" ] || fail "no replica took over slot $slot within 30 s of the master's death"
promotion_ms=$(( ($(date +%s%N) - killed_at) / 1000000 ))
if ! wait "$load_pid"; then
  # A replay accepted in the lag window makes the run report a correctness failure: judged below.
  :
fi
verdict=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = d.get("failures", {})
other = {k: v for k, v in f.items() if k != "replay_accepted" and v}
bad = other or f.get("replay_accepted", 0) > 16 or d.get("transport_errors", 0) > d.get("total_ops", 0) // 100
print(("bad " if bad else "good ") + json.dumps({"failures": f, "errors": d.get("errors", {}), "total_ops": d.get("total_ops")}))
' "$GH_DIR/load-failover.json")
[ "${verdict%% *}" = good ] || fail "master $dead killed under load: ${verdict#* }"
echo "ok 4: Redis master $dead (slot $slot) SIGKILLed under load: replica $promoted promoted after ${promotion_ms} ms, the nodes followed; ${verdict#* }"

# 5. The user whose master died signs in on the promoted replica (the next step's code: above the
#    step check 1 used, inside the ±1 window).
for _ in $(seq 1 100); do
  challenge=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd["challenge"]["token"]' 2>/dev/null || true)
  [ -n "$challenge" ] && break
  sleep 0.1
done
[ -n "$challenge" ] || fail "login/start does not answer after the failover"
next_code=$("$bin" otp --secret "$secret" --time $(( ($(date +%s) / 30 + 1) * 30 )))
session=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/finish" "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$next_code\"}" | json 'd["session"]["token"]' 2>/dev/null || true)
[ -n "$session" ] || fail "no sign-in after the failover"
echo "ok 5: the enrolment on the failed master survived on the promoted replica; the user signed in"
else
# 4. Pause Redis for 10 s while load runs through the balancer.
# Before the pause: an accepted code (to replay afterwards) and an open challenge (to submit during it).
# The code is the next step's (inside the ±1 window and above the step check 1 used).
challenge=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd["challenge"]["token"]')
accepted_step=$(( $(date +%s) / 30 + 1 ))
accepted_code=$("$bin" otp --secret "$secret" --time $(( accepted_step * 30 )))
paused_token=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/finish" "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$accepted_code\"}" | json 'd["session"]["token"]')
open_challenge=$(call "$GH_FRONTEND_KEY" POST "${nodes[2]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd["challenge"]["token"]')
"$bin" load --url "$GH_LB_URL" --users 100 --concurrency 16 --duration 22 --no-progress --json --tolerate-unavailable \
  --admin-key "$GH_ADMIN_KEY" --frontend-key "$GH_FRONTEND_KEY" --verify-key "$GH_VERIFY_KEY" > "$GH_DIR/load-pause.json" &
load_pid=$!
sleep 5
kill -STOP "$GH_REDIS_PID"
paused_at=$(date +%s%N)
resume() { kill -CONT "$GH_REDIS_PID" 2>/dev/null || true; }
trap resume EXIT
sleep 1
# Session checks keep answering, on every live node, without Redis.
for url in "${nodes[0]}" "${nodes[2]}" "$GH_LB_URL"; do
  t0=$(date +%s%N)
  status=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GH_VERIFY_KEY" -H "Gatehouse-Session: $paused_token" "$url/v1/auth")
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$status" = 204 ] || { resume; fail "a session check on $url answered $status while Redis was paused"; }
  [ "$ms" -le 1000 ] || { resume; fail "a session check on $url took $ms ms while Redis was paused"; }
done
# A code check answers 503 (with Retry-After) within its timeout; the code is the one accepted
# before the pause, so anything but 503 here would also be a replay accepted or refused unchecked.
t0=$(date +%s%N)
headers=$(curl -s -m 15 -D - -o /dev/null -H "Authorization: Bearer $GH_FRONTEND_KEY" -H "Content-Type: application/json" \
  -X POST "${nodes[2]}/v1/login/finish" -d "{\"challenge\":\"$open_challenge\",\"method\":\"totp\",\"code\":\"$accepted_code\"}")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
code_status=$(printf '%s' "$headers" | head -1 | awk '{print $2}')
[ "$code_status" = 503 ] || { resume; fail "a code check answered ${code_status:-nothing} while Redis was paused (want 503)"; }
printf '%s' "$headers" | grep -qi '^retry-after:' || { resume; fail "the 503 of a code check has no Retry-After"; }
[ "$ms" -le 5000 ] || { resume; fail "the code check took $ms ms to answer 503 while Redis was paused"; }
# A session check in the middle of the pause still answers.
sleep $(( 10 - ($(date +%s%N) - paused_at) / 1000000000 - 2 ))
status=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GH_VERIFY_KEY" -H "Gatehouse-Session: $paused_token" "$GH_LB_URL/v1/auth")
[ "$status" = 204 ] || { resume; fail "a session check answered $status 8 s into the pause"; }
while [ $(( ($(date +%s%N) - paused_at) / 1000000 )) -lt 10000 ]; do sleep 0.1; done
resume
trap - EXIT
if ! wait "$load_pid"; then
  cat "$GH_DIR/load-pause.json" >&2
  fail "load through the balancer failed across the Redis pause"
fi
failures=$(json 'd["correctness_failures"]' < "$GH_DIR/load-pause.json")
[ "$failures" = 0 ] || fail "$failures correctness failures across the Redis pause"
unavailable=$(json 'sum(v for k, v in d["errors"].items() if k.endswith(":unavailable") or k.endswith("start_503"))' < "$GH_DIR/load-pause.json")
[ "$unavailable" -gt 0 ] || fail "no code operation of the load saw the outage (errors: $(json 'd["errors"]' < "$GH_DIR/load-pause.json"))"
slowest=$(json 'max(k["latency_ms"]["max"] for k in d["kinds"].values())' < "$GH_DIR/load-pause.json")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 10000 else 1)" "$slowest" \
  || fail "an operation took $slowest ms across the pause (a code op is two requests, each bounded by the Redis timeouts)"
# Recovery: the code accepted before the pause is still refused as a replay, and the next step signs in.
for _ in $(seq 1 100); do
  recovered=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd.get("status")' 2>/dev/null || true)
  [ "$recovered" = second_step ] && break
  sleep 0.1
done
[ "$recovered" = second_step ] || fail "login/start does not recover after SIGCONT"
challenge=$(call "$GH_FRONTEND_KEY" POST "${nodes[2]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd["challenge"]["token"]')
replay=$(call "$GH_FRONTEND_KEY" POST "${nodes[2]}/v1/login/finish" "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$accepted_code\"}" | json 'd.get("code")')
[ "$replay" = invalid_code ] || fail "after the pause the replayed code answered ${replay}"
# The next code must be for a step above the accepted one and at most one step ahead of now.
while [ $(( $(date +%s) / 30 )) -lt "$accepted_step" ]; do sleep 1; done
next_code=$("$bin" otp --secret "$secret" --time $(( ($(date +%s) / 30 + 1) * 30 )))
session=$(call "$GH_FRONTEND_KEY" POST "${nodes[2]}/v1/login/finish" "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$next_code\"}" | json 'd["session"]["token"]')
[ -n "$session" ] || fail "no sign-in after the pause"
echo "ok 4: Redis paused 10 s under load: sessions kept answering, a code check answered 503 in ${ms} ms, the load saw $unavailable unavailable code ops and 0 correctness failures (slowest op ${slowest} ms); after SIGCONT the replay was refused and the next code signed in"

# 5. Restart Redis (AOF): the enrolment survives.
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
echo "ok 5: Redis restarted from its AOF; the enrolment survived"

fi

# 6. The webmail hand-off through nginx (docs/web-pages.md): the ticket made with the frontend key,
#    redeemed once at the load balancer's /account/, its cookie read by auth_request at /webmail/.
handoff_user="handoff-$RANDOM@example.org"
url=$(call "$GH_FRONTEND_KEY" POST "$GH_LB_URL/v1/login/handoff" "{\"user\":\"$handoff_user\",\"return_to\":\"/webmail/inbox\"}" | json 'd["url"]')
jar="$GH_DIR/handoff-cookies.txt"
landing=$(curl -s -m 10 -c "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' "$GH_LB_URL$url")
[ "$landing" = "303 $GH_LB_URL/webmail/inbox" ] || fail "the hand-off landing answered: $landing"
page=$(curl -s -m 10 -b "$jar" "$GH_LB_URL/webmail/inbox")
[ "$page" = "webmail for $handoff_user" ] || fail "/webmail/ with the hand-off's cookie answered: $page
nginx error log (last lines): $(tail -8 "$GH_DIR/nginx/error.log" 2>/dev/null)"
again=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$GH_LB_URL$url")
[ "$again" = 401 ] || fail "a used ticket answered $again"
anonymous=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$GH_LB_URL/webmail/inbox")
[ "$anonymous" = 401 ] || fail "/webmail/ without the cookie answered $anonymous"
echo "ok 6: the webmail hand-off through nginx: the ticket signed in once, its cookie opened /webmail/ (auth_request), a reused ticket and no cookie were refused"
