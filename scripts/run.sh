#!/usr/bin/env bash
# Installs, builds and starts keel on its embedded default (a SQLite file and a
# local artifact folder under ./keel-data), then prints the URLs to open.
# Environment: KEEL_PORT (default 5000), KEEL_HOST (default 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_TESTS=ON >/dev/null
cmake --build build -j"${KEEL_JOBS:-2}" --target keel_cli
mkdir -p keel-data
exec build/keel server --host "${KEEL_HOST:-127.0.0.1}" --port "${KEEL_PORT:-5000}" \
  --store-uri sqlite://keel-data/keel.db --artifact-root keel-data/artifacts
