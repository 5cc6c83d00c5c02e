# shellcheck shell=bash
# Shared by the deploy/production/ci scripts (sourced): private servers on free loopback ports in temp
# directories, processes ended by pid, nothing fixed that another test run could collide with.

PROD="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$PROD/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
BIN_DIR="${MINGUS_BIN_DIR:-$REPO_ROOT/target/debug}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"

ci_log() { printf '\033[1;35m[prod-ci]\033[0m %s\n' "$*" >&2; }
ci_fail() { printf '\033[1;31m[prod-ci] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }

# A TCP port nothing listens on right now (the kernel's choice; the server binds it a moment later).
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A temp directory the postgres user may use.
ci_tempdir() {
  local dir
  dir="$(mktemp -d "/tmp/mingus-$1.XXXXXX")"
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  echo "$dir"
}

# wait_http URL [SECONDS]: until the URL answers 2xx (curl -k: the tests' own certificates).
wait_http() {
  local deadline=$((SECONDS + ${2:-30}))
  until curl -ksf -o /dev/null --max-time 2 "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# wait_port PORT [SECONDS]
wait_port() {
  local deadline=$((SECONDS + ${2:-30}))
  until timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# render_nginx DIR HTTPS_PORT HTTP_PORT API1_PORT API2_PORT [WORKER_PROCESSES]: the committed site file
# with only its ports, certificate paths and upstream ports replaced, a certificate for
# api.mingus.example made with openssl (DIR/fullchain.pem, trusted by the tests), and DIR/nginx.conf
# around it; checked with `nginx -t`. Start it with: nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'
NGINX_HOST=api.mingus.example
render_nginx() {
  local dir="$1" https_port="$2" http_port="$3" api1="$4" api2="$5" workers="${6:-1}"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=$NGINX_HOST" \
    -addext "subjectAltName=DNS:$NGINX_HOST" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "extendedKeyUsage=serverAuth" -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" 2>/dev/null
  mkdir -p "$dir/acme" "$dir/temp"
  chmod 0777 "$dir/temp"
  sed -e "s|listen 80;|listen 127.0.0.1:$http_port;|" -e "s|listen 443 ssl http2;|listen 127.0.0.1:$https_port ssl http2;|" \
      -e '/listen \[::\]/d' \
      -e "s|/etc/letsencrypt/live/$NGINX_HOST/|$dir/|" -e "s|/var/www/letsencrypt|$dir/acme|" \
      -e "s|/var/log/nginx/|$dir/|" \
      -e "s|server 127.0.0.1:8081 |server 127.0.0.1:$api1 |" -e "s|server 127.0.0.1:8082 |server 127.0.0.1:$api2 |" \
      "$PROD/nginx/mingus.conf" >"$dir/mingus.conf"
  # Every line of the production file survives except the two IPv6 listens (no IPv6 on CI machines).
  [ "$(grep -c . "$PROD/nginx/mingus.conf")" -eq $(( $(grep -c . "$dir/mingus.conf") + 2 )) ] ||
    ci_fail "rendering the site file dropped lines"
  grep -q "server 127.0.0.1:$api1 " "$dir/mingus.conf" && grep -q "server 127.0.0.1:$api2 " "$dir/mingus.conf" ||
    ci_fail "the site file's upstream no longer names 127.0.0.1:8081 and :8082"
  cat >"$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    include $dir/mingus.conf;
}
CONF
  nginx -t -p "$dir" -c "$dir/nginx.conf" 2>"$dir/nginx-t.out" || { cat "$dir/nginx-t.out" >&2; ci_fail "nginx -t"; }
}

# render_pgbouncer DIR PORT PG_HOST PG_PORT: the committed pgbouncer.ini with only what a test machine
# needs changed — its port and paths, a wildcard [databases] entry (each test makes a database of its
# own) and trust auth (the CI server trusts loopback) — in DIR/pgbouncer.ini with DIR/userlist.txt.
# Start it with: as_postgres pgbouncer -d DIR/pgbouncer.ini
render_pgbouncer() {
  local dir="$1" port="$2" pg_host="$3" pg_port="$4"
  awk -v port="$port" -v tmp="$dir" -v host="$pg_host" -v pgport="$pg_port" '
    /^\[databases\]/ { print; print "* = host=" host " port=" pgport; skip = 1; next }
    /^\[/ { skip = 0 }
    skip && /^[a-z_*]+ *=/ { next }
    /^listen_port *=/ { print "listen_port = " port; next }
    /^unix_socket_dir *=/ { print "unix_socket_dir = " tmp; next }
    /^auth_type *=/ { print "auth_type = trust"; next }
    /^auth_file *=/ { print "auth_file = " tmp "/userlist.txt"; print "logfile = " tmp "/pgbouncer.log"; print "pidfile = " tmp "/pgbouncer.pid"; next }
    { print }
  ' "$PROD/pgbouncer/pgbouncer.ini" >"$dir/pgbouncer.ini"
  for setting in "pool_mode = session" "default_pool_size = 20" "reserve_pool_size = 30" "max_db_connections = 50"; do
    grep -qx "$setting" "$dir/pgbouncer.ini" || ci_fail "the rendered file lost '$setting'"
  done
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
  return 0
}

# url_host_port URL: "host port" of a postgres:// URL (defaults 127.0.0.1 and 5432).
url_host_port() {
  python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 5432)' "$1"
}
