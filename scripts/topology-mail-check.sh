#!/usr/bin/env bash
# Checks run inside `scripts/topology.sh --mail` (which exports GH_* and GATEHOUSE_BINARY):
#   1. a two-step user (imported with an authenticator secret, signed in, an app password made
#      through the API) logs in to IMAP through nginx's mail proxy with the app password: nginx
#      asks Gatehouse, then logs in to Dovecot as the master user;
#   2. the same user's primary password is refused at the proxy, with the words that say why;
#   3. the app password also opens POP3 through the proxy, and SMTP through the proxy sends a
#      message that reaches the relay;
#   4. straight to Dovecot (its Lua passdb asks node 1) the app password opens IMAP and the
#      primary password does not;
#   5. a user without two-step logs in through the proxy with the primary password (Gatehouse
#      answers "use the primary password", Dovecot checks it).
# Prints one line per check; exits non-zero at the first failure. Every network step is bounded.
set -euo pipefail
read -r -a nodes <<< "$GH_NODE_URLS"
bin="$GATEHOUSE_BINARY"
fail() { echo "FAIL: $*" >&2; exit 1; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
call() {  # call KEY METHOD URL [BODY] [extra curl args…]
  local key=$1 method=$2 url=$3 body=${4:-}; shift 4 || shift $#
  curl -s -m 10 -H "Authorization: Bearer $key" -H "Content-Type: application/json" -X "$method" "$url" ${body:+-d "$body"} "$@"
}

user="mail-check-$RANDOM@example.org"
primary="primary-Secret-$RANDOM"
secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
call "$GH_ADMIN_KEY" POST "${nodes[0]}/v1/users/import" "{\"user\":\"$user\",\"totp_secret\":\"$secret\"}" \
  | json 'd["imported"]' | grep -qx 1 || fail "import of $user"
"$GH_DOVECOT_ADD_USER" "$user" "$primary"
# Sign in (a fresh step, so the code stays valid for the whole login) and make an app password.
while [ $(( 30 - $(date +%s) % 30 )) -lt 8 ]; do sleep 1; done
challenge=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/start" "{\"user\":\"$user\"}" | json 'd["challenge"]["token"]')
code=$("$bin" otp --secret "$secret")
session=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/login/finish" "{\"challenge\":\"$challenge\",\"method\":\"totp\",\"code\":\"$code\"}" \
  | json 'd["session"]["token"]')
[ -n "$session" ] || fail "no session for $user"
app=$(call "$GH_FRONTEND_KEY" POST "${nodes[0]}/v1/me/app-passwords" '{"label":"Topology mail check"}' -H "Gatehouse-Session: $session" \
  | json 'd["password"]')
[ -n "$app" ] || fail "no app password for $user"

# mail CHECK USER PASSWORD: one login with Python's imaplib/poplib/smtplib, printing "ok" or
# "refused: <the server's words>"; CHECK is imap-proxy, pop3-proxy, smtp-proxy or imap-dovecot.
mail() {
  timeout 60 python3 - "$@" <<'PY'
import imaplib, os, poplib, smtplib, sys
check, user, password = sys.argv[1:4]
def port(name): return int(os.environ[name])
try:
    if check in ("imap-proxy", "imap-dovecot"):
        client = imaplib.IMAP4("127.0.0.1", port("GH_IMAP_PORT" if check == "imap-proxy" else "GH_DOVECOT_IMAP_PORT"), timeout=45)
        client.login(user, password)
        typ, _ = client.select("INBOX")
        assert typ == "OK", typ
        client.logout()
    elif check == "pop3-proxy":
        client = poplib.POP3("127.0.0.1", port("GH_POP3_PORT"), timeout=45)
        client.user(user)
        client.pass_(password)
        client.stat()
        client.quit()
    elif check == "smtp-proxy":
        client = smtplib.SMTP("127.0.0.1", port("GH_SMTP_PORT"), timeout=45)
        client.ehlo("topology-check.example")
        client.login(user, password)
        client.sendmail(user, ["someone@example.net"], "Subject: topology mail check\r\n\r\nsent through nginx's mail proxy\r\n")
        client.quit()
    print("ok")
except (imaplib.IMAP4.error, poplib.error_proto, smtplib.SMTPException) as e:
    text = e.args[0] if e.args else e
    print("refused: %s" % (text.decode(errors="replace") if isinstance(text, bytes) else text))
PY
}

# 1. IMAP through the proxy with the app password.
out=$(mail imap-proxy "$user" "$app")
[ "$out" = ok ] || fail "IMAP through nginx with the app password: $out"
echo "ok 1: IMAP login through nginx's mail proxy with an app password (nginx → Gatehouse → Dovecot as the master user)"

# 2. The primary password is refused at the proxy.
out=$(mail imap-proxy "$user" "$primary")
case "$out" in
  "refused: "*"Two-step verification is on for this account"*) ;;
  *) fail "IMAP through nginx with the primary password: $out" ;;
esac
echo "ok 2: the primary password is refused through the proxy (${out#refused: })"

# 3. POP3 and SMTP through the proxy; the message reaches the relay.
out=$(mail pop3-proxy "$user" "$app")
[ "$out" = ok ] || fail "POP3 through nginx with the app password: $out"
before=$(find "$GH_SMTP_RELAY_MAILDIR/new" -type f 2>/dev/null | wc -l)
out=$(mail smtp-proxy "$user" "$app")
[ "$out" = ok ] || fail "SMTP through nginx with the app password: $out"
after=$before
for _ in $(seq 1 50); do
  after=$(find "$GH_SMTP_RELAY_MAILDIR/new" -type f 2>/dev/null | wc -l)
  [ "$after" -gt "$before" ] && break
  sleep 0.1
done
[ "$after" -gt "$before" ] || fail "the message sent through nginx's SMTP proxy did not reach the relay"
echo "ok 3: POP3 login and SMTP submission through the proxy with the app password; the message reached the relay"

# 4. Straight to Dovecot: its Lua passdb asks node 1.
out=$(mail imap-dovecot "$user" "$app")
[ "$out" = ok ] || fail "IMAP to Dovecot with the app password: $out"
out=$(mail imap-dovecot "$user" "$primary")
case "$out" in "refused: "*) ;; *) fail "IMAP to Dovecot with the primary password: $out" ;; esac
echo "ok 4: Dovecot's own IMAP (the Lua passdb asking Gatehouse) takes the app password and refuses the primary one"

# 5. A user without two-step: the primary password, checked by Dovecot.
plain_user="mail-plain-$RANDOM@example.org"
"$GH_DOVECOT_ADD_USER" "$plain_user" "$primary"
out=$(mail imap-proxy "$plain_user" "$primary")
[ "$out" = ok ] || fail "IMAP through nginx for a user without two-step: $out"
echo "ok 5: a user without two-step logs in through the proxy with the primary password"
