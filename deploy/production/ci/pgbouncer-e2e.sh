#!/usr/bin/env bash
# CI for deploy/production/pgbouncer/pgbouncer.ini: PgBouncer (Debian's package) runs the committed file
# with only what a test machine needs changed (lib.sh render_pgbouncer: its port and paths, a wildcard
# [databases] entry, trust auth) — and a subset of the e2e suite runs with every DATABASE_URL through
# it: webhooks and their processing, Stripe events, reports, feature checks and the scheduler. Session
# mode is what the file says, and what this proves works: sqlx's prepared statements and our advisory
# locks need the same server connection for a client.
# Afterwards PgBouncer's own statistics must show the suite's traffic went through it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || ci_fail "pgbouncer is not installed (deploy/local/services.sh ensure_production_tools)"
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

server_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
read -r pg_host pg_port < <(url_host_port "$server_url")
tmp="$(ci_tempdir pgbouncer)"
port="$(free_port)"
cleanup() {
  [ -f "$tmp/pgbouncer.pid" ] && kill "$(cat "$tmp/pgbouncer.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$tmp"
}
trap cleanup EXIT

render_pgbouncer "$tmp" "$port" "$pg_host" "$pg_port"
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
