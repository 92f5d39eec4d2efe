#!/usr/bin/env bash
# The docker/compose.yaml topology as local processes on loopback: redis-server (AOF on),
# N gatehouse nodes sharing one keyring and data key, and nginx load-balancing them with
# auth_request in front of /webmail/. Waits until every part is ready, prints the URLs, then
# either runs the command after `--` (with the topology's variables exported) or waits for
# Ctrl-C; everything is torn down on exit.
#
#   scripts/topology.sh [-n NODES] [-d DIR] [--redis-cluster] [--mail] [-- command args…]
#
# Exported to the command: GH_DIR, GH_REDIS_URL (the nodes' GATEHOUSE_REDIS_URL), GH_REDIS_PORT,
# GH_REDIS_PID, GH_NODE_URLS (space-separated), GH_NODE_PIDS, GH_LB_URL, GH_NGINX_PID, GH_ADMIN_KEY,
# GH_FRONTEND_KEY, GH_VERIFY_KEY, GH_MAIL_KEY.
#
# --redis-cluster replaces the single redis-server with a Redis Cluster on loopback: six
# redis-servers (AOF on, cluster-node-timeout 2000 ms, each with its cluster bus on a port of its
# own) under $GH_DIR/redis-cluster, joined by `redis-cli --cluster create --cluster-replicas 1`
# into three masters with one replica each, and ready once every node reports cluster_state:ok,
# the three replicas' links are up and `redis-cli --cluster check` passes. The cluster is created
# anew on every run (a previous run's $GH_DIR/redis-cluster is removed). The nodes get
# GATEHOUSE_REDIS_URL=redis-cluster://127.0.0.1:<m1>,127.0.0.1:<m2>,127.0.0.1:<m3> (the masters as
# seeds). Also exported: GH_REDIS_CLUSTER_PORTS and GH_REDIS_CLUSTER_PIDS (all six, space-separated,
# the three masters first, in the same order); GH_REDIS_PORT and GH_REDIS_PID are the first
# master's.
#
# --mail adds the mail path of docs/mail-servers.md (run as root: Dovecot switches users):
#   - Dovecot rendered from docker/dovecot/dovecot.conf (as GatehouseTesting.DovecotProcess
#     renders it) with IMAP, POP3 and submission on loopback ports, everything under
#     $GH_DIR/dovecot: a self-signed certificate, the primary passwd-file, the master user
#     `gatehouse` with a random secret, allowed only from 127.0.0.1 (the proxy's address), and the
#     Lua passdb asking node 1 with the mail key;
#   - nginx's mail proxy (IMAP, POP3, SMTP listeners) in the same nginx, `auth_http` to node 1's
#     /v1/mail/auth-http with the mail key; the nodes get GATEHOUSE_MAIL_BACKEND_IMAP/POP3 (Dovecot),
#     _SMTP and the master user, so nginx logs in to Dovecot as `user*gatehouse`;
#   - the SMTP backend and Dovecot's submission relay: an aiosmtpd sink on loopback that keeps
#     every message in the Maildir $GH_DIR/smtp-relay/maildir. nginx talks to it with `xclient off`
#     (aiosmtpd does not take XCLIENT): it accepts mail from anyone who reaches it, which on
#     loopback is the proxy and Dovecot; a real MTA relays for the proxy's address only.
#   Also exported: GH_IMAP_PORT, GH_POP3_PORT, GH_SMTP_PORT (the proxy's), GH_DOVECOT_IMAP_PORT,
#   GH_DOVECOT_POP3_PORT, GH_DOVECOT_SUBMISSION_PORT, GH_DOVECOT_DIR, GH_DOVECOT_PID,
#   GH_DOVECOT_USERS (the primary passwd-file, `user:{SSHA256}…` lines; Dovecot rereads it when
#   it changes), GH_DOVECOT_ADD_USER (`"$GH_DOVECOT_ADD_USER" USER PASSWORD [USER PASSWORD…]`
#   appends primary passwords to it), GH_DOVECOT_MASTER_USER, GH_DOVECOT_MASTER_PASSWORD_FILE,
#   GH_SMTP_RELAY_PORT, GH_SMTP_RELAY_MAILDIR.
set -euo pipefail
nodes=3
dir=""
mail=0
redis_cluster=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nodes="$2"; shift 2 ;;
    -d) dir="$2"; shift 2 ;;
    --mail) mail=1; shift ;;
    --redis-cluster) redis_cluster=1; shift ;;
    --) shift; break ;;
    *) echo "usage: $0 [-n NODES] [-d DIR] [--redis-cluster] [--mail] [-- command…]" >&2; exit 64 ;;
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
if [ "$mail" = 1 ]; then
  "$root/scripts/bootstrap.sh" --require dovecot /usr/lib/dovecot/imap /usr/lib/dovecot/pop3 /usr/lib/dovecot/submission \
    /usr/lib/dovecot/modules/auth/libauthdb_lua.so /usr/lib/nginx/modules/ngx_mail_module.so cryptography aiosmtpd || exit 1
  [ "$(id -u)" = 0 ] || { echo "topology: --mail starts Dovecot, which runs as root (it switches to its dovecot, dovenull and mail users)" >&2; exit 1; }
  getent group dovecot >/dev/null || { echo "topology: the dovecot group is missing (it comes with dovecot-core)" >&2; exit 1; }
  getent passwd mail >/dev/null || { echo "topology: Debian's mail user is missing; Dovecot's mail sessions run as it" >&2; exit 1; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -n "$dir" ] || dir="$(mktemp -d /tmp/gatehouse-topology.XXXXXX)"
