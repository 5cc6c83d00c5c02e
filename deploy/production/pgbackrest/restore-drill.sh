#!/usr/bin/env bash
# The restore drill: restores the Mingus stanza to a chosen time into a scratch cluster (never the live
# one), starts it, and checks it. Run it monthly and after every change to backups (docs/production.md).
#
#   restore-drill.sh --target '2026-12-03 09:00:00+00' [--live-url postgres://…/mingus] [--settle 300]
#                    [--scratch DIR] [--port PORT] [--keep]
#
# Checks, in order (exit 1 on the first failure, with what failed):
#   1. pgBackRest restores the backup set before the target and replays WAL up to the target;
#   2. the scratch cluster starts, finishes recovery and is promoted;
#   3. the key tables are there; their row counts are printed;
#   4. no billing_history row is newer than the target;
#   5. with --live-url: every live billing_history row created more than --settle seconds before the
#      target is in the restore, and none created after the target is (a transaction may commit a
#      while after it began, hence the settle margin; CI uses 0 with rows it wrote itself).
# pgBackRest options come from its config file (/etc/pgbackrest/pgbackrest.conf) or PGBACKREST_*
# variables; the scratch cluster listens only on a socket in its own directory, with archiving off so
# it never pushes WAL into the live repository. Run as the postgres user.
set -euo pipefail

target="" live_url="" settle=300 scratch="" port="" keep="" stanza="${MINGUS_STANZA:-mingus}"
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2;;
    --live-url) live_url="$2"; shift 2;;
    --settle) settle="$2"; shift 2;;
    --scratch) scratch="$2"; shift 2;;
    --port) port="$2"; shift 2;;
    --stanza) stanza="$2"; shift 2;;
    --keep) keep=1; shift;;
    -h|--help) sed -n '2,20p' "$0"; exit 0;;
    *) echo "restore-drill: unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
[ -n "$target" ] || { echo "restore-drill: --target TIME is required (e.g. '2026-12-03 09:00:00+00')" >&2; exit 2; }
[[ "$settle" =~ ^[0-9]+$ ]] || { echo "restore-drill: --settle takes whole seconds" >&2; exit 2; }
[ "$(id -un)" != root ] || { echo "restore-drill: run as the postgres user (runuser -u postgres -- …)" >&2; exit 2; }

pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
if [ -z "$scratch" ]; then scratch="$(mktemp -d /tmp/mingus-drill.XXXXXX)"; fi
mkdir -p "$scratch"
[ -z "$(ls -A "$scratch/data" 2>/dev/null)" ] || { echo "restore-drill: $scratch/data is not empty" >&2; exit 2; }
if [ -z "$port" ]; then
  # A free port only for the socket's name: the scratch cluster does not listen on TCP.
  port=$(( 20000 + RANDOM % 20000 ))
fi
data="$scratch/data"
fail() { echo "restore-drill: FAILED: $*" >&2; exit 1; }
stop() {
  [ -n "$keep" ] && return
  "$pg_bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}
trap stop EXIT

echo "restore-drill: restoring stanza $stanza to $target into $data"
# An empty data directory given beforehand is fine (checked above); PostgreSQL wants it 0700.
mkdir -p "$data"
chmod 0700 "$data"
pgbackrest --stanza="$stanza" --pg1-path="$data" --type=time --target="$target" \
  --target-action=promote --archive-mode=off restore || fail "pgbackrest restore"

# A Debian cluster keeps its configuration in /etc, outside the backup: give the scratch cluster a
# small one of its own (the restore wrote the recovery settings into postgresql.auto.conf).
cat >"$scratch/postgresql.conf" <<CONF
listen_addresses = ''
port = $port
unix_socket_directories = '$scratch'
shared_buffers = 256MB
archive_mode = off
hba_file = '$scratch/pg_hba.conf'
ident_file = '$scratch/pg_ident.conf'
CONF
echo "local all all peer map=drill" >"$scratch/pg_hba.conf"
echo "drill $(id -un) postgres" >"$scratch/pg_ident.conf"
echo "drill $(id -un) $(id -un)" >>"$scratch/pg_ident.conf"

"$pg_bin/pg_ctl" -D "$data" -o "-c config_file=$scratch/postgresql.conf" -l "$scratch/postgres.log" \
  -w -t 300 start >/dev/null || fail "the scratch cluster did not start (see $scratch/postgres.log)"
psql_scratch() { psql -X -v ON_ERROR_STOP=1 -h "$scratch" -p "$port" -U postgres -d "${MINGUS_DB:-mingus}" -Atc "$1"; }
for _ in $(seq 1 600); do
  [ "$(psql_scratch 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 0.5
done
[ "$(psql_scratch 'SELECT pg_is_in_recovery()')" = f ] || fail "recovery did not finish within 300 s"
grep -q "recovery stopping before commit\|recovery stopping after" "$scratch/postgres.log" ||
  fail "recovery did not stop at the target (it ran out of WAL first: see $scratch/postgres.log)"
echo "restore-drill: recovered and promoted ($(grep -m1 -o 'recovery stopping [^,]*' "$scratch/postgres.log"))"

for table in users subscriptions billing_history feature_access stripe_events job_runs; do
  count=$(psql_scratch "SELECT count(*) FROM $table") || fail "table $table missing"
  echo "restore-drill: $table $count rows"
done

newer=$(psql_scratch "SELECT count(*) FROM billing_history WHERE created_at > '$target'::timestamptz")
[ "$newer" = 0 ] || fail "$newer billing_history rows are newer than the target"

if [ -n "$live_url" ]; then
  query="SELECT id, created_at <= '$target'::timestamptz - interval '$settle seconds'
         FROM billing_history WHERE created_at <= '$target'::timestamptz - interval '$settle seconds'
            OR created_at > '$target'::timestamptz"
  restored=$(psql_scratch "SELECT id FROM billing_history" | sort)
  # Queried before the loop, not through < <(…): a process substitution's exit status is lost, and an
  # unreachable live database would pass as "0 present, 0 absent".
  live=$(psql -X -v ON_ERROR_STOP=1 "$live_url" -Atc "$query") || fail "cannot query the live database ($live_url)"
  present=0 absent=0
  while IFS='|' read -r id before; do
    [ -n "$id" ] || continue
    if [ "$before" = t ]; then
      grep -qx "$id" <<<"$restored" || fail "billing_history $id (before the target) is missing"
      present=$((present + 1))
    else
      ! grep -qx "$id" <<<"$restored" || fail "billing_history $id (after the target) was restored"
      absent=$((absent + 1))
    fi
  done <<<"$live"
  echo "restore-drill: $present live billing_history rows before the target present, $absent after it absent"
fi
echo "restore-drill: OK (scratch cluster in $scratch$([ -n "$keep" ] && echo ", still running on socket $scratch port $port"))"
