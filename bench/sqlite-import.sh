#!/usr/bin/env bash
# Release-mode benchmark of `mingus-admin import-sqlite` (docs/sqlite-import.md, "Benchmark").
#
#   bench/sqlite-import.sh [USERS ...]        default: 1000 10000
#
# For each size: generates the fixture (once, kept in target/sqlite-bench/), imports it into a fresh
# migrated database under /usr/bin/time (wall time, peak RSS), verifies the batch alone, then loads the
# same file with pgloader into another fresh database as the baseline (a plain type-mapping copy: no
# rules, no report, no verification). Needs PostgreSQL on $PGHOST (default 127.0.0.1, trust auth);
# installs Debian's pgloader when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)
server="${BENCH_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
out=target/sqlite-bench
mkdir -p "$out"
cargo build --release --quiet -p mingus-api --bin mingus-admin
admin="${CARGO_TARGET_DIR:-target}/release/mingus-admin"

# pgloader is Debian's package: installed here when missing, like every other tool the scripts use.
command -v pgloader >/dev/null || (source deploy/local/services.sh && apt_install pgloader)

rows_in() {
    # Exact counts (the statistics views lag behind a bulk load).
    psql "$server/$1" -Atc "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(
        format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), false, true, '')))[1]::text::bigint), 0)
        FROM pg_stat_user_tables" 2>/dev/null || echo 0
}

fresh_db() {
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}

echo "machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for users in "${sizes[@]}"; do
    file="$out/dev-$users.sqlite"
    [ -f "$file" ] || "$admin" sqlite-fixture --users "$users" --out "$file"
    echo "== $users users: $(du -h "$file" | cut -f1) of SQLite"
    db="mingus_import_bench_$users"
    fresh_db "$db"
    export DATABASE_URL="$server/$db"
    "$admin" migrate >/dev/null
    /usr/bin/time -f "import-sqlite: %e s wall, %M KB max RSS, %P CPU" \
        "$admin" import-sqlite "$file" --report-dir "$out/reports" 2>&1 | tee "$out/import-$users.log" \
        | grep -E "imported as batch|took|import-sqlite:|verify FAIL|rejected rows"
    batch=$(grep -oE "imported as batch [0-9a-f-]+" "$out/import-$users.log" | awk '{print $4}')
    /usr/bin/time -f "verify alone: %e s wall, %M KB max RSS" "$admin" import-sqlite --verify "$batch" 2>&1 \
        | grep -E "verify alone|FAIL" || true
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    # Baseline 1: pgloader with its default casts (a plain type-mapping copy).
    fresh_db "${db}_pgloader"
    /usr/bin/time -f "pgloader baseline (default casts): %e s wall, %M KB max RSS" \
        pgloader --quiet "sqlite://$PWD/$file" "$server/${db}_pgloader" 2>&1 | tail -n 1 || true
    echo "  rows it loaded: $(rows_in "${db}_pgloader")"
    # Baseline 2: the same with dates, floats and booleans kept as text, so the dirty values load
    # (no rules, no report, no verification: the cheapest copy that moves every row).
    fresh_db "${db}_pgloader"
    cat > "$out/pgloader-text-$users.load" <<LOAD
LOAD DATABASE FROM sqlite://$PWD/$file INTO $server/${db}_pgloader
 WITH include drop, create tables, create indexes, reset sequences, foreign keys
 CAST type datetime to text drop typemod, type date to text drop typemod,
      type float to text drop typemod, type boolean to text drop typemod;
LOAD
    /usr/bin/time -f "pgloader baseline (as text): %e s wall, %M KB max RSS" \
        pgloader --quiet "$out/pgloader-text-$users.load" 2>&1 | tail -n 1 || true
    echo "  rows it loaded: $(rows_in "${db}_pgloader")"
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS ${db}_pgloader WITH (FORCE)" >/dev/null
done