mkdir -p "$dir"
pids=()
remove_on_exit=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for path in "${remove_on_exit[@]}"; do rm -rf "$path"; done
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# free_ports N: N distinct free ports on one line (all bound at once, then released).
free_ports() {
  python3 -c 'import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
for s in sockets: s.close()' "$1"
}
wait_for() {  # wait_for SECONDS command…
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

if [ "$redis_cluster" = 0 ]; then
  # Redis with AOF.
  redis_port=$(free_port)
  mkdir -p "$dir/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --appendfsync everysec \
    --save "" --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!; pids+=("$redis_pid")
  wait_for 10 redis-cli -p "$redis_port" ping || { echo "topology: redis did not start" >&2; exit 1; }
  redis_url="redis://127.0.0.1:$redis_port/0"
else
  # A Redis Cluster: six nodes with AOF, three masters and a replica of each.
  cdir="$dir/redis-cluster"
  rm -rf "$cdir"
  mkdir -p "$cdir"
  read -r -a cluster_all_ports <<<"$(free_ports 12)"  # six client ports, then six cluster bus ports
  [ "${#cluster_all_ports[@]}" = 12 ] || { echo "topology: no free loopback ports for the Redis Cluster" >&2; exit 1; }
  cluster_ports=("${cluster_all_ports[@]:0:6}")
  cluster_bus_ports=("${cluster_all_ports[@]:6:6}")
  declare -A cluster_pid_of=()
  for i in 0 1 2 3 4 5; do
    p="${cluster_ports[$i]}"
    ndir="$cdir/node$((i + 1))"
    mkdir -p "$ndir"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$ndir" --cluster-enabled yes --cluster-config-file "$ndir/nodes.conf" \
      --cluster-port "${cluster_bus_ports[$i]}" --cluster-node-timeout 2000 --appendonly yes --appendfsync everysec \
      --save "" --daemonize no --logfile "$ndir/redis.log" &
    cluster_pid_of[$p]=$!; pids+=("$!")
  done
  for p in "${cluster_ports[@]}"; do
    wait_for 10 redis-cli -p "$p" ping || { echo "topology: cluster node 127.0.0.1:$p did not start; see $cdir/node*/redis.log" >&2; exit 1; }
  done
  cluster_addresses=()
  for p in "${cluster_ports[@]}"; do cluster_addresses+=("127.0.0.1:$p"); done
  timeout 60 redis-cli --cluster create "${cluster_addresses[@]}" --cluster-replicas 1 --cluster-yes >"$cdir/create.log" 2>&1 || {
    echo "topology: redis-cli --cluster create failed; see $cdir/create.log:" >&2
    tail -n 20 "$cdir/create.log" >&2
    exit 1
  }
  # Settled: every node ok, the three replicas' links up, redis-cli finds the nodes in agreement
  # and every slot covered.
  cluster_settled() {
    local p info links=0
    for p in "${cluster_ports[@]}"; do
      info=$(redis-cli -p "$p" cluster info) || return 1
      [[ "$info" == *cluster_state:ok* ]] || return 1
      info=$(redis-cli -p "$p" info replication) || return 1
      [[ "$info" == *master_link_status:up* ]] && links=$((links + 1))
    done
    [ "$links" = 3 ] && timeout 10 redis-cli --cluster check "127.0.0.1:${cluster_ports[0]}"
  }
  wait_for 30 cluster_settled || {
    echo "topology: the Redis Cluster did not settle within 30 s; see $cdir/node*/redis.log" >&2
    timeout 10 redis-cli --cluster check "127.0.0.1:${cluster_ports[0]}" >&2 || true
    exit 1
  }
  cluster_masters=(); cluster_replicas=()
  for p in "${cluster_ports[@]}"; do
    role=$(redis-cli -p "$p" role)
    if [ "${role%%$'\n'*}" = master ]; then cluster_masters+=("$p"); else cluster_replicas+=("$p"); fi
  done
  [ "${#cluster_masters[@]}" = 3 ] || { echo "topology: the Redis Cluster has ${#cluster_masters[@]} masters, not 3" >&2; exit 1; }
  cluster_ordered=("${cluster_masters[@]}" "${cluster_replicas[@]}")
  cluster_pids=()
  for p in "${cluster_ordered[@]}"; do cluster_pids+=("${cluster_pid_of[$p]}"); done
  redis_port="${cluster_masters[0]}"
  redis_pid="${cluster_pid_of[$redis_port]}"
  redis_url="redis-cluster://127.0.0.1:${cluster_masters[0]},127.0.0.1:${cluster_masters[1]},127.0.0.1:${cluster_masters[2]}"
  export GH_REDIS_CLUSTER_PORTS="${cluster_ordered[*]}" GH_REDIS_CLUSTER_PIDS="${cluster_pids[*]}"
fi

# Shared keys.
[ -f "$dir/keyring.json" ] || "$bin" keys create --file "$dir/keyring.json" >/dev/null
[ -f "$dir/data-key.json" ] || "$bin" data-key create --file "$dir/data-key.json" >/dev/null
# A letter first: a key starting with "-" would read as an option on a command line.
rand() { printf 'k%s' "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }
admin_key=$(rand); frontend_key=$(rand); verify_key=$(rand); mail_key=$(rand)
api_keys="admin:admin:$admin_key,frontend:frontend:$frontend_key,verify:verify:$verify_key,mail:mail:$mail_key"

# The mail path's ports and the master secret come first: the nodes are started with them.
node_mail_env=()
if [ "$mail" = 1 ]; then
  dovecot_imap_port=$(free_port) dovecot_pop3_port=$(free_port) dovecot_submission_port=$(free_port)
  relay_port=$(free_port) imap_port=$(free_port) pop3_port=$(free_port) smtp_port=$(free_port)
  master_user=gatehouse
  master_password_file="$dir/mail-master-password"
  # Known only to the nodes (which hand it to nginx for each login) and, hashed, to Dovecot.
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$master_password_file")
  node_mail_env=(
    GATEHOUSE_MAIL_BACKEND_IMAP="127.0.0.1:$dovecot_imap_port" GATEHOUSE_MAIL_BACKEND_POP3="127.0.0.1:$dovecot_pop3_port"
    GATEHOUSE_MAIL_BACKEND_SMTP="127.0.0.1:$relay_port"
    GATEHOUSE_MAIL_BACKEND_MASTER_USER="$master_user" GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE="$master_password_file"
  )
fi

# Nodes.
node_urls=(); node_pids=()
for i in $(seq 1 "$nodes"); do
  port=$(free_port)
  GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_REDIS_URL="$redis_url" \
  GATEHOUSE_KEYRING_FILE="$dir/keyring.json" GATEHOUSE_DATA_KEY_FILE="$dir/data-key.json" \
  GATEHOUSE_API_KEYS="$api_keys" GATEHOUSE_STATE_DIR="$dir/node$i" GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-notice}" \
  GATEHOUSE_WEB_RETURN_URLS=/webmail/ \
    env "${node_mail_env[@]}" "$bin" serve >"$dir/node$i.log" 2>&1 &
  pid=$!; pids+=("$pid"); node_pids+=("$pid"); node_urls+=("http://127.0.0.1:$port")
done
for url in "${node_urls[@]}"; do
  wait_for 30 curl -sf "$url/readyz" || { echo "topology: $url did not become ready; see $dir/node*.log" >&2; exit 1; }
done

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The mail path: the SMTP relay, then Dovecot asking node 1.
if [ "$mail" = 1 ]; then
  node1_url="${node_urls[0]}"
  mdir="$dir/dovecot"
  mkdir -p "$mdir/state" "$mdir/tls" "$mdir/mail" "$dir/smtp-relay"
  # Dovecot's unprivileged processes (dovecot, dovenull, mail) reach their files through the
  # topology directory: traversal only (the topology's own secrets are 0600 files).
  chmod 711 "$dir"
  chmod 755 "$mdir" "$mdir/state" "$mdir/tls"
  chown mail:mail "$mdir/mail"
  chmod 700 "$mdir/mail"
  # base_dir holds Dovecot's Unix sockets (sun_path is 108 bytes): a short directory of its own
  # when the topology's is long.
  base_dir="$mdir/run"
  if [ ${#base_dir} -gt 60 ]; then base_dir="$(mktemp -d /tmp/gh-dovecot.XXXXXX)"; chmod 755 "$base_dir"; remove_on_exit+=("$base_dir"); fi
  install -m 0644 "$root/docker/dovecot/gatehouse-passdb.lua" "$mdir/gatehouse-passdb.lua"
  # Read by Dovecot's auth processes (the dovecot group), as docs/mail-servers.md asks.
  for f in mail-key users master-users; do install -m 0640 -o root -g dovecot /dev/null "$mdir/$f"; done
  printf '%s\n' "$mail_key" >"$mdir/mail-key"
  # add-user USER PASSWORD…: primary passwords as {SSHA256} lines (Dovecot rereads the file when
  # it changes). Also makes the master user's line below.
  cat >"$mdir/add-user" <<'ADDUSER'
#!/usr/bin/env bash
# USER PASSWORD [USER PASSWORD…]: appends primary passwords ({SSHA256}) to Dovecot's passwd-file
# beside this script (or to $DOVECOT_PASSWD_FILE).
set -euo pipefail
[ $# -ge 2 ] && [ $(($# % 2)) = 0 ] || { echo "usage: $0 USER PASSWORD [USER PASSWORD…]" >&2; exit 64; }
lines=$(python3 - "$@" <<'PY'
import base64, hashlib, os, sys
args = sys.argv[1:]
for user, password in zip(args[0::2], args[1::2]):
    if not user or any(c in user for c in ":\n\r") or "\n" in password:
        sys.exit("add-user: %r is not a user name for a passwd-file" % user)
    salt = os.urandom(8)
    digest = hashlib.sha256(password.encode() + salt).digest()
    print("%s:{SSHA256}%s" % (user.lower(), base64.b64encode(digest + salt).decode()))
PY
)
printf '%s\n' "$lines" >>"${DOVECOT_PASSWD_FILE:-$(dirname "$0")/users}"
ADDUSER
  chmod 755 "$mdir/add-user"
  # The master user, only from the proxy's address (nginx connects from 127.0.0.1).
  master_line=$(DOVECOT_PASSWD_FILE=/dev/stdout "$mdir/add-user" "$master_user" "$(cat "$master_password_file")")
  printf '%s::::::allow_real_nets=127.0.0.1/32\n' "$master_line" >"$mdir/master-users"
  # A self-signed P-256 certificate for 127.0.0.1 and localhost (python3 cryptography).
  python3 - "$mdir/tls" <<'CERT'
import datetime, ipaddress, os, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
directory = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
now = datetime.datetime.now(datetime.timezone.utc)
certificate = (
    x509.CertificateBuilder()
    .subject_name(name).issuer_name(name).public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5))
    .not_valid_after(now + datetime.timedelta(days=30))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .add_extension(x509.SubjectAlternativeName([
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    .sign(key, hashes.SHA256()))
with open(os.path.join(directory, "certificate.pem"), "wb") as f:
    f.write(certificate.public_bytes(serialization.Encoding.PEM))
descriptor = os.open(os.path.join(directory, "key.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(descriptor, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
CERT
  # dovecot.conf rendered with every ${NAME} it has (a name without a value is an error).
  python3 - "$root/docker/dovecot/dovecot.conf" "$mdir/dovecot.conf" \
    LISTEN_ADDRESSES=127.0.0.1 DOVECOT_BASE_DIR="$base_dir" DOVECOT_STATE_DIR="$mdir/state" DOVECOT_LOG_PATH="$mdir/dovecot.log" \
    GATEHOUSE_URL="$node1_url" GATEHOUSE_MAIL_KEY_FILE="$mdir/mail-key" GATEHOUSE_TIMEOUT_MSECS=3000 \
    GATEHOUSE_PASSDB_LUA="$mdir/gatehouse-passdb.lua" TLS_CERT_FILE="$mdir/tls/certificate.pem" TLS_KEY_FILE="$mdir/tls/key.pem" \
    PROXY_NETWORKS=127.0.0.1/32 MASTER_PASSWD_FILE="$mdir/master-users" PRIMARY_PASSWD_FILE="$mdir/users" \
    MAIL_UID="$(id -u mail)" MAIL_GID="$(id -g mail)" MAIL_HOME="$mdir/mail" \
    IMAP_PORT="$dovecot_imap_port" POP3_PORT="$dovecot_pop3_port" SUBMISSION_PORT="$dovecot_submission_port" \
    MAIL_HOSTNAME=mail.gatehouse.test SUBMISSION_RELAY_HOST=127.0.0.1 SUBMISSION_RELAY_PORT="$relay_port" <<'RENDER'
import re, sys
template, out = sys.argv[1], sys.argv[2]
values = dict(a.split("=", 1) for a in sys.argv[3:])
text = open(template).read()
pattern = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
unknown = sorted({n for n in pattern.findall(text) if n not in values})
if unknown:
    sys.exit("topology: dovecot.conf names values this script does not fill in: " + ", ".join(unknown))
open(out, "w").write(pattern.sub(lambda m: values[m.group(1)], text))
RENDER

  # The SMTP relay (an aiosmtpd sink into a Maildir), for nginx's SMTP and Dovecot's submission.
  python3 -m aiosmtpd -n -l "127.0.0.1:$relay_port" -c aiosmtpd.handlers.Mailbox "$dir/smtp-relay/maildir" \
    >"$dir/smtp-relay/relay.log" 2>&1 &
  relay_pid=$!; pids+=("$relay_pid")
  wait_for 10 port_open "$relay_port" || { echo "topology: the SMTP relay did not start; see $dir/smtp-relay/relay.log" >&2; exit 1; }

  DOVECOT="$(command -v dovecot || echo /usr/sbin/dovecot)"
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$DOVECOT" -F -c "$mdir/dovecot.conf" >"$mdir/output.log" 2>&1 &
  dovecot_pid=$!; pids+=("$dovecot_pid")
  for p in "$dovecot_imap_port" "$dovecot_pop3_port" "$dovecot_submission_port"; do
    wait_for 20 port_open "$p" || {
      echo "topology: Dovecot did not accept connections on $p; see $mdir/dovecot.log:" >&2
      tail -n 20 "$mdir/dovecot.log" "$mdir/output.log" >&2 2>/dev/null || true
      exit 1
    }
  done
fi

# nginx: load balancer + auth_request (+ the mail proxy with --mail).
lb_port=$(free_port)
mkdir -p "$dir/nginx"
{
  if [ "$mail" = 1 ]; then echo "load_module /usr/lib/nginx/modules/ngx_mail_module.so;"; fi
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
  echo "    location /account/ { proxy_pass http://gatehouse; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
  echo "    location /webmail/ { auth_request /_gatehouse_auth; auth_request_set \$gh_user \$upstream_http_gatehouse_user;"
  echo "      proxy_set_header X-Gatehouse-User \$gh_user; proxy_pass http://unix:$dir/nginx/webmail.sock; }"
  echo "    location = /_gatehouse_auth { internal; proxy_pass http://gatehouse/v1/auth; proxy_pass_request_body off;"
  echo "      proxy_set_header Content-Length \"\"; proxy_set_header Authorization \"Bearer $verify_key\";"
  echo "      proxy_set_header Gatehouse-Session \$cookie_gatehouse_session; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
  echo "  }"
  echo "}"
  if [ "$mail" = 1 ]; then
    echo "mail { server_name mail.gatehouse.test;"
    echo "  auth_http ${node1_url#http://}/v1/mail/auth-http;"
    echo "  auth_http_header Authorization \"Bearer $mail_key\";"
    echo "  proxy_pass_error_message on;"
    echo "  server { listen 127.0.0.1:$imap_port; protocol imap; imap_auth plain login; }"
    echo "  server { listen 127.0.0.1:$pop3_port; protocol pop3; pop3_auth plain; }"
    echo "  # The relay takes no XCLIENT (see the top of this script)."
    echo "  server { listen 127.0.0.1:$smtp_port; protocol smtp; smtp_auth plain login; xclient off; }"
    echo "}"
  fi
} > "$dir/nginx/nginx.conf"
"$NGINX" -c "$dir/nginx/nginx.conf" -p "$dir/nginx" &
nginx_pid=$!; pids+=("$nginx_pid")
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$lb_port/nginx-204" || { echo "topology: nginx did not start; see $dir/nginx/error.log" >&2; exit 1; }
if [ "$mail" = 1 ]; then
  for p in "$imap_port" "$pop3_port" "$smtp_port"; do
    wait_for 10 port_open "$p" || { echo "topology: nginx's mail proxy does not listen on $p; see $dir/nginx/error.log" >&2; exit 1; }
  done
  export GH_IMAP_PORT="$imap_port" GH_POP3_PORT="$pop3_port" GH_SMTP_PORT="$smtp_port" GH_DOVECOT_IMAP_PORT="$dovecot_imap_port" \
    GH_DOVECOT_POP3_PORT="$dovecot_pop3_port" GH_DOVECOT_SUBMISSION_PORT="$dovecot_submission_port" GH_DOVECOT_DIR="$mdir" \
    GH_DOVECOT_PID="$dovecot_pid" GH_DOVECOT_USERS="$mdir/users" GH_DOVECOT_ADD_USER="$mdir/add-user" \
    GH_DOVECOT_MASTER_USER="$master_user" GH_DOVECOT_MASTER_PASSWORD_FILE="$master_password_file" \
    GH_SMTP_RELAY_PORT="$relay_port" GH_SMTP_RELAY_MAILDIR="$dir/smtp-relay/maildir"
fi

export GH_DIR="$dir" GH_REDIS_URL="$redis_url" GH_REDIS_PORT="$redis_port" GH_REDIS_PID="$redis_pid" GH_NODE_URLS="${node_urls[*]}" GH_NODE_PIDS="${node_pids[*]}" \
  GH_LB_URL="http://127.0.0.1:$lb_port" GH_NGINX_PID="$nginx_pid" GH_ADMIN_KEY="$admin_key" GH_FRONTEND_KEY="$frontend_key" \
  GH_VERIFY_KEY="$verify_key" GH_MAIL_KEY="$mail_key" GATEHOUSE_BINARY="$bin"
if [ "$redis_cluster" = 1 ]; then
  redis_summary="redis cluster $redis_url (replicas ${cluster_replicas[*]})"
else
  redis_summary="redis 127.0.0.1:$redis_port"
fi
echo "topology ready: $redis_summary, nodes ${node_urls[*]}, load balancer $GH_LB_URL (state in $dir)"
if [ "$mail" = 1 ]; then
  echo "mail: nginx IMAP 127.0.0.1:$imap_port, POP3 :$pop3_port, SMTP :$smtp_port → Gatehouse ${node_urls[0]} → Dovecot IMAP :$dovecot_imap_port, POP3 :$dovecot_pop3_port, submission :$dovecot_submission_port; SMTP relay :$relay_port"
fi
if [ $# -gt 0 ]; then
  "$@"
else
  echo "Ctrl-C to stop"
  wait "$redis_pid"
fi
