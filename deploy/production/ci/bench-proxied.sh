#!/usr/bin/env bash
# The cost of the production proxies, measured: feature checks and webhook ingest through nginx (the
# committed site file: TLS, an upstream of two API instances) and PgBouncer (the committed
# pgbouncer.ini, session mode), against the same API reached directly — both in the same run, the
# sides taking turns (mingus-bench-api / mingus-bench-ingest with --via-nginx; bench/src/proxied.rs).
#
#   deploy/production/ci/bench-proxied.sh            release build, 5 runs each; docs/performance.md's figures
#   deploy/production/ci/bench-proxied.sh --smoke    debug binaries, tiny counts (CI: the script, the
#                                                     rendered files and both binaries' proxied paths
#                                                     work end to end; no figure is judged)
#
# Variables: BENCH_RUNS (5), BENCH_RATE (5000 feature checks/s, the issue's rate), BENCH_REQUESTS
# (50000 per feature run), BENCH_EVENTS (20000 per ingest run), DATABASE_URL (the server the scratch
# databases go on), REDIS_URL; for a breakdown, BENCH_ONLY=features|ingest runs one benchmark and
# BENCH_WITHOUT_PGBOUNCER=1 has the proxied instances connect to PostgreSQL directly (nginx alone);
# BENCH_NGINX_WORKERS (auto) and BENCH_POOL_PER_INSTANCE (10) vary nginx's workers and each instance's pool.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS
command -v pgbouncer >/dev/null || ci_fail "pgbouncer is not installed (deploy/local/services.sh ensure_production_tools)"
command -v nginx >/dev/null || ci_fail "nginx is not installed (deploy/local/services.sh ensure_production_tools)"

smoke=""
[ "${1:-}" = "--smoke" ] && smoke=1
if [ -n "$smoke" ]; then
  runs=1 rate=500 requests=600 events=400 users=20 pgbench_seconds=1 bins="$BIN_DIR"
else
  runs="${BENCH_RUNS:-5}" rate="${BENCH_RATE:-5000}" requests="${BENCH_REQUESTS:-50000}"
  events="${BENCH_EVENTS:-20000}" users=200 pgbench_seconds=10 bins="$REPO_ROOT/target/release"
  ci_log "building the benchmarks (release)"
  (cd "$REPO_ROOT" && cargo build --quiet --release -p mingus-bench --bin mingus-bench-api --bin mingus-bench-ingest)
fi

export DATABASE_URL="${DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
export REDIS_URL="${REDIS_URL:-${TEST_REDIS_URL:-redis://127.0.0.1:6379}}"
read -r pg_host pg_port < <(url_host_port "$DATABASE_URL")

tmp="$(ci_tempdir bench-proxied)"
pgbouncer_port="$(free_port)" https_port="$(free_port)" http_port="$(free_port)"
api1="$(free_port)" api2="$(free_port)"
nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  [ -f "$tmp/pgbouncer.pid" ] && kill "$(cat "$tmp/pgbouncer.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$tmp"
}
trap cleanup EXIT

render_pgbouncer "$tmp" "$pgbouncer_port" "$pg_host" "$pg_port"
as_postgres pgbouncer -d "$tmp/pgbouncer.ini"
wait_port "$pgbouncer_port" 15 || { cat "$tmp/pgbouncer.log" >&2; ci_fail "pgbouncer did not start"; }
# As in production (Debian's nginx.conf): one worker per core.
render_nginx "$tmp" "$https_port" "$http_port" "$api1" "$api2" "${BENCH_NGINX_WORKERS:-auto}"
nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' 2>>"$tmp/error.log" &
nginx_pid=$!
wait_port "$https_port" 10 || ci_fail "nginx did not listen"
ci_log "nginx on :$https_port -> APIs on :$api1 and :$api2 -> pgbouncer on :$pgbouncer_port -> PostgreSQL $pg_host:$pg_port"

database_via="postgres://postgres@127.0.0.1:$pgbouncer_port"
[ -n "${BENCH_WITHOUT_PGBOUNCER:-}" ] && database_via="${DATABASE_URL%/*}" && ci_log "without PgBouncer: nginx alone"
proxy=(--via-nginx "https://$NGINX_HOST:$https_port" --nginx-address "127.0.0.1:$https_port"
  --nginx-ca "$tmp/fullchain.pem" --upstreams "127.0.0.1:$api1,127.0.0.1:$api2" --pgbouncer "$database_via"
  --pool-per-instance "${BENCH_POOL_PER_INSTANCE:-10}")
only="${BENCH_ONLY:-}"

if [ "$only" != ingest ]; then
  ci_log "feature checks: $runs runs of $requests requests, closed-loop and at $rate/s, direct and through the proxies"
  "$bins/mingus-bench-api" "${proxy[@]}" features --runs "$runs" --requests "$requests" --users "$users" --rate "$rate" |
    tee "$tmp/features.out"
fi
if [ "$only" != features ]; then
  ci_log "webhook ingest: $runs runs of $events events, direct and through the proxies"
  "$bins/mingus-bench-ingest" --runs "$runs" --events "$events" --pgbench-seconds "$pgbench_seconds" "${proxy[@]}" |
    tee "$tmp/ingest.out"
fi
if [ -n "$only${BENCH_WITHOUT_PGBOUNCER:-}" ]; then
  ci_log "a partial run: the traffic checks below need both benchmarks through both proxies"
  exit 0
fi

# The proxied side really went through both: nginx logged the requests, PgBouncer counted the
# transactions on the benchmarks' databases.
grep -q '"POST /webhooks/stripe HTTP/1.1" 200' "$tmp/mingus.access.log" ||
  ci_fail "nginx's access log shows no webhook it passed on"
grep -q '"GET /v1/features/[a-z_]* HTTP/1.1" 200' "$tmp/mingus.access.log" ||
  ci_fail "nginx's access log shows no feature check it passed on"
xacts="$(psql -X -Atc 'SHOW STATS' "postgres://postgres@127.0.0.1:$pgbouncer_port/pgbouncer" |
  awk -F'|' '$1 ~ /^mingus_bench_/ { n += $2 } END { print n + 0 }')"
[ "$xacts" -ge "$events" ] || ci_fail "pgbouncer counted only $xacts transactions on the benchmarks' databases"
grep -q '^| via nginx + PgBouncer / direct at ' "$tmp/features.out" || ci_fail "no proxied / direct ratio for feature checks"
grep -q '^| ingest via nginx + PgBouncer / direct |' "$tmp/ingest.out" || ci_fail "no proxied / direct ratio for ingest"
ci_log "pgbouncer: $xacts transactions; OK in $((SECONDS - started)) s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
