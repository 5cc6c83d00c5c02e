#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (libFuzzer through cargo-fuzz, on the stable toolchain): the
# Stripe-Signature header, JWTs, cron expressions, the report CSV writer, SMTP_URL and the whole
# configuration. Each target runs for a bounded time; docs/fuzzing.md says what each one checks.
#
#   deploy/local/fuzz.sh                 CI: 20 s per target (FUZZ_SECONDS)
#   deploy/local/fuzz.sh 3600            an hour per target
#   deploy/local/fuzz.sh 60 cron jwt     only these targets
#
# The working corpus (fuzz/corpus/<target>/, kept between runs, not committed) starts from the committed
# seeds (fuzz/seeds/<target>/). A crash, a timeout (an input that runs FUZZ_TIMEOUT s) or running out of
# memory (FUZZ_RSS_MB) writes the input to fuzz/artifacts/<target>/; the script then names the file,
# shows the end of the target's log (.local/fuzz/<target>.log) and exits non-zero.
set -euo pipefail
source "$(dirname "$0")/services.sh"

seconds="${1:-${FUZZ_SECONDS:-20}}"
[ $# -gt 0 ] && shift
case "$seconds" in '' | *[!0-9]*) die "usage: $0 [seconds-per-target] [target…] (got ${seconds@Q})" ;; esac
all_targets=(signature_header jwt cron csv_writer smtp_url config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
# No sanitizer: our crates forbid unsafe code, so ASan would cost build time and speed to check only
# dependencies' unsafe code (docs/fuzzing.md).
# FUZZ_SANITIZER=address works too (it needs RUSTC_BOOTSTRAP=1 on stable, set below).
sanitizer="${FUZZ_SANITIZER:-none}"
timeout_secs="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-2048}"

fuzz_dir="$MINGUS_ROOT/fuzz"
logs="$MINGUS_LOCAL/fuzz"
mkdir -p "$logs"
cd "$fuzz_dir"

ensure_rust
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# -Zsanitizer is the only unstable flag cargo-fuzz passes; without a sanitizer stable rustc suffices.
[ "$sanitizer" = none ] || export RUSTC_BOOTSTRAP=1

# cargo-fuzz builds release with one codegen unit unless told otherwise: best for long runs, but on two
# cores that made the cold build ~13 min. 16 units builds faster for the short CI runs;
# FUZZ_CODEGEN_UNITS=1 for a long hunt.
build_args=(--sanitizer "$sanitizer" --debug-assertions --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")
log "building the fuzz targets (cargo fuzz build ${build_args[*]})"
build_start=$SECONDS
cargo fuzz build "${build_args[@]}"
log "built in $((SECONDS - build_start)) s; fuzz/target is $(du -sh target | cut -f1)"
bin_dir="$fuzz_dir/target/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=()
summary=()
for target in "${targets[@]}"; do
  [ -d "seeds/$target" ] || die "unknown target $target (targets: ${all_targets[*]})"
  mkdir -p "corpus/$target" "artifacts/$target"
  cp seeds/"$target"/* "corpus/$target/"
  log "fuzzing $target for $seconds s"
  target_log="$logs/$target.log"
  start=$SECONDS
  status=0
  "$bin_dir/$target" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" -timeout="$timeout_secs" -rss_limit_mb="$rss_mb" \
    -print_final_stats=1 >"$target_log" 2>&1 || status=$?
  elapsed=$((SECONDS - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$target_log" | tail -1)
  corpus_size=$(find "corpus/$target" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    line="$target: ${runs:-?} runs in $elapsed s, corpus $corpus_size inputs, no crash"
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$target_log" | tail -1)
    if [ -n "$artifact" ]; then artifact="fuzz/${artifact#./}"; else artifact="(none written)"; fi
    line="$target: FAILED (exit $status) after ${runs:-?} runs in $elapsed s; input: $artifact"
    failed+=("$line")
    printf '%s\n' "----- end of $target_log -----" >&2
    tail -n 60 "$target_log" >&2
    printf '%s\n' "-----" >&2
  fi
  summary+=("$line")
  log "$line"
done

printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  for line in "${failed[@]}"; do printf '\033[1;31m[mingus]\033[0m %s\n' "$line" >&2; done
  die "fuzzing found ${#failed[@]} failing target(s); reproduce one with: fuzz/target/<triple>/release/<target> <input> (docs/fuzzing.md)"
fi
