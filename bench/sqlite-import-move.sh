#!/usr/bin/env bash
# Same-sitting comparison of the import's move (docs/sqlite-import.md, "The move, same sitting"):
# the default (new months built and attached whole) against `--online` (every check-in through the
# partitioned parent, the move as it was before). Alternating runs on fresh databases; prints each run's
# move and total seconds. Run `bench/sqlite-import.sh USERS` first (it builds the release binary and the
# fixture).
#
#   bench/sqlite-import-move.sh [USERS] [RUNS]        default: 1000 3
set -euo pipefail
cd "$(dirname "$0")/.."
users="${1:-1000}"
runs="${2:-3}"
server="${BENCH_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
admin="${CARGO_TARGET_DIR:-target}/release/mingus-admin"
file="target/sqlite-bench/dev-$users.sqlite"
[ -x "$admin" ] && [ -f "$file" ] || { echo "run bench/sqlite-import.sh $users first" >&2; exit 1; }
db=mingus_import_move_bench
for run in $(seq 1 "$runs"); do
    for mode in default online; do
        psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" 2>/dev/null
        export DATABASE_URL="$server/$db"
        "$admin" migrate >/dev/null
        flag=()
        [ "$mode" = online ] && flag=(--online)
        out=$("$admin" import-sqlite "$file" --report-dir target/sqlite-bench/reports "${flag[@]}" 2>&1)
        echo "run $run $mode: move $(echo "$out" | grep 'move (one' | grep -oE '[0-9.]+ s$'), total $(echo "$out" | grep -oE '^took [0-9.]+ s' | cut -d' ' -f2-) (load average $(cut -d' ' -f1 /proc/loadavg))"
    done
done
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
