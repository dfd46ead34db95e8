#!/usr/bin/env bash
# Installs every Debian package keel needs to build, test and benchmark, and
# the dashboard's npm packages (web/node_modules, from web/package-lock.json).
# Idempotent; run as root (or through sudo). Used by both README commands and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # toolchain (clang and its runtime for the libFuzzer targets)
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev
  # libraries
  libboost-dev libboost-system-dev libsimdjson-dev nlohmann-json3-dev libsqlite3-dev sqlite3
  libpq-dev libcli11-dev libfmt-dev libspdlog-dev libyaml-cpp-dev libzstd-dev libssl-dev zlib1g-dev
  libxgboost-dev libnats-dev
  # the tz database (named time zones of cron schedules)
  tzdata
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-requests wrk curl nats-server postgresql zstd gzip time
  python3-numpy python3-pandas python3-scipy python3-sklearn python3-xgboost python3-yaml
  # serving peers (../shared/peers/serving): FastAPI servers the benchmark compares against
  python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-joblib
  # the dashboard's browser tests (tests/browser: playwright-core drives it)
  chromium
)
# The dashboard is bundled with Node.js (web/build.mjs): Debian's unless the
# machine has its own.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages: installed again only when the lock file changed.
if [ ! -f web/node_modules/.package-lock.json ] ||
   [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci in web/"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "install-deps: web/node_modules up to date"
fi
