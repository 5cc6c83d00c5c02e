#!/usr/bin/env bash
# Brings up the same services as run.sh (installing them when missing), then runs the whole test suite.
set -euo pipefail
source "$(dirname "$0")/services.sh"
cd "$MINGUS_ROOT"
ensure_services
ensure_test_smtp
ensure_chromium
ensure_production_tools

read -r pg_host pg_port < <(url_host_port "$DATABASE_URL" 5432)
pg_server="${DATABASE_URL%/*}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-$pg_server/postgres}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-$REDIS_URL}"
export TEST_SMTP_URL="${TEST_SMTP_URL:-$SMTP_URL}"
export TEST_MAILDIR="${TEST_MAILDIR:-$MINGUS_MAILDIR}"

# Databases left by an interrupted earlier run (each test drops its own when it ends).
stale=$(psql "$TEST_DATABASE_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'mingus\_test\_%'" || true)
for db in $stale; do psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true; done

# Process tests start the real binaries: build them once up front, and tell the tests not to build them
# again from inside the running suite (tests/src/worker.rs, binary()).
cargo build --quiet --bins
export MINGUS_TEST_BINARIES_BUILT=1

# deploy/production, each file run by its real tool (docs/production.md, "What CI runs"). Skipped only
# when a filter is given that does not name them (MINGUS_PRODUCTION_CI=1 forces them).
production_status=0
if [ $# -eq 0 ] || [ "${MINGUS_PRODUCTION_CI:-}" = 1 ]; then
  # Each entry: a script's name and its arguments (bench-proxied: the short version; the measurement
  # itself is a command, docs/performance.md "Through the production proxies").
  for entry in systemd-units nginx-e2e pgbouncer-e2e pitr-drill monitoring "bench-proxied --smoke"; do
    read -r script args <<<"$entry"
    log "deploy/production/ci/$script.sh $args"
    # shellcheck disable=SC2086 # $args: zero or more words
    "$MINGUS_ROOT/deploy/production/ci/$script.sh" $args || { production_status=1; log "deploy/production/ci/$script.sh FAILED"; }
  done
  # The fuzzers' short versions: the API from its own document (schemathesis) and the parsers
  # (cargo-fuzz); long runs are `deploy/local/api-fuzz.sh 1800` and `deploy/local/fuzz.sh 3600`.
  for script in api-fuzz fuzz; do
    log "deploy/local/$script.sh"
    "$MINGUS_ROOT/deploy/local/$script.sh" || { production_status=1; log "deploy/local/$script.sh FAILED"; }
  done
fi
log "running the test suite against $pg_host:$pg_port and $TEST_REDIS_URL"
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$MINGUS_LOCAL/test-output.log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary, the last often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "\nsuite: %d passed, %d failed\n", p, f }' "$MINGUS_LOCAL/test-output.log"
[ "$status" -ne 0 ] || status=$production_status
exit "$status"
