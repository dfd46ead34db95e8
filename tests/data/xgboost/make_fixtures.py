#!/usr/bin/python3
"""Regenerates the XGBoost fixtures in this directory (see README.md).

Needs Debian's python3-xgboost 1.7.4 and python3-numpy:
    /usr/bin/python3 tests/data/xgboost/make_fixtures.py
"""
import json
import os

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240601)

# Small binary model: 2 numeric features (one with missing values) and one
# categorical feature with 8 categories, partition splits.
n = 400
x = np.empty((n, 3), dtype=np.float32)
x[:, 0] = rng.normal(size=n)
x[:, 1] = rng.normal(size=n)
x[:, 2] = rng.integers(0, 8, size=n)
x[rng.random(n) < 0.15, 1] = np.nan
effect = np.array([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.0, 1.5])
logit = x[:, 0] + np.nan_to_num(x[:, 1]) * 0.5 + effect[x[:, 2].astype(int)]
y = (logit + rng.normal(scale=0.5, size=n) > 0).astype(np.float32)
d = xgb.DMatrix(x, y, feature_names=["num_a", "num_b", "cat_c"],
                feature_types=["q", "q", "c"], enable_categorical=True)
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3,
          "max_cat_to_onehot": 1, "base_score": 0.4, "nthread": 1, "seed": 1}
booster = xgb.train(params, d, num_boost_round=4)
booster.save_model(os.path.join(HERE, "small_cat.json"))
booster.save_model(os.path.join(HERE, "small_cat.ubj"))

# Rows to predict: some training rows plus missing values, unseen, negative
# and fractional categories.
probe = x[:12].copy()
extra = np.array([
    [0.3, np.nan, np.nan],
    [-1.0, 0.2, 9.0],
    [0.0, 0.0, -1.0],
    [1.0, -1.0, 2.5],
    [np.nan, np.nan, 4.0],
    [2.0, 1.0, 1000.0],
], dtype=np.float32)
probe = np.vstack([probe, extra])
pd = xgb.DMatrix(probe, feature_names=["num_a", "num_b", "cat_c"],
                 feature_types=["q", "q", "c"], enable_categorical=True)
pred = booster.predict(pd)
with open(os.path.join(HERE, "small_cat_expected.csv"), "w") as f:
    f.write("num_a,num_b,cat_c,prediction\n")
    for row, p in zip(probe, pred):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in row]
        f.write(",".join(cells + [repr(float(p))]) + "\n")
