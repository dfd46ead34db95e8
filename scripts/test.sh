#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   1. installs the Debian packages (scripts/install-deps.sh),
#   2. builds a Release tree (build/) and a Debug tree with ASan+UBSan (build-asan/),
#   3. starts a throwaway PostgreSQL server (scripts/pg-test-server.sh, in a
#      temporary directory) for the store conformance tests, and runs every unit,
#      end-to-end and browser test against both trees,
#   4. runs each libFuzzer target briefly (KEEL_FUZZ_SECONDS, default 2;
#      scripts/fuzz.sh runs them longer on demand).
# Usage: scripts/test.sh [-L unit|e2e]   (extra arguments go to ctest)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh

jobs=${KEEL_JOBS:-2}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_TESTS=ON
cmake --build build -j"$jobs"
# Line tables only (-g1): sanitizer reports keep functions, files and lines,
# and the tree stays small (with full -g it was 2.0 GB).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKEEL_BUILD_TESTS=ON \
  -DKEEL_SANITIZE="address;undefined" -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DCMAKE_C_FLAGS_DEBUG=-g1
cmake --build build-asan -j"$jobs"

# A small quarantine keeps RSS meaningful for the streaming-memory tests (ASan's
# default holds 256 MiB of freed memory).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The store conformance tests' PostgreSQL server, stopped however this exits.
pg_dir=$(mktemp -d /tmp/keel-pg-test.XXXXXX)
trap 'bash "$root/scripts/pg-test-server.sh" stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
KEEL_TEST_POSTGRES_URI=$(bash scripts/pg-test-server.sh start "$pg_dir")
export KEEL_TEST_POSTGRES_URI

status=0
summary=()
for tree in build build-asan; do
  echo "=== tests: $tree ==="
  log="$root/$tree/ctest-summary.log"
  if ctest --test-dir "$tree" --output-on-failure -j"$jobs" "$@" | tee "$log"; then :; else status=1; fi
  summary+=("$tree: $(grep -E 'tests passed|tests failed' "$log" | tail -1)")
done
echo "=== fuzz ==="
fuzz_line="fuzz: passed"
if bash scripts/fuzz.sh "${KEEL_FUZZ_SECONDS:-2}"; then :; else status=1; fuzz_line="fuzz: FAILED"; fi
summary+=("$fuzz_line")
echo "=== summary ==="
printf '%s\n' "${summary[@]}"
passed=0
failed=0
for tree in build build-asan; do
  line=$(grep -E '[0-9]+% tests passed' "$root/$tree/ctest-summary.log" | tail -1 || true)
  total=$(sed -nE 's/.*out of ([0-9]+).*/\1/p' <<<"$line")
  bad=$(sed -nE 's/.* ([0-9]+) tests failed.*/\1/p' <<<"$line")
  passed=$((passed + ${total:-0} - ${bad:-0}))
  failed=$((failed + ${bad:-0}))
done
echo "tests: $passed passed, $failed failed"
exit $status
