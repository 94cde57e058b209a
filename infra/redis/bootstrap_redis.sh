#!/bin/bash
# Make this machine the stack's Redis: TLS with a CA of its own, a password, an append-only
# file. Runs as root on the first boot of the RedisMode=instance EC2 instance (its user data
# is this file after a few `export` lines; tests/infra/test_redis_profiles.py keeps the two
# equal), and again by hand after a password rotation; the unit it installs starts Redis
# at every boot. Tests run it against a local redis-server (TL_REDIS_START=none).
#
# Environment:
#   TL_REDIS_DIR         state kept on the volume: tls/ (CA, server cert), data/ (AOF)
#                        (/var/lib/tinyllama-redis)
#   TL_REDIS_PORT        the TLS port; no plain-text port is opened (6379)
#   TL_REDIS_BIND        the addresses to listen on (0.0.0.0: the security group admits
#                        only the router and the worker)
#   TL_REDIS_SECRET_ID   the stack's RedisAuthSecret: its password becomes requirepass, and
#                        the CA certificate is written back into it as JSON,
#                        {"password": ..., "ca": PEM}, where the router and worker read it
#   TL_REDIS_PASSWORD_FILE  instead of the secret: a file holding the password (tests)
#   TL_REDIS_SANS        the server certificate's names, "IP:10.0.0.5,DNS:ip-10-0-0-5.ec2.internal"
#                        (default: this instance's private IPv4 and host name, from IMDSv2)
#   TL_REDIS_SERVER      the server binary (default: valkey-server, redis6-server or
#                        redis-server, the first found; AL2023's package is redis6)
#   TL_REDIS_MAXMEMORY   memory cap (200mb: a t4g.nano has 512 MiB; noeviction, so a full
#                        Redis refuses writes rather than dropping queued jobs)
#   TL_REDIS_START       systemd (install and start a unit; the default) or none (only write
#                        the config: the caller starts `$server $TL_REDIS_DIR/redis.conf`)
#   AWS_REGION           for the aws CLI
set -euo pipefail
umask 077

dir=${TL_REDIS_DIR:-/var/lib/tinyllama-redis}
port=${TL_REDIS_PORT:-6379}
bind=${TL_REDIS_BIND:-0.0.0.0}
start=${TL_REDIS_START:-systemd}
maxmemory=${TL_REDIS_MAXMEMORY:-200mb}
log() { echo "bootstrap_redis: $*" >&2; }

# -- the server --------------------------------------------------------------------------
find_server() {
  local name
  for name in valkey-server redis6-server redis-server; do
    command -v "$name" && return 0
  done
  return 1
}
server=${TL_REDIS_SERVER:-$(find_server || true)}
if [ -z "$server" ]; then
  # AL2023 packages Redis 6.2 as redis6 (redis6-server, redis6-cli); infra/NOTES.md, "Redis".
  dnf install -y redis6
  server=$(find_server)
fi
command -v openssl >/dev/null || dnf install -y openssl
# The package's own unit would start a second, plain-text Redis on 6379.
if [ "$start" = systemd ]; then
  systemctl disable --now redis6.service valkey.service redis.service 2>/dev/null || true
fi

