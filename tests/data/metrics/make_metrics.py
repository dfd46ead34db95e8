#!/usr/bin/python3
"""Reference values for keel's metrics, computed by scikit-learn.

Run with Debian's Python (apt-get install python3-sklearn):
    /usr/bin/python3 tests/data/metrics/make_metrics.py > tests/data/metrics/metrics.json
Scores are rounded to 3 decimals so that ties occur (AUC tie handling).
"""
import json

import numpy as np
import sklearn
from sklearn import metrics

rng = np.random.default_rng(20261127)
cases = []
for n in (10, 257, 2000):
    y = (rng.random(n) < 0.3).astype(np.float32)
    p = np.clip(np.round(0.35 * y + 0.65 * rng.random(n), 3), 0, 1).astype(np.float32)
    pred = (p >= 0.5).astype(int)
    cases.append({
        "kind": "binary", "labels": y.tolist(), "scores": p.tolist(),
        "expected": {
            "auc": metrics.roc_auc_score(y, p),
            "log_loss": metrics.log_loss(y, np.clip(p.astype(np.float64), 1e-15, 1 - 1e-15),
                                         labels=[0, 1]),
            "accuracy": metrics.accuracy_score(y, pred),
            "precision": metrics.precision_score(y, pred, zero_division=0),
            "recall": metrics.recall_score(y, pred, zero_division=0),
            "f1": metrics.f1_score(y, pred, zero_division=0),
        }})
    t = rng.normal(10, 3, n).astype(np.float32)
    q = (t + rng.normal(0, 1, n)).astype(np.float32)
    cases.append({
        "kind": "regression", "labels": t.tolist(), "scores": q.tolist(),
        "expected": {
            "rmse": float(np.sqrt(metrics.mean_squared_error(t.astype(np.float64), q.astype(np.float64)))),
            "mae": metrics.mean_absolute_error(t.astype(np.float64), q.astype(np.float64)),
            "r2": metrics.r2_score(t.astype(np.float64), q.astype(np.float64)),
        }})
    k = 4
    c = rng.integers(0, k, n).astype(np.float32)
    z = rng.random((n, k)) + np.eye(k)[c.astype(int)] * 0.8
    pr = (z / z.sum(axis=1, keepdims=True)).astype(np.float32)
    cases.append({
        "kind": "multiclass", "classes": k, "labels": c.tolist(), "scores": pr.ravel().tolist(),
        "expected": {
            "accuracy": metrics.accuracy_score(c, pr.argmax(axis=1)),
            "log_loss": metrics.log_loss(c, pr.astype(np.float64), labels=list(range(k))),
            "f1_macro": metrics.f1_score(c, pr.argmax(axis=1), average="macro", zero_division=0),
        }})
print(json.dumps({"generator": f"scikit-learn {sklearn.__version__}", "cases": cases}))
