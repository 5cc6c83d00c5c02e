# Shared by the deploy/production/ci scripts (sourced): private servers on free loopback ports in temp
# directories, processes ended by pid, nothing fixed that another test run could collide with.

PROD="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$PROD/../.." && pwd)"
BIN_DIR="${MINGUS_BIN_DIR:-$REPO_ROOT/target/debug}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"

ci_log() { printf '\033[1;35m[prod-ci]\033[0m %s\n' "$*" >&2; }
ci_fail() { printf '\033[1;31m[prod-ci] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }

# A TCP port nothing listens on right now (the kernel's choice; the server binds it a moment later).
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A temp directory the postgres user may use.
ci_tempdir() {
  local dir
  dir="$(mktemp -d "/tmp/mingus-$1.XXXXXX")"
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  echo "$dir"
}

# wait_http URL [SECONDS]: until the URL answers 2xx (curl -k: the tests' own certificates).
wait_http() {
  local deadline=$((SECONDS + ${2:-30}))
  until curl -ksf -o /dev/null --max-time 2 "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# wait_port PORT [SECONDS]
wait_port() {
  local deadline=$((SECONDS + ${2:-30}))
  until timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
