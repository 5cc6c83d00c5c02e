#!/usr/bin/env bash
# Shared by run.sh and test.sh: make sure PostgreSQL, Redis and an SMTP server answer on this machine,
# installing them with apt-get when they are missing. Only loopback services are ever started here.
# Sourced, not executed.

MINGUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MINGUS_LOCAL="$MINGUS_ROOT/.local"
mkdir -p "$MINGUS_LOCAL"

log() { printf '\033[1;34m[mingus]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[mingus]\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

APT_UPDATED=""
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "$@" >/dev/null
}

# tcp_open HOST PORT: true when something accepts connections there.
tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# wait_for NAME HOST PORT: up to 30 s.
wait_for() {
  for _ in $(seq 1 60); do tcp_open "$2" "$3" && return 0; sleep 0.5; done
  die "$1 did not come up on $2:$3"
}

# url_host_port URL DEFAULT_PORT -> "host port"
url_host_port() {
  local rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"; rest="${rest%%\?*}"
  local host="${rest%%:*}" port="$2"
  [ "$rest" != "$host" ] && port="${rest##*:}"
  echo "$host $port"
}

is_loopback() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mingus}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export SMTP_URL="${SMTP_URL:-smtp://127.0.0.1:2525}"

ensure_postgres() {
  read -r host port < <(url_host_port "$DATABASE_URL" 5432)
  if tcp_open "$host" "$port"; then log "PostgreSQL answers on $host:$port"; return; fi
  is_loopback "$host" || die "PostgreSQL at $host:$port is not reachable (DATABASE_URL)"
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-contrib postgresql-client
  fi
  command -v pg_lsclusters >/dev/null || apt_install postgresql-common
  local version
  version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
    as_root pg_createcluster "$version" main --port "$port" >/dev/null
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development only: trust loopback connections so the default URL needs no password.
  if ! grep -q 'mingus-local-trust' "$hba"; then
    as_root sed -i "1i host all all 127.0.0.1/32 trust # mingus-local-trust\nhost all all ::1/128 trust # mingus-local-trust" "$hba"
  fi
  # Slow-statement monitoring for /ops/db: the library must be preloaded (the migrations then create the
  # extension). Only for a server started here; a running one is left as it is (/ops/db says why not).
  local conf_d="/etc/postgresql/$version/main/conf.d"
  if [ -d "$conf_d" ] && [ ! -f "$conf_d/mingus-local.conf" ]; then
    printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = top\n" |
      as_root tee "$conf_d/mingus-local.conf" >/dev/null
  fi
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL "$host" "$port"
}

ensure_redis() {
  read -r host port < <(url_host_port "$REDIS_URL" 6379)
  if tcp_open "$host" "$port"; then log "Redis answers on $host:$port"; return; fi
  is_loopback "$host" || die "Redis at $host:$port is not reachable (REDIS_URL)"
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis on $host:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$MINGUS_LOCAL" --logfile "$MINGUS_LOCAL/redis.log" --pidfile "$MINGUS_LOCAL/redis.pid"
  wait_for Redis "$host" "$port"
}

# A real SMTP server (aiosmtpd, from Debian) delivering every message into a Maildir.
export MINGUS_MAILDIR="${MINGUS_MAILDIR:-$MINGUS_LOCAL/maildir}"
ensure_smtp() {
  read -r host port < <(url_host_port "$SMTP_URL" 25)
  if tcp_open "$host" "$port"; then log "SMTP answers on $host:$port"; return; fi
  is_loopback "$host" || die "SMTP at $host:$port is not reachable (SMTP_URL)"
  # Debian's python3 (not a pyenv one) is the one python3-aiosmtpd installs into.
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || apt_install python3-aiosmtpd
  # aiosmtpd creates tmp/ new/ cur/ only when the Maildir does not exist yet: make all three.
  mkdir -p "$MINGUS_MAILDIR"/tmp "$MINGUS_MAILDIR"/new "$MINGUS_MAILDIR"/cur
  log "starting SMTP on $host:$port (mail lands in $MINGUS_MAILDIR)"
  nohup /usr/bin/python3 -m aiosmtpd -n -l "$host:$port" -c aiosmtpd.handlers.Mailbox "$MINGUS_MAILDIR" \
    >"$MINGUS_LOCAL/smtp.log" 2>&1 &
  echo $! >"$MINGUS_LOCAL/smtp.pid"
  wait_for SMTP "$host" "$port"
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
}

ensure_psql() {
  command -v psql >/dev/null || apt_install postgresql-client
}

# Headless Chromium and its WebDriver, for the dashboard's browser test (tests/e2e/dashboard.rs).
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return; fi
  apt_install chromium chromium-driver
}

# The tests' own SMTP servers: aiosmtpd (also when SMTP_URL already answers) and openssl for their TLS
# certificates.
ensure_test_smtp() {
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || apt_install python3-aiosmtpd
  command -v openssl >/dev/null || apt_install openssl
}

# The production components deploy/production/ci exercises (Debian's packages). Installing them must
# start nothing: a policy-rc.d answering 101 stops the packages' scripts from starting their services
# (our scripts start private instances on free ports), and goes away afterwards if we put it there.
ensure_production_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v pgbouncer >/dev/null || missing+=(pgbouncer)
  command -v pgbackrest >/dev/null || missing+=(pgbackrest)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v promtool >/dev/null || missing+=(prometheus)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
  [ ${#missing[@]} -eq 0 ] && return
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# mingus: apt starts no service while deploy/local installs packages\nexit 101\n' |
      as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    created=1
  fi
  apt_install "${missing[@]}"
  [ -n "$created" ] && as_root rm -f "$policy"
  return 0
}

# Schemathesis (PyPI) in a virtualenv of its own under .local, for deploy/local/api-fuzz.sh. Pinned to
# the major version the script's options are written for.
SCHEMATHESIS="$MINGUS_LOCAL/schemathesis/bin/st"
ensure_schemathesis() {
  [ -x "$SCHEMATHESIS" ] && return
  /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  log "installing schemathesis into $MINGUS_LOCAL/schemathesis"
  /usr/bin/python3 -m venv "$MINGUS_LOCAL/schemathesis"
  "$MINGUS_LOCAL/schemathesis/bin/pip" install --quiet 'schemathesis>=4.3,<5'
}

ensure_services() {
  ensure_rust
  ensure_psql
  ensure_postgres
  ensure_redis
  ensure_smtp
}
