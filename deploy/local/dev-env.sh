#!/usr/bin/env bash
# Sourced by run.sh: the local secrets, generated once into $MINGUS_LOCAL/dev.env (0600, never
# committed: secrets have no defaults in code), then exported — except where the caller already set the
# variable, which wins (e.g. STRIPE_WEBHOOK_SECRETS=<the whsec_ that `stripe listen` prints>).

dev_env_secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# load_dev_env FILE
load_dev_env() {
  local file="$1" line name
  # Owner-only from the first byte: created under umask 077, and a file left 0644 by an older version
  # (or a copy) is narrowed before another secret is appended to it, not after.
  if [ -f "$file" ]; then
    chmod 600 "$file"
  else
    (umask 077; cat >"$file" <<ENV
MINGUS_ADMIN_TOKEN=$(dev_env_secret)
MINGUS_JWT_SECRET=$(dev_env_secret)
STRIPE_WEBHOOK_SECRETS=whsec_$(dev_env_secret)
ENV
    )
  fi
  # Added after the first dev.env files were written: appended when missing.
  grep -q '^MINGUS_UNSUBSCRIBE_SECRET=' "$file" ||
    (umask 077; echo "MINGUS_UNSUBSCRIBE_SECRET=$(dev_env_secret)" >>"$file")
  # A chmod that could not apply (a file someone else owns) must not go unnoticed: check the outcome.
  case "$(stat -c %a "$file")" in
    600|400) ;;
    *) printf '[mingus] %s is readable by others and could not be made 0600\n' "$file" >&2; return 1;;
  esac
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue;; esac
    name="${line%%=*}"
    if [ -z "${!name+x}" ]; then
      export "$name=${line#*=}"
    else
      printf '[mingus] %s: the caller'"'"'s value wins over %s\n' "$name" "$file" >&2
    fi
  done <"$file"
}
