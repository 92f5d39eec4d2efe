#!/bin/sh
# Starts Dovecot from the shipped template (docs/mail-servers.md): installs the secrets with the
# owners and modes the configuration expects, renders /etc/dovecot/dovecot.conf with envsubst
# (only the template's own ${NAME}s, so Dovecot's $default_internal_user stays), and runs Dovecot
# in the foreground. Secrets (compose mounts them under /run/secrets):
#   gatehouse_mail_key     the secret of an API key with the `mail` scope (the part after the last
#                          colon of its GATEHOUSE_API_KEYS entry): the Lua passdb's bearer token
#   mail_master_password   the master user's secret, the same file the Gatehouse nodes read as
#                          GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE (nginx logs in with it)
#   dovecot_users          the primary passwords, `user:{SCHEME}hash` lines (doveadm pw -s SHA512-CRYPT)
#   dovecot_tls_cert, dovecot_tls_key   optional; without them a self-signed certificate is made
#                          once (clients then see an unknown issuer)
set -eu
secrets=${SECRETS_DIR:-/run/secrets}
template=/usr/local/share/gatehouse/dovecot.conf

install_secret() {  # install_secret NAME DESTINATION: root:dovecot 0640, read by the auth processes
  [ -r "$secrets/$1" ] || { echo "gatehouse-dovecot: the secret $1 is missing ($secrets/$1)" >&2; exit 1; }
  install -m 0640 -o root -g dovecot "$secrets/$1" "$2"
}
install_secret gatehouse_mail_key "$GATEHOUSE_MAIL_KEY_FILE"
install_secret dovecot_users "$PRIMARY_PASSWD_FILE"

# The master user `gatehouse`, only from the proxies' own addresses (allow_real_nets).
[ -r "$secrets/mail_master_password" ] || { echo "gatehouse-dovecot: the secret mail_master_password is missing" >&2; exit 1; }
hash=$(doveadm -c /dev/null pw -s SHA512-CRYPT -p "$(tr -d '\r\n' < "$secrets/mail_master_password")")
install -m 0640 -o root -g dovecot /dev/null "$MASTER_PASSWD_FILE"
printf 'gatehouse:%s::::::allow_real_nets=%s\n' "$hash" "$(echo "$PROXY_NETWORKS" | tr -d ' ')" > "$MASTER_PASSWD_FILE"

mkdir -p "$(dirname "$TLS_CERT_FILE")" "$(dirname "$TLS_KEY_FILE")"
if [ -r "$secrets/dovecot_tls_cert" ] && [ -r "$secrets/dovecot_tls_key" ]; then
  install -m 0644 "$secrets/dovecot_tls_cert" "$TLS_CERT_FILE"
  install -m 0600 "$secrets/dovecot_tls_key" "$TLS_KEY_FILE"
elif [ ! -s "$TLS_KEY_FILE" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj "/CN=$MAIL_HOSTNAME" \
    -addext "subjectAltName=DNS:$MAIL_HOSTNAME" -keyout "$TLS_KEY_FILE" -out "$TLS_CERT_FILE" 2>/dev/null
  chmod 0600 "$TLS_KEY_FILE"
fi

chown "$MAIL_UID:$MAIL_GID" "$MAIL_HOME"
names=$(grep -o '\${[A-Z0-9_]*}' "$template" | sort -u | tr -d '\n')
for name in $(echo "$names" | tr -d '${' | tr '}' ' '); do
  eval "present=\${$name+x}"
  [ -n "$present" ] || { echo "gatehouse-dovecot: $name is not set (dovecot.conf needs it)" >&2; exit 1; }
done
envsubst "$names" < "$template" > /etc/dovecot/dovecot.conf
exec dovecot -F -c /etc/dovecot/dovecot.conf
