#!/usr/bin/env bash
# Alternating runs of two `mingus-admin` builds importing the same fixture (docs/sqlite-import.md,
# "Benchmark"): a change measured against the code before it in one sitting, so the shared machine's
# load weighs on both alike.
#
#   bench/sqlite-import-compare.sh OLD_BINARY [USERS] [RUNS]      default: 1000 users, 3 runs each
#
# OLD_BINARY is a release `mingus-admin` built from the base commit (e.g. `git stash; cargo build
# --release -p mingus-api --bin mingus-admin; cp target/release/mingus-admin target/mingus-admin.base`).
# The new one is this checkout's release build. Each run imports into a fresh migrated database under
# /usr/bin/time and prints its wall time, peak RSS, phases and the load average around it.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"
users="${2:-1000}"
runs="${3:-3}"
server="${BENCH_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
out=target/sqlite-bench
mkdir -p "$out"
cargo build --release --quiet -p mingus-api --bin mingus-admin
new="${CARGO_TARGET_DIR:-target}/release/mingus-admin"
file="$out/dev-$users.sqlite"
[ -f "$file" ] || "$new" sqlite-fixture --users "$users" --out "$file"
db="mingus_import_compare_$users"
for run in $(seq "$runs"); do
    for which in old new; do
        admin=$old
        [ "$which" = new ] && admin=$new
        psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
        export DATABASE_URL="$server/$db"
        "$admin" migrate >/dev/null
        before=$(cut -d' ' -f1-3 /proc/loadavg)
        /usr/bin/time -f "$which run $run: %e s wall, %M KB max RSS" \
            "$admin" import-sqlite "$file" --report-dir "$out/reports" >"$out/compare-$which-$run.log" 2>&1 || true
        echo "$(tail -n 1 "$out/compare-$which-$run.log")  (load $before -> $(cut -d' ' -f1-3 /proc/loadavg))"
        grep -E ": [0-9.]+ s$|verify FAIL" "$out/compare-$which-$run.log" | sed 's/^/    /' || true
    done
done
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
