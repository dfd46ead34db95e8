#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# SECONDS (default 60), starting from the seed corpora under tests/data.
# Findings (crashes, leaks, timeouts) are written to build-fuzz/findings/ and
# make the script fail.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 3600       # an hour per target
set -eu
SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-fuzz"
JOBS="${KEEL_JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DKEEL_BUILD_TESTS=OFF -DKEEL_BUILD_FUZZ=ON -DKEEL_SANITIZE="address;undefined" >/dev/null
TARGETS="keel_fuzz_xgboost_json keel_fuzz_xgboost_ubj keel_fuzz_lightgbm_text keel_fuzz_keel_linear
keel_fuzz_csv keel_fuzz_pipeline_json keel_fuzz_serve_request keel_fuzz_monitor_inputs"
# shellcheck disable=SC2086
ninja -C "$BUILD" -j"$JOBS" $TARGETS

mkdir -p "$BUILD/findings"
run() {
  target="$1"; shift
  corpus="$BUILD/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
  # -timeout: one input taking longer than 10 s is a hang.
  "$BUILD/fuzz/$target" "$corpus" "$@" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$BUILD/findings/$target-" \
    >"$BUILD/findings/$target.log" 2>&1 || {
      echo "fuzz: $target FAILED; see $BUILD/findings/$target.log"
      tail -40 "$BUILD/findings/$target.log"
      return 1
    }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$BUILD/findings/$target.log" |
    sed "s/^/fuzz: $target /"
}

# Seed corpora: each importer starts from its format's fixtures.
seeds() {  # seeds DIR PATTERN: a corpus folder with the matching fixtures
  dir="$BUILD/seeds/$1"
  rm -rf "$dir"; mkdir -p "$dir"
  shift
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/"; done
  echo "$dir"
}
# Request bodies for keel_fuzz_serve_request: each file prefixed with the
# byte that picks its decoder (see fuzz/serve_request_fuzz.cc).
request_seeds() {
  dir="$BUILD/seeds/sr"
  rm -rf "$dir"; mkdir -p "$dir"
  for f in "$ROOT"/tests/data/serve/requests/*; do
    [ -f "$f" ] || continue
    name="$(basename "$f")"
    case "$name" in
      predict_*) sel=p ;;
      invocations_*.csv) sel=c ;;
      invocations_*) sel=i ;;
      v2_*) sel=v ;;
      content_type_*) sel=t ;;
      *) continue ;;
    esac
    { printf '%s' "$sel"; cat "$f"; } >"$dir/$name"
  done
  echo "$dir"
}
# keel_fuzz_monitor_inputs: byte 0 selects the parser (3 mod 4: a stored window
# profile body, DecodeProfile; else even: .keelref, odd: rules YAML).
monitor_seeds() {
  local dir
  dir=$(mktemp -d)
  { printf '\000'; cat "$ROOT"/tests/data/monitor/seeds/tiny.keelref; } >"$dir/keelref"
  { printf '\001'; cat "$ROOT"/tests/data/monitor/seeds/rules.yaml; } >"$dir/rules"
  echo "$dir"
}
status=0
run keel_fuzz_xgboost_json "$(seeds xj "$ROOT"/tests/data/xgboost/*.json)" || status=1
run keel_fuzz_xgboost_ubj "$(seeds xu "$ROOT"/tests/data/xgboost/*.ubj)" || status=1
run keel_fuzz_lightgbm_text "$(seeds lg "$ROOT"/tests/data/lightgbm/*.txt "$ROOT"/tests/data/lightgbm/*.model)" || status=1
run keel_fuzz_keel_linear || status=1
run keel_fuzz_csv "$ROOT/tests/data/csv" || status=1
run keel_fuzz_pipeline_json || status=1
run keel_fuzz_serve_request "$(request_seeds)" || status=1
run keel_fuzz_monitor_inputs "$(monitor_seeds)" || status=1
exit $status
