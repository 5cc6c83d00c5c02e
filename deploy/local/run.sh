#!/usr/bin/env bash
# Brings up PostgreSQL, Redis and SMTP (installing them when missing), migrates, seeds, and runs
# mingus-api, mingus-worker and mingus-scheduler until Ctrl-C, which stops all three cleanly.
set -euo pipefail
source "$(dirname "$0")/services.sh"
cd "$MINGUS_ROOT"
ensure_services

source "$MINGUS_ROOT/deploy/local/dev-env.sh"
load_dev_env "$MINGUS_LOCAL/dev.env"
export MINGUS_API_ADDR="${MINGUS_API_ADDR:-127.0.0.1:8080}"
# Unsubscribe links in e-mails point at this API.
export MINGUS_PUBLIC_URL="${MINGUS_PUBLIC_URL:-http://$MINGUS_API_ADDR}"

log "building"
cargo build --quiet --bins
bin="$MINGUS_ROOT/target/debug"
"$bin/mingus-admin" create-database
"$bin/mingus-admin" migrate
"$bin/mingus-admin" seed-demo

pids=()
stop() {
  trap - INT TERM
  log "stopping (${pids[*]})"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  log "stopped"
}
trap stop INT TERM

"$bin/mingus-api" & pids+=($!)
"$bin/mingus-worker" & pids+=($!)
"$bin/mingus-scheduler" & pids+=($!)

cat >&2 <<INFO

  API        http://$MINGUS_API_ADDR   (try /health/ready)
  Admin token $MINGUS_ADMIN_TOKEN   (in $MINGUS_LOCAL/dev.env)
  Emails     are sent to the local SMTP server at $SMTP_URL (aiosmtpd) and land in
             $MINGUS_MAILDIR/new, one file per message:  ls -t $MINGUS_MAILDIR/new | head
             (unsubscribe links point at $MINGUS_PUBLIC_URL)
  Ctrl-C stops all three processes.

INFO
# Exit when any process dies, stopping the others.
wait -n "${pids[@]}" || true
stop
