#!/usr/bin/env bash
# CI for deploy/production/nginx/mingus.conf: the site file with only its ports, certificate paths and
# upstream ports replaced (lib.sh render_nginx), `nginx -t`, then nginx on loopback in front of two real
# mingus-api processes, and requests through it over HTTPS (a certificate made here with openssl):
#   health over HTTP/2 with HSTS; TLS 1.1 refused; port 80 redirects; a signed Stripe webhook stored;
#   an unsigned one refused by the API; a /v1 call with a JWT; /ops and /metrics refused on the public
#   side; a body over 1 MiB refused with 413; one API instance killed and requests still answered.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS

tmp="$(mktemp -d /tmp/mingus-nginx.XXXXXX)"
chmod 0755 "$tmp"
pids=()
db="mingus_prodci_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_url="${server_url%/*}/$db"
prefix="nginxci$(date +%s%N | tail -c 7)"
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  psql -X -q "$server_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "${TEST_REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern "$prefix*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "${TEST_REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

https_port="$(free_port)" http_port="$(free_port)"
api1="$(free_port)" api2="$(free_port)" ops1="$(free_port)" ops2="$(free_port)"
host=$NGINX_HOST
ci_log "nginx: site file on 127.0.0.1:$https_port (HTTPS) and :$http_port, APIs on :$api1 and :$api2"

render_nginx "$tmp" "$https_port" "$http_port" "$api1" "$api2"

# A database of this run's own, two API instances.
psql -X -q "$server_url" -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL="$db_url" "$BIN_DIR/mingus-admin" migrate >/dev/null
DATABASE_URL="$db_url" "$BIN_DIR/mingus-admin" seed-demo >/dev/null
webhook_secret="whsec_ci_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
jwt_secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_api() {
  env DATABASE_URL="$db_url" REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}" REDIS_KEY_PREFIX="$prefix" \
    DATABASE_MAX_CONNECTIONS=5 DATABASE_MIN_CONNECTIONS=0 MINGUS_API_ADDR="127.0.0.1:$1" MINGUS_OPS_ADDR="127.0.0.1:$2" \
    MINGUS_TRUSTED_PROXIES=127.0.0.1 STRIPE_WEBHOOK_SECRETS="$webhook_secret" MINGUS_JWT_SECRET="$jwt_secret" \
    MINGUS_ADMIN_TOKEN="ci-admin-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" LOG_FORMAT=json \
    "$BIN_DIR/mingus-api" >"$tmp/api-$1.log" 2>&1 &
  pids+=($!)
}
start_api "$api1" "$ops1"
api1_pid=$!
start_api "$api2" "$ops2"
wait_http "http://127.0.0.1:$api1/health/live" 60 || { cat "$tmp/api-$api1.log" >&2; ci_fail "API 1 did not start"; }
wait_http "http://127.0.0.1:$api2/health/live" 60 || { cat "$tmp/api-$api2.log" >&2; ci_fail "API 2 did not start"; }

nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' 2>>"$tmp/error.log" &
pids+=($!)
wait_port "$https_port" 10 || ci_fail "nginx did not listen"

base="https://$host:$https_port"
c() { curl -sS --max-time 10 --cacert "$tmp/fullchain.pem" --resolve "$host:$https_port:127.0.0.1" "$@"; }
status() { c -o /dev/null -w '%{http_code}' "$@"; }
expect() { [ "$2" = "$3" ] || ci_fail "$1: expected '$3', got '$2'"; }

ci_log "health over HTTP/2 with HSTS"
expect "health status" "$(status "$base/health/ready")" 200
expect "HTTP version" "$(c -o /dev/null -w '%{http_version}' "$base/health/live")" 2
c -D - -o /dev/null "$base/health/live" | grep -qi '^strict-transport-security: max-age=63072000; includeSubDomains' ||
  ci_fail "no HSTS header"
expect "TLS 1.3" "$(status --tlsv1.3 "$base/health/live")" 200
expect "TLS 1.2" "$(status --tlsv1.2 --tls-max 1.2 "$base/health/live")" 200
if c --tlsv1.1 --tls-max 1.1 -o /dev/null "$base/health/live" 2>/dev/null; then ci_fail "TLS 1.1 accepted"; fi
expect "port 80 redirect" "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $host" "http://127.0.0.1:$http_port/health/live")" \
  "301 https://$host/health/live"

ci_log "a signed Stripe webhook through nginx is stored"
event_id="evt_nginx_ci_$(date +%s%N)"
body="{\"id\":\"$event_id\",\"object\":\"event\",\"type\":\"customer.created\",\"api_version\":\"2024-06-20\",\"created\":$(date +%s),\"livemode\":false,\"data\":{\"object\":{\"id\":\"cus_ci\",\"object\":\"customer\"}}}"
ts="$(date +%s)"
sig="$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$webhook_secret" -hex | sed 's/^.*= //')"
expect "signed webhook" "$(status -X POST -H 'Content-Type: application/json' -H "Stripe-Signature: t=$ts,v1=$sig" --data-binary "$body" "$base/webhooks/stripe")" 200
expect "event stored" "$(psql -X -Atc "SELECT count(*) FROM stripe_events WHERE id = '$event_id'" "$db_url")" 1
expect "unsigned webhook" "$(status -X POST -H 'Content-Type: application/json' -H "Stripe-Signature: t=$ts,v1=00" --data-binary "$body" "$base/webhooks/stripe")" 400
head -c $((1024 * 1024 + 100)) /dev/zero | tr '\0' ' ' >"$tmp/huge.json"
expect "body over 1 MiB" "$(status -X POST -H 'Content-Type: application/json' --data-binary @"$tmp/huge.json" "$base/webhooks/stripe")" 413

ci_log "a /v1 call with a JWT"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)"
claims="$(printf '{"sub":"00000000-0000-4000-8000-000000000003","aud":"authenticated","exp":%d}' $(( $(date +%s) + 600 )) | b64url)"
signature="$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -hmac "$jwt_secret" -binary | b64url)"
jwt="$header.$claims.$signature"
expect "/v1/features with a JWT" "$(status -H "Authorization: Bearer $jwt" "$base/v1/features")" 200
c -H "Authorization: Bearer $jwt" "$base/v1/features" | grep -q '"features"\|"feature' || ci_fail "/v1/features body"
expect "/v1/features without a token" "$(status "$base/v1/features")" 401

ci_log "/ops and /metrics are not served publicly"
for path in /ops /ops/ /ops/jobs /ops/api/queues /metrics; do
  expect "public $path" "$(status "$base$path")" 404
  c "$base$path" | grep -q '"error"' && ci_fail "public $path reached the API"
done

ci_log "one API instance down: requests go to the other"
kill "$api1_pid"; wait "$api1_pid" 2>/dev/null || true
for _ in 1 2 3 4 5 6; do expect "health with one instance" "$(status "$base/health/live")" 200; done
ci_log "nginx: OK in $((SECONDS - started)) s"
