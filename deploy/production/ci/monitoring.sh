#!/usr/bin/env bash
# CI for deploy/production/prometheus and deploy/production/grafana, each file run by its real tool:
#   1. `promtool check config` (prometheus.yml with alerts.yml), `promtool check rules`, and
#      `promtool test rules alerts.test.yml` (which alerts fire, and when, on series shaped like ours);
#   2. every query of the Grafana dashboard parses (promtool checks them as recording rules) and every
#      metric name that the rules or the dashboard use is one the platform exports (its Rust source);
#   3. a real Prometheus with the committed prometheus.yml (only the target ports moved) scrapes the
#      real mingus-api, mingus-worker and mingus-scheduler on a database and Redis prefix of this run's
#      own: every target must be up, the queue gauges present, the ten rules loaded and healthy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS
command -v promtool >/dev/null || ci_fail "promtool is not installed (deploy/local/services.sh ensure_production_tools)"
command -v prometheus >/dev/null || ci_fail "prometheus is not installed (deploy/local/services.sh ensure_production_tools)"

tmp="$(mktemp -d /tmp/mingus-monitoring.XXXXXX)"
pids=()
db="mingus_monci_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_url="${server_url%/*}/$db"
redis_url="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
prefix="monci$(date +%s%N | tail -c 7)"
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -X -q "$server_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$redis_url" --scan --pattern "$prefix*" 2>/dev/null | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

ci_log "promtool: config, rules, rule tests"
promtool check config "$PROD/prometheus/prometheus.yml" >/dev/null || ci_fail "promtool check config"
promtool check rules "$PROD/prometheus/alerts.yml" >/dev/null || ci_fail "promtool check rules"
(cd "$PROD/prometheus" && promtool test rules alerts.test.yml) || ci_fail "promtool test rules"

ci_log "the dashboard's queries, and the metric names everything uses"
python3 - "$PROD/grafana/mingus-dashboard.json" "$tmp/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no query"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, expr in enumerate(exprs):
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(expr)}\n")
PY
promtool check rules "$tmp/dashboard-rules.yml" >/dev/null || ci_fail "a dashboard query does not parse"
exported="$(grep -rhoE '"mingus_[a-z_]+"|TYPE mingus_[a-z_]+' "$REPO_ROOT"/{api,worker,scheduler,common}/src |
  sed -E 's/^"//; s/"$//; s/^TYPE //' | sort -u)"
used="$(cat "$PROD/prometheus/alerts.yml" "$PROD/grafana/mingus-dashboard.json" | grep -oE 'mingus_[a-z_]*[a-z]' |
  sed -E 's/_(bucket|count|sum)$//' | sort -u)"
unknown="$(comm -23 <(echo "$used") <(echo "$exported"))"
[ -z "$unknown" ] || ci_fail "used in the rules or the dashboard but exported by nothing: $unknown"

ci_log "a real Prometheus scraping the real processes"
psql -X -q "$server_url" -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL="$db_url" "$BIN_DIR/mingus-admin" migrate >/dev/null
api_port="$(free_port)" ops_port="$(free_port)" worker_port="$(free_port)" sched_port="$(free_port)" prom_port="$(free_port)"
common=(DATABASE_URL="$db_url" REDIS_URL="$redis_url" REDIS_KEY_PREFIX="$prefix" DATABASE_MAX_CONNECTIONS=3
  DATABASE_MIN_CONNECTIONS=0 LOG_FORMAT=json)
env "${common[@]}" MINGUS_API_ADDR="127.0.0.1:$api_port" MINGUS_OPS_ADDR="127.0.0.1:$ops_port" \
  "$BIN_DIR/mingus-api" >"$tmp/api.log" 2>&1 &
pids+=($!)
env "${common[@]}" MINGUS_WORKER_METRICS_ADDR="127.0.0.1:$worker_port" "$BIN_DIR/mingus-worker" >"$tmp/worker.log" 2>&1 &
pids+=($!)
env "${common[@]}" MINGUS_SCHEDULER_METRICS_ADDR="127.0.0.1:$sched_port" "$BIN_DIR/mingus-scheduler" >"$tmp/scheduler.log" 2>&1 &
pids+=($!)
for port in "$ops_port" "$worker_port" "$sched_port"; do
  wait_http "http://127.0.0.1:$port/metrics" 60 || { tail -n 20 "$tmp"/*.log >&2; ci_fail "no /metrics on :$port"; }
done

# The committed file with its targets on this run's ports (one API, one worker), a 1 s scrape.
cp "$PROD/prometheus/alerts.yml" "$tmp/alerts.yml"
sed -e "s/\"127.0.0.1:9181\", \"127.0.0.1:9182\"/\"127.0.0.1:$ops_port\"/" \
    -e "s/\"127.0.0.1:9301\", \"127.0.0.1:9302\"/\"127.0.0.1:$worker_port\"/" \
    -e "s/\"127.0.0.1:9290\"/\"127.0.0.1:$sched_port\"/" \
    -e "s/scrape_interval: 15s/scrape_interval: 1s/" -e "s/evaluation_interval: 15s/evaluation_interval: 1s/" \
    "$PROD/prometheus/prometheus.yml" >"$tmp/prometheus.yml"
for port in "$ops_port" "$worker_port" "$sched_port"; do
  grep -q "127.0.0.1:$port" "$tmp/prometheus.yml" || ci_fail "prometheus.yml's targets changed shape: the rendering above must follow"
done
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
query() { curl -sf --max-time 5 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1"; }
deadline=$((SECONDS + 60))
until [ "$(query 'sum(up{job=~"mingus-.*"})' 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null)" = 3 ]; do
  [ "$SECONDS" -lt "$deadline" ] || { query 'up' >&2 || true; tail -n 20 "$tmp/prometheus.log" >&2; ci_fail "the three targets are not all up"; }
  sleep 1
done
value() { query "$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)'; }
waiting="$(value 'count(max by (queue) (mingus_queue_waiting))')"
[ "$waiting" -gt 0 ] || ci_fail "no mingus_queue_waiting series was scraped"
[ "$(value 'count(mingus_queue_waiting{job!="mingus-api"})')" = 0 ] || ci_fail "a process other than the API exports queue gauges"
[ "$(value 'count(process_resident_memory_bytes{job=~"mingus-.*"} > 0)')" = 3 ] || ci_fail "process metrics missing"
[ "$(value 'count(count by (service) (mingus_build_info))')" = 3 ] || ci_fail "mingus_build_info missing"
curl -sf --max-time 5 "http://127.0.0.1:$prom_port/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok"]
assert len(rules) == 10, f"{len(rules)} rules loaded, expected 10"
assert not bad, f"unhealthy rules: {bad}"
' || ci_fail "the rules did not load or evaluate in Prometheus"
ci_log "monitoring: promtool checks and tests pass; Prometheus scraped api, worker and scheduler (queues: $waiting) and evaluates 10 rules ($((SECONDS - started)) s)"