# -- the password ------------------------------------------------------------------------
# The secret is the plain token CloudFormation generated, or the JSON this script wrote.
secret_json=""
read_secret() {
  local attempt
  for attempt in $(seq 30); do
    if secret_json=$(aws secretsmanager get-secret-value --secret-id "$TL_REDIS_SECRET_ID" \
        --query SecretString --output text); then
      return 0
    fi
    # The way out (egress-only gateway or NAT) may come up after this instance boots.
    log "Secrets Manager did not answer (try $attempt); waiting"
    sleep 10
  done
  log "could not read the Redis secret $TL_REDIS_SECRET_ID"
  return 1
}
if [ -n "${TL_REDIS_SECRET_ID:-}" ]; then
  read_secret
  password=$(SECRET="$secret_json" python3 -c '
import json, os
raw = os.environ["SECRET"]
try:
    value = json.loads(raw)
except ValueError:
    value = raw
print(value["password"] if isinstance(value, dict) else raw)')
elif [ -n "${TL_REDIS_PASSWORD_FILE:-}" ]; then
  password=$(cat "$TL_REDIS_PASSWORD_FILE")
else
  log "set TL_REDIS_SECRET_ID or TL_REDIS_PASSWORD_FILE"
  exit 2
fi
if [ ${#password} -lt 16 ]; then
  log "the Redis password is shorter than 16 characters"
  exit 2
fi

# -- certificates ------------------------------------------------------------------------
if [ -z "${TL_REDIS_SANS:-}" ]; then
  token=$(curl -fsS -m 5 -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  imds() { curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"; }
  TL_REDIS_SANS="IP:$(imds local-ipv4),DNS:$(imds local-hostname)"
fi
tls="$dir/tls"
install -d -m 0700 "$dir" "$tls" "$dir/data"
# The CA is made once and kept on the volume: clients verify against it, so a new one on
# every boot would break them until they re-read the secret. The server certificate is
# reissued at every boot (the names could change; it costs milliseconds).
if [ ! -s "$tls/ca.crt" ]; then
  log "making the CA"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
    -days 3650 -subj "/CN=TinyLlama Redis CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
fi
cat > "$tls/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$TL_REDIS_SANS
EOF
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
  -subj "/CN=TinyLlama Redis" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
  -days 3650 -sha256 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
rm -f "$tls/server.csr"

# -- configuration -----------------------------------------------------------------------
conf="$dir/redis.conf"
cat > "$conf" <<EOF
# Written by bootstrap_redis.sh at every boot; edits here are lost.
bind $bind
port 0
tls-port $port
tls-cert-file $tls/server.crt
tls-key-file $tls/server.key
tls-ca-cert-file $tls/ca.crt
# Clients prove themselves with the password, not with certificates.
tls-auth-clients no
tls-protocols "TLSv1.2 TLSv1.3"
requirepass "$password"
dir $dir/data
# The queue and the results survive a restart: every write goes to the append-only file,
# fsynced once a second; no RDB snapshots besides.
appendonly yes
appendfsync everysec
save ""
maxmemory $maxmemory
maxmemory-policy noeviction
daemonize no
EOF

# -- publish the CA ----------------------------------------------------------------------
if [ -n "${TL_REDIS_SECRET_ID:-}" ]; then
  wanted=$(PASSWORD="$password" CA_FILE="$tls/ca.crt" python3 -c '
import json, os
print(json.dumps({"password": os.environ["PASSWORD"], "ca": open(os.environ["CA_FILE"]).read()}, sort_keys=True))')
  current=$(SECRET="$secret_json" python3 -c '
import json, os
try:
    print(json.dumps(json.loads(os.environ["SECRET"]), sort_keys=True))
except ValueError:
    print("")')
  if [ "$wanted" != "$current" ]; then
    log "publishing the CA certificate in $TL_REDIS_SECRET_ID"
    printf '%s' "$wanted" > "$dir/secret.json"
    aws secretsmanager put-secret-value --secret-id "$TL_REDIS_SECRET_ID" \
      --secret-string "file://$dir/secret.json" >/dev/null
    rm -f "$dir/secret.json"
  fi
fi

# -- start -------------------------------------------------------------------------------
if [ "$start" = none ]; then
  log "config written to $conf"
  exit 0
fi
id tlredis >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /sbin/nologin tlredis
chown -R tlredis:tlredis "$dir"
# Redis needs its certificate and key, not the CA's key: that stays root's.
chown root:root "$tls/ca.key"
cat > /etc/systemd/system/tinyllama-redis.service <<EOF
[Unit]
Description=TinyLlama Redis (TLS, password, append-only file)
After=network-online.target
Wants=network-online.target

[Service]
User=tlredis
Group=tlredis
ExecStart=$server $conf
Restart=always
RestartSec=2
LimitNOFILE=10032
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=$dir

[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable tinyllama-redis.service
systemctl restart tinyllama-redis.service
# Prove TLS answers with this CA (a package built without TLS would fail here, in the log).
for _ in $(seq 30); do
  if openssl s_client -connect "127.0.0.1:$port" -CAfile "$tls/ca.crt" -verify_return_error \
      </dev/null >/dev/null 2>&1; then
    log "Redis answers TLS on $port"
    exit 0
  fi
  sleep 1
done
log "Redis did not answer TLS on $port: journalctl -u tinyllama-redis"
exit 1
