#!/usr/bin/env bash
# keel's evaluator against libxgboost on the serving peer's churn model, in one run:
#   1. the peer trains its 400-tree depth-6 XGBoost model (../shared/peers/serving/train.py),
#   2. the peer's batch generator makes the 1M-row input (batch.py's generate + encode),
#      and libxgboost's Python binding writes its predictions for it,
#   3. the peer's own C API benchmark (xgb_capi_bench.cpp) runs on them,
#   4. keel_model_bench runs keel and libxgboost in the same process and prints ratios.
# Needs: scripts/install-deps.sh, a Release build with -DKEEL_BUILD_BENCH=ON in build-rel/.
#   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_BENCH=ON -DKEEL_BUILD_TESTS=OFF
#   ninja -C build-rel keel_model_bench && bench/model_bench.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="$ROOT/../shared/peers/serving"
ART="${PEERS_ARTIFACTS:-${TMPDIR:-/tmp}/keel-peers-serving}"
export PEERS_ARTIFACTS="$ART"
mkdir -p "$ART"
PY=/usr/bin/python3
[ -f "$ART/model.json" ] || (cd "$PEERS" && $PY train.py)
if [ ! -f "$ART/batch_1m_X.f32" ] || [ ! -f "$ART/batch_1m_pred_xgb.f32" ]; then
  (cd "$PEERS" && $PY - <<'PYEOF'
import json, sys
sys.path.insert(0, ".")
import batch
import numpy as np
import pandas as pd
import xgboost as xgb
csv = batch.ART / "batch_1m.csv"
if not csv.exists():
    batch.generate(csv, 1_000_000)
spec = json.loads((batch.ART / "feature_spec.json").read_text())
X = batch.encode(pd.read_csv(csv), spec)
X.tofile(batch.ART / "batch_1m_X.f32")
booster = xgb.Booster(model_file=str(batch.ART / "model.json"))
booster.set_param({"nthread": 2})
booster.inplace_predict(X).astype(np.float32).tofile(batch.ART / "batch_1m_pred_xgb.f32")
print("rows", X.shape)
PYEOF
  )
fi
g++ -O2 -std=c++17 -o "$ART/xgb_capi_bench" "$PEERS/xgb_capi_bench.cpp" -lxgboost
echo "=== peer: xgb_capi_bench (libxgboost C API alone) ==="
"$ART/xgb_capi_bench" "$ART/model.json" "$ART/batch_1m_X.f32" "$ART/batch_1m_pred_xgb.f32" 73 3
echo "=== keel vs libxgboost, same process ==="
"$ROOT/build-rel/bench/keel_model_bench" "$ART/model.json" "$ART/batch_1m_X.f32" 73 3
