#!/usr/bin/env bash
# The C code `keel export --format c` generates, against keel's engine and libxgboost, on the
# serving peer's churn model and the same rows, in one run:
#   1. the peer trains its 400-tree depth-6 XGBoost model (../shared/peers/serving/train.py),
#   2. the peer's batch generator and encoder make 10,000 encoded rows (73 features),
#   3. keel exports the model as C; the script compiles it with cc -std=c99 -O2 -ffp-contract=off (a shared
#      object for the bench to dlopen) and prints its size (-O2 and -Os objects, `size`),
#   4. keel_export_bench checks the generated code against PredictRow on every row (bit for
#      bit) and times one-row calls of all three: libxgboost, the engine, the generated C.
# Needs: scripts/install-deps.sh and a Release build with -DKEEL_BUILD_BENCH=ON, in build-rel/
# unless KEEL_BUILD_DIR says otherwise:
#   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_BENCH=ON -DKEEL_BUILD_TESTS=OFF
#   ninja -C build-rel keel_cli keel_export_bench && bench/export_bench.sh [seconds per measure, 3]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${KEEL_BUILD_DIR:-$ROOT/build-rel}"
PEERS="$ROOT/../shared/peers/serving"
ART="${PEERS_ARTIFACTS:-${TMPDIR:-/tmp}/keel-peers-serving}"
export PEERS_ARTIFACTS="$ART"
OUT="$ART/export-bench"
PER_MEASURE="${1:-3}"
PY=/usr/bin/python3
CC="${CC:-cc}"
mkdir -p "$OUT"
[ -f "$ART/model.json" ] || (cd "$PEERS" && $PY train.py)
if [ ! -f "$OUT/rows_10k_X.f32" ]; then
  (cd "$PEERS" && OUT="$OUT" $PY - <<'PYEOF'
import json, os, sys
sys.path.insert(0, ".")
import batch
import pandas as pd
out = os.environ["OUT"]
csv = os.path.join(out, "rows_10k.csv")
batch.generate(csv, 10_000)
spec = json.loads((batch.ART / "feature_spec.json").read_text())
X = batch.encode(pd.read_csv(csv), spec)
X.tofile(os.path.join(out, "rows_10k_X.f32"))
print("rows", X.shape)
PYEOF
  )
fi
"$BUILD/keel" export "$ART/model.json" --format c --name churn_bench --output "$OUT/c" --force
"$CC" --version | head -1
"$CC" -std=c99 -O2 -ffp-contract=off -fPIC -shared -o "$OUT/churn_bench.so" "$OUT/c/churn_bench.c" -lm
"$CC" -std=c99 -O2 -ffp-contract=off -c -o "$OUT/churn_bench_O2.o" "$OUT/c/churn_bench.c"
"$CC" -std=c99 -Os -ffp-contract=off -c -o "$OUT/churn_bench_Os.o" "$OUT/c/churn_bench.c"
echo "=== generated code size (bytes; text = code + constant tables) ==="
size "$OUT/churn_bench_O2.o" "$OUT/churn_bench_Os.o"
echo ".rodata (-Os): $(size -A "$OUT/churn_bench_Os.o" | awk '$1 == ".rodata" {print $2}')"
echo "code alone (.text, -Os): $(size -A "$OUT/churn_bench_Os.o" | awk '$1 == ".text" {print $2}')"
grep -E '^(\| (tree nodes|leaf values|\*\*total)|Code: about|Stack: about)' "$OUT/c/README.md"
echo "=== single row: libxgboost vs keel engine vs generated C, same process ==="
"$BUILD/bench/keel_export_bench" "$ART/model.json" "$OUT/rows_10k_X.f32" 73 "$PER_MEASURE" \
  "$OUT/churn_bench.so" churn_bench
