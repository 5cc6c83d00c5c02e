#!/usr/bin/env bash
# CI for deploy/production/pgbouncer/pgbouncer.ini: PgBouncer (Debian's package) runs the committed file
# with only what a test machine needs changed — its port and paths, a wildcard [databases] entry (each
# test makes a database of its own) and trust auth (the CI server trusts loopback) — and a subset of the
# e2e suite runs with every DATABASE_URL through it: webhooks and their processing, Stripe events, reports,
# feature checks and the scheduler. Session mode is what the file says, and what this proves works:
# sqlx's prepared statements and our advisory locks need the same server connection for a client.
# Afterwards PgBouncer's own statistics must show the suite's traffic went through it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || ci_fail "pgbouncer is not installed (deploy/local/services.sh ensure_production_tools)"
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

server_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
read -r pg_host pg_port < <(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 5432)' "$server_url")
tmp="$(ci_tempdir pgbouncer)"
port="$(free_port)"
cleanup() {
  [ -f "$tmp/pgbouncer.pid" ] && kill "$(cat "$tmp/pgbouncer.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$tmp"
}
trap cleanup EXIT

awk -v port="$port" -v tmp="$tmp" -v host="$pg_host" -v pgport="$pg_port" '
  /^\[databases\]/ { print; print "* = host=" host " port=" pgport; skip = 1; next }
  /^\[/ { skip = 0 }
  skip && /^[a-z_*]+ *=/ { next }
  /^listen_port *=/ { print "listen_port = " port; next }
  /^unix_socket_dir *=/ { print "unix_socket_dir = " tmp; next }
  /^auth_type *=/ { print "auth_type = trust"; next }
  /^auth_file *=/ { print "auth_file = " tmp "/userlist.txt"; print "logfile = " tmp "/pgbouncer.log"; print "pidfile = " tmp "/pgbouncer.pid"; next }
  { print }
' "$PROD/pgbouncer/pgbouncer.ini" >"$tmp/pgbouncer.ini"
for setting in "pool_mode = session" "default_pool_size = 20" "reserve_pool_size = 30" "max_db_connections = 50"; do
  grep -qx "$setting" "$tmp/pgbouncer.ini" || ci_fail "the rendered file lost '$setting'"
done
printf '"postgres" ""\n' >"$tmp/userlist.txt"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$tmp"
ci_log "pgbouncer on 127.0.0.1:$port in front of $pg_host:$pg_port"
as_postgres "$PGBOUNCER" -d "$tmp/pgbouncer.ini"
wait_port "$port" 15 || { cat "$tmp/pgbouncer.log" >&2; ci_fail "pgbouncer did not start"; }
psql -X -q -Atc 'SELECT 1' "postgres://postgres@127.0.0.1:$port/postgres" >/dev/null || ci_fail "no query through pgbouncer"

export TEST_DATABASE_POOLER_URL="postgres://postgres@127.0.0.1:$port/postgres"
# One filter per area (libtest takes several substring filters; the modules are the e2e suite's).
status=0
filters=(webhooks:: stripe_processing:: reports:: entitlements:: scheduler:: v1::features)
ci_log "e2e ${filters[*]} through pgbouncer"
(cd "$REPO_ROOT" && cargo test --quiet -p mingus-tests --test e2e -- "${filters[@]}" 2>&1 | tail -n 15) || status=1
[ "$status" -eq 0 ] || ci_fail "e2e tests failed through pgbouncer"

# The traffic went through: PgBouncer counted transactions on the test databases.
xacts="$(psql -X -Atc 'SHOW STATS' "postgres://postgres@127.0.0.1:$port/pgbouncer" |
  awk -F'|' '$1 ~ /^mingus_test_/ { n += $2 } END { print n + 0 }')"
[ "$xacts" -gt 100 ] || ci_fail "pgbouncer counted only $xacts transactions on test databases"
ci_log "pgbouncer: $xacts transactions through it; OK in $((SECONDS - started)) s"
