#!/usr/bin/env bash
# CI for deploy/production/postgresql/mingus.conf, pgbackrest/pgbackrest.conf and pgbackrest/restore-drill.sh:
# a private PostgreSQL cluster runs the committed fragment (only paths, ports and the memory figures sized
# for a 16 GB server are overridden), archives its WAL with the committed archive_command into a
# pgBackRest repository configured by the committed file (paths overridden through PGBACKREST_*
# variables, which pgBackRest puts above the file), the roles and the schema are made by mingus-admin,
# then: full backup, a billing_history row A, differential backup, the target time, a row B, WAL
# archived — and the restore drill must bring back A and not B. Then two drills that must fail, so the
# test can fail: one against a live row dated before the target that no backup holds (the drill's own
# present/absent comparison), one to a time before the first backup (no backup set reaches it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS
command -v pgbackrest >/dev/null || ci_fail "pgbackrest is not installed (deploy/local/services.sh ensure_production_tools)"
ADMIN="$BIN_DIR/mingus-admin"
[ -x "$ADMIN" ] || ci_fail "$ADMIN is missing (cargo build --bins)"

tmp="$(ci_tempdir pitr)"
port="$(free_port)"
data="$tmp/data"
cleanup() {
  # Only the script itself cleans up: a command substitution that fails under set -e runs the EXIT trap
  # too, and must not stop the cluster under the script's feet.
  [ "$BASHPID" = "$$" ] || return 0
  as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  for scratch in "$tmp"/scratch-*; do
    [ -d "$scratch/data" ] && as_postgres "$PG_BIN/pg_ctl" -D "$scratch/data" -m immediate -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# pgBackRest: the committed file, with the repository, the cluster and pgBackRest's own paths moved here.
# Exported, so PostgreSQL's archive_command (the committed line) inherits them from pg_ctl.
export PGBACKREST_CONFIG="$PROD/pgbackrest/pgbackrest.conf"
export PGBACKREST_REPO1_PATH="$tmp/repo"
export PGBACKREST_PG1_PATH="$data"
export PGBACKREST_PG1_PORT="$port"
export PGBACKREST_PG1_SOCKET_PATH="$tmp"
export PGBACKREST_LOG_PATH="$tmp/log"
export PGBACKREST_SPOOL_PATH="$tmp/spool"
export PGBACKREST_LOCK_PATH="$tmp/lock"
export PGBACKREST_LOG_LEVEL_CONSOLE=warn
mkdir -p "$tmp/repo" "$tmp/log" "$tmp/spool" "$tmp/lock"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$tmp"
# runuser does not promise to pass the environment on: hand the PGBACKREST_* pairs over explicitly.
pgbr() {
  local pairs=() name
  for name in ${!PGBACKREST_@}; do pairs+=("$name=${!name}"); done
  as_postgres env "${pairs[@]}" pgbackrest --stanza=mingus "$@"
}

ci_log "private cluster on 127.0.0.1:$port with postgresql/mingus.conf"
as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
cat >>"$data/postgresql.conf" <<CONF
include '$PROD/postgresql/mingus.conf'
# The drill's machine, not the seed's database server: paths, port and memory only.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
shared_buffers = 128MB
effective_cache_size = 512MB
maintenance_work_mem = 64MB
autovacuum_work_mem = 32MB
huge_pages = off
max_wal_size = 1GB
min_wal_size = 80MB
CONF
[ "$(id -u)" -eq 0 ] && chown postgres: "$data/postgresql.conf"
pairs=()
for name in ${!PGBACKREST_@}; do pairs+=("$name=${!name}"); done
as_postgres env "${pairs[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$tmp/postgres.log" -w -t 60 start >/dev/null ||
  { tail -20 "$tmp/postgres.log" >&2; ci_fail "the private cluster did not start"; }

server="postgres://postgres@127.0.0.1:$port"
# -q: no command status ("INSERT 0 1") after a RETURNING row. Nothing here pipes into `head`: a reader
# that exits early kills the writer with SIGPIPE, and under pipefail that ended this script silently.
q() { psql -X -q -v ON_ERROR_STOP=1 -Atc "$1" "$server/${2:-mingus}"; }
for check in "shared_preload_libraries|pg_stat_statements" "log_min_duration_statement|100ms" \
  "archive_mode|on" "wal_level|replica" "idle_in_transaction_session_timeout|1min"; do
  got="$(q "SHOW ${check%%|*}" postgres)"
  [ "$got" = "${check#*|}" ] || ci_fail "${check%%|*} is '$got', the fragment says '${check#*|}'"
done

# The schema the production way: roles by mingus-admin as the superuser, migrations as the owner.
openssl rand -hex 24 >"$tmp/owner.pw"
openssl rand -hex 24 >"$tmp/api.pw"
DATABASE_URL="$server/mingus" "$ADMIN" create-database >/dev/null
DATABASE_URL="$server/mingus" "$ADMIN" create-roles --owner-password-file "$tmp/owner.pw" \
  --api-password-file "$tmp/api.pw" >/dev/null
DATABASE_URL="postgres://mingus_owner:$(cat "$tmp/owner.pw")@127.0.0.1:$port/mingus" "$ADMIN" migrate >/dev/null
DATABASE_URL="postgres://mingus_owner:$(cat "$tmp/owner.pw")@127.0.0.1:$port/mingus" "$ADMIN" seed-demo >/dev/null
[ "$(q "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")" = 1 ] ||
  ci_fail "pg_stat_statements was not created"

ci_log "pgBackRest: stanza-create, check, full backup"
pgbr stanza-create
pgbr check
pgbr --type=full backup

bill() {
  q "INSERT INTO billing_history (subscription_id, user_id, amount, status, payment_method)
     SELECT id, user_id, 29.00, 'paid', 'stripe' FROM subscriptions ORDER BY created_at LIMIT 1 RETURNING id"
}
row_a="$(bill)"
ci_log "differential backup after row A"
pgbr --type=diff backup
sleep 1.1
target="$(q "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"
sleep 1.1
row_b="$(bill)"
# check switches the WAL segment and waits until the repository has it: row B's commit is archived.
pgbr check
ci_log "rows: A $row_a before the target $target, B $row_b after it"

drill() {
  local scratch="$1"
  shift
  as_postgres env "${pairs[@]}" MINGUS_DB=mingus bash "$PROD/pgbackrest/restore-drill.sh" --scratch "$scratch" "$@"
}
out="$(drill "$tmp/scratch-1" --target "$target" --live-url "$server/mingus" --settle 0 2>&1)" ||
  { echo "$out" >&2; ci_fail "the restore drill failed"; }
echo "$out" | sed 's/^/  /' >&2
grep -Eq "restore-drill: [1-9][0-9]* live billing_history rows before the target present, 1 after it absent" <<<"$out" ||
  ci_fail "the drill did not prove row A present and row B absent"
as_postgres "$PG_BIN/pg_ctl" -D "$tmp/scratch-1/data" -m fast -w stop >/dev/null 2>&1 || true

# drill_must_fail SCRATCH WHY DRILL-ARGS…: the drill must exit non-zero by its own check, "restore-drill:
# FAILED: WHY…", within 180 s (timeout cannot run a shell function, so the function travels in bash -c).
drill_must_fail() {
  local scratch="$1" why="$2" out
  shift 2
  if out="$(timeout 180 bash -c "$(declare -f as_postgres drill); pairs=(${pairs[*]@Q}); PROD=${PROD@Q}; PG_BIN=${PG_BIN@Q}; drill ${scratch@Q} ${*@Q}" 2>&1)"; then
    echo "$out" >&2
    ci_fail "the drill passed; it must fail with '$why'"
  fi
  grep -qF "restore-drill: FAILED: $why" <<<"$out" || { echo "$out" >&2; ci_fail "the drill did not fail with '$why'"; }
  grep -m1 -o 'FAILED: .*' <<<"$out"
}

# Row C, written now but dated a second before the target: a live row the backups cannot hold, as if
# they had lost it. The same drill must report it missing.
row_c="$(q "INSERT INTO billing_history (subscription_id, user_id, amount, status, payment_method, created_at)
  SELECT id, user_id, 29.00, 'paid', 'stripe', '$target'::timestamptz - interval '1 second'
  FROM subscriptions ORDER BY created_at LIMIT 1 RETURNING id")"
why="$(drill_must_fail "$tmp/scratch-2" "billing_history $row_c (before the target) is missing" \
  --target "$target" --live-url "$server/mingus" --settle 0)"
ci_log "a drill against a live row the backups lack fails as it must ($why)"

# A target before the first backup: no backup set can reach it, so pgBackRest's restore refuses.
past="$(date -u -d '-1 hour' '+%F %T+00')"
why="$(drill_must_fail "$tmp/scratch-3" "pgbackrest restore" --target "$past")"
ci_log "a drill to a time before the first backup fails as it must ($why)"
ci_log "OK in $((SECONDS - started)) s"
