#!/usr/bin/env bash
# Installs, builds and starts keel on its embedded default (a SQLite file and a
# local artifact folder under ./keel-data), with the sample churn project
# trained, registered (churn@champion) and served (every prediction logged),
# with a retraining policy for it (keel-data/retrain.yaml: weekly, and on
# drift or decay alerts, behind the champion/challenger gate), then prints
# the URLs to open.
# Environment: KEEL_PORT (default 5000), KEEL_HOST (default 127.0.0.1),
# KEEL_SAMPLE_DATA (default ../shared/data/mlc_churn.csv), KEEL_DATA_DIR
# (default keel-data); for tests, KEEL_BINARY (a keel already built: no
# install, no build).
set -euo pipefail
# Paths given relative to the caller's folder stay so after the cd below.
for v in KEEL_BINARY KEEL_DATA_DIR KEEL_SAMPLE_DATA; do
  # (a bare command name in KEEL_BINARY stays a PATH lookup)
  if [ -n "${!v:-}" ] && { [ "$v" != KEEL_BINARY ] || [[ "${!v}" == */* ]]; }; then
    export "$v=$(realpath -m -- "${!v}")"
  fi
done
cd "$(dirname "$0")/.."
keel="${KEEL_BINARY:-build/keel}"
if [ -z "${KEEL_BINARY:-}" ]; then
  bash scripts/install-deps.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_TESTS=ON >/dev/null
  cmake --build build -j"${KEEL_JOBS:-2}" --target keel_cli
fi
dir="${KEEL_DATA_DIR:-keel-data}"
mkdir -p "$dir"
store=(--store-uri "sqlite://$dir/keel.db" --artifact-root "$dir/artifacts")

# The sample project, once: train the churn model, register it, make it champion.
data="${KEEL_SAMPLE_DATA:-../shared/data/mlc_churn.csv}"
if [ -f "$data" ] && ! "$keel" "${store[@]}" models show churn >/dev/null 2>&1; then
  echo "run: training the sample churn model on $data"
  "$keel" "${store[@]}" train --data "$data" --target churn --experiment churn \
    --param n_estimators=400 --param learning_rate=0.05 --param max_depth=6 --register churn \
    --output-name churn_probability
  version=$("$keel" "${store[@]}" models show churn | awk '$1 ~ /^[0-9]+$/ {v=$1} END {print v}')
  "$keel" "${store[@]}" models alias churn@champion "$version" --reason "sample project"
fi

host="${KEEL_HOST:-127.0.0.1}"
port="${KEEL_PORT:-5000}"
echo "run: keel on http://$host:$port"
echo "  dashboard      http://$host:$port/   (experiments, models, deployments, monitoring, retraining)"
echo "  tracking API   http://$host:$port/api/2.0/mlflow/  (mlflow.set_tracking_uri(\"http://$host:$port\"))"
echo "  artifacts      http://$host:$port/api/2.0/mlflow-artifacts/artifacts"
echo "  health         http://$host:$port/health"
serve=()
if "$keel" "${store[@]}" models show churn >/dev/null 2>&1; then
  serve=(--serve churn@champion)
  echo "  sample model   churn@champion  ($keel ${store[*]} models show churn)"
  cat > "$dir/customer.json" <<'JSON'
{"state": "KS", "account_length": 128, "area_code": "area_code_415", "international_plan": "no",
 "voice_mail_plan": "yes", "number_vmail_messages": 25, "total_day_minutes": 265.1,
 "total_day_calls": 110, "total_day_charge": 45.07, "total_eve_minutes": 197.4,
 "total_eve_calls": 99, "total_eve_charge": 16.78, "total_night_minutes": 244.7,
 "total_night_calls": 91, "total_night_charge": 11.01, "total_intl_minutes": 10.0,
 "total_intl_calls": 3, "total_intl_charge": 2.7, "number_customer_service_calls": 1}
JSON
  echo "  predict        curl -d @$dir/customer.json http://$host:$port/predict/churn"
  echo "  MLflow scoring http://$host:$port/invocations/churn   OIP V2: http://$host:$port/v2/models/churn"
  # A batch job over the sample data puts a window into the prediction log, so
  # monitoring has something to show from the start.
  if [ -f "$data" ]; then
    "$keel" "${store[@]}" batch churn@champion --input "$data" --output "$dir/scores.csv" \
      --monitor-sample 0.2 >/dev/null 2>&1 || echo "run: the sample batch job failed (see $keel batch --help)"
  fi
  echo "  monitor        $keel ${store[*]} monitor churn@champion --window 1d --report $dir/monitor.html"
  echo "  drift          $keel ${store[*]} drift --reference churn@champion --current NEW.csv"
  echo "  alerts         $keel ${store[*]} alerts list   (monitoring runs every minute)"
  # The sample retraining policy (the server reads it): written once, then the user's to edit.
  if [ -f "$data" ] && [ ! -f "$dir/retrain.yaml" ]; then
    yaml_data=$(realpath -- "$data")
    yaml_data=${yaml_data//\\/\\\\}  # a YAML double-quoted string: \ and " escaped
    yaml_data=${yaml_data//\"/\\\"}
    cat > "$dir/retrain.yaml" <<YAML
# Retraining policy for the sample churn model (docs/retraining.md).
model: churn
train: { data: "$yaml_data", target: churn, model: xgboost,
         params: { n_estimators: 400, learning_rate: 0.05, max_depth: 6 } }
schedule: "0 3 * * 1"                 # cron: Mondays 03:00 UTC
on_alerts: [data_drift, performance_decay]
window: { recent: 30d, include_labeled_predictions: true }
gate: { metric: auc, min_delta: 0.0, max_regression: 0.005, min_rows: 500, holdout: recent }
shadow: { duration: 1h, min_requests: 1000 }
promote: champion
watch: { duration: 24h, rollback_if: { metric: auc, drop_more_than: 0.02 } }
YAML
  fi
  if [ -f "$dir/retrain.yaml" ]; then
    serve+=(--retrain-policies "$dir/retrain.yaml")
    echo "  retraining     policy $dir/retrain.yaml; $keel ${store[*]} retrain history churn"
    echo "                 run one now: $keel --tracking-uri http://$host:$port retrain churn"
  fi
fi
echo "  metrics        http://$host:$port/metrics"
echo "  serving status http://$host:$port/api/2.0/keel/serving"
exec "$keel" server --host "$host" --port "$port" "${store[@]}" "${serve[@]}" --monitor-interval 1m
