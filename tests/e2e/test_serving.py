"""End-to-end tests of real-time serving: keel server and keel serve.

Trains two versions of the churn model with `keel train`, then drives the
real binary over HTTP: /predict, MLflow /invocations, Open Inference Protocol
V2, /metrics, hot swap by alias under load, the prediction log (read back from
the SQLite file with Python's sqlite3) with labels, crash durability, and
bad input. Predictions are checked against python3-xgboost on the package's
model.json with the package's one-hot encoding rebuilt in Python.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_serving.py
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
import xgboost as xgb  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import KeelServer, free_port, keel_binary  # noqa: E402

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared")
CHURN = os.path.normpath(os.path.abspath(os.path.join(SHARED, "data", "mlc_churn.csv")))
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"


def records(n, start=0):
    df = pd.read_csv(CHURN).drop(columns=["churn"])
    out = []
    for row in df.iloc[start:start + n].to_dict("records"):
        out.append({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


class Reference:
    """The package's model scored by python3-xgboost, its pipeline rebuilt in Python."""

    def __init__(self, model_json, pipeline_json):
        self.booster = xgb.Booster()
        self.booster.load_model(model_json)
        with open(pipeline_json) as f:
            self.pipeline = json.load(f)

    def encode(self, rec):
        row = []
        for col in self.pipeline["columns"]:
            v = rec.get(col["name"])
            if col["type"] == "categorical":
                cats = col["categories"]
                row += [1.0 if v is not None and str(v) == c else 0.0 for c in cats]
            else:
                row.append(float("nan") if v is None else float(v))
        return row

    def predict(self, recs):
        x = np.array([self.encode(r) for r in recs], dtype=np.float32)
        return self.booster.predict(xgb.DMatrix(x, missing=np.nan)).tolist()


def train(k, tmp, n_estimators, name="churn"):
    p = subprocess.run(
        [keel_binary(), "--tracking-uri", k.url, "train", "--data", CHURN, "--target", "churn",
         "--param", f"n_estimators={n_estimators}", "--param", "max_depth=4",
         "--register", name, "--output-name", "churn_probability", "--experiment", "serving"],
        capture_output=True, text=True, cwd=tmp, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def set_alias(k, name, alias, version):
    r = k.post("registered-models/alias", {"name": name, "alias": alias, "version": str(version)})
    assert r.status_code == 200, r.text


def download_package(k, name, version, dest):
    mv = k.ok("GET", "model-versions/get", {"name": name, "version": str(version)})
    source = mv["model_version"]["source"]
    rel = source.split("mlflow-artifacts:/", 1)[1]
    os.makedirs(os.path.join(dest, "keel"), exist_ok=True)
    for f in ("model.json", "keel/pipeline.json"):
        r = k.session.get(k.url + ARTIFACTS + rel + "/" + f)
        assert r.status_code == 200, r.text
        with open(os.path.join(dest, f), "wb") as out:
            out.write(r.content)
    return Reference(os.path.join(dest, "model.json"), os.path.join(dest, "keel", "pipeline.json"))


class Load:
    """Clients posting one record to /predict/churn in a loop, until stop().

    answered: (request_id, sent at, answered at, body) per 200 answer;
    errors: bodies of other answers; exceptions: a client's transport error
    (that client then stops: the server was killed or is shutting down).
    """

    def __init__(self, url, rec, clients=4):
        self.url, self.body = url + "/predict/churn", json.dumps(rec)
        self.answered, self.errors, self.exceptions = [], [], []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.client) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def client(self):
        with requests.Session() as s:
            while not self.done.is_set():
                t0 = time.monotonic()
                try:
                    r = s.post(self.url, data=self.body,
                               headers={"Content-Type": "application/json"}, timeout=30)
                except requests.RequestException as e:
                    with self.lock:
                        self.exceptions.append(repr(e))
                    return
                t1 = time.monotonic()
                with self.lock:
                    if r.status_code == 200:
                        b = r.json()
                        self.answered.append((b["request_id"], t0, t1, b))
                    else:
                        self.errors.append(r.text)

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join()
        return self


class ServingCase(unittest.TestCase):
    """One keel server with churn versions 1 (20 trees) and 2 (40 trees); champion -> 1."""

    server_args = ["--poll-ms", "50", "--log-flush-ms", "20"]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="keel-serving-")
        cls.k = KeelServer(cls.server_args).start()
        train(cls.k, cls.tmp, 20)
        train(cls.k, cls.tmp, 40)
        set_alias(cls.k, "churn", "champion", 1)
        cls.ref = {v: download_package(cls.k, "churn", v, os.path.join(cls.tmp, f"v{v}"))
                   for v in (1, 2)}
        cls.s = requests.Session()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def url(self, path):
        return self.k.url + path

    def post_json(self, path, body, **kw):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        headers = kw.pop("headers", {"Content-Type": "application/json"})
        return self.s.post(self.url(path), data=data, headers=headers, timeout=30, **kw)

    def assertClose(self, got, want, tol=1e-6):
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertLess(abs(g - w), tol, (got, want))

    def assertServerUp(self):
        self.assertIsNone(self.k.proc.poll(), "the server died")
        self.assertEqual(self.s.get(self.url("/health"), timeout=5).status_code, 200)

    def db(self):
        return sqlite3.connect(os.path.join(self.k.data_dir, "keel.db"), timeout=30)


class PredictTest(ServingCase):

    def test_one_record(self):
        rec = records(1)[0]
        r = self.post_json("/predict/churn", rec)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(set(body), {"churn_probability", "model_version", "request_id"})
        self.assertEqual(body["model_version"], "1")
        self.assertClose([body["churn_probability"]], self.ref[1].predict([rec]))
        self.assertEqual(r.headers["X-Request-Id"], body["request_id"])

    def test_list_of_records(self):
        recs = records(50, 100)
        r = self.post_json("/predict/churn", recs)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        preds = body["predictions"]
        self.assertEqual(len(preds), 50)
        self.assertClose([p["churn_probability"] for p in preds], self.ref[1].predict(recs))
        ids = [p["request_id"] for p in preds]
        self.assertEqual(ids, [f"{body['request_id']}-{i}" for i in range(50)])

    def test_addressing(self):
        rec = records(1, 7)[0]
        for path, version in [("/predict/churn", "1"), ("/predict/churn@champion", "1"),
                              ("/predict/churn/2", "2"), ("/predict/churn/1", "1")]:
            r = self.post_json(path, rec)
            self.assertEqual(r.status_code, 200, (path, r.text))
            self.assertEqual(r.json()["model_version"], version, path)
            self.assertClose([r.json()["churn_probability"]], self.ref[int(version)].predict([rec]))
        # Several models are served now: /predict alone must say which exist.
        r = self.post_json("/predict", rec)
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn("name one in the path", r.json()["message"])
        r = self.post_json("/predict/nosuchmodel", rec)
        self.assertEqual(r.status_code, 404, r.text)
        self.assertIn("nosuchmodel", r.json()["message"])
        r = self.post_json("/predict/churn@nosuchalias", rec)
        self.assertEqual(r.status_code, 404, r.text)
        r = self.post_json("/predict/churn/x", rec)
        self.assertEqual(r.status_code, 400, r.text)

    def test_missing_and_unknown_values(self):
        rec = records(1, 3)[0]
        # null is a missing value; an unseen category encodes as all zeros (as sklearn).
        nulls = {**rec, "total_day_minutes": None, "state": None, "international_plan": "maybe"}
        r = self.post_json("/predict/churn", nulls)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertClose([r.json()["churn_probability"]], self.ref[1].predict([nulls]))
        # An absent field or an extra one is a client error naming the field.
        absent = {k: v for k, v in rec.items() if k != "total_day_minutes"}
        r = self.post_json("/predict/churn", absent)
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn('"total_day_minutes" is missing', r.json()["message"])
        r = self.post_json("/predict/churn", {**rec, "extra_field": 5})
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn('"extra_field"', r.json()["message"])
        r = self.post_json("/predict/churn", [rec, absent])
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn("row 1", r.json()["message"])
        # MLflow ignores extra columns but needs every input column.
        cols = list(rec)
        r = self.post_json("/invocations/churn", {"dataframe_split": {
            "columns": cols + ["extra"], "data": [[rec[c] for c in cols] + [1]]}})
        self.assertEqual(r.status_code, 200, r.text)
        r = self.post_json("/invocations/churn", {"dataframe_split": {
            "columns": cols[1:], "data": [[rec[c] for c in cols[1:]]]}})
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn('"state" is missing', r.json()["message"])

    def test_one_element_list(self):
        rec = records(1, 9)[0]
        r = self.post_json("/predict/churn", [rec])
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(body["predictions"][0]["request_id"], body["request_id"] + "-0")
        r = self.post_json("/labels", {"request_id": body["request_id"] + "-0", "label": 1})
        self.assertEqual(r.json(), {"matched": 1, "unknown_request_ids": []})

    def test_bad_input(self):
        rec = records(1)[0]
        cases = [
            ('{"state": "KS", ', 400, "malformed JSON"),
            ("[1, 2]", 400, "object"),
            ("42", 400, "object"),
            (json.dumps({**rec, "account_length": "abc"}), 400, "account_length"),
            (json.dumps({**rec, "account_length": [1]}), 400, "account_length"),
            (json.dumps(rec).replace("128", "NaN"), 400, ""),
            (json.dumps(rec).replace("128", "Infinity"), 400, ""),
            (b'{"state": "\xff\xfe"}', 400, "UTF-8"),
        ]
        for body, status, part in cases:
            r = self.post_json("/predict/churn", body)
            self.assertEqual(r.status_code, status, (body, r.text))
            err = r.json()
            self.assertIn("message", err, body)
            self.assertIn(part, err["message"], body)
        self.assertServerUp()

    def test_huge_body(self):
        r = self.post_json("/predict/churn", b"[" + b"1," * (40 << 20) + b"1]")
        self.assertEqual(r.status_code, 413)
        self.assertServerUp()


class LenientInputsTest(ServingCase):
    server_args = ["--lenient-inputs"]

    def test_absent_and_extra_fields_accepted(self):
        rec = records(1, 3)[0]
        partial = {k: v for k, v in rec.items() if k not in ("total_day_minutes", "state")}
        partial["extra_field"] = 5
        r = self.post_json("/predict/churn", partial)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertClose([r.json()["churn_probability"]], self.ref[1].predict([partial]))


class InvocationsTest(ServingCase):

    def test_formats_agree(self):
        recs = records(20, 200)
        want = self.ref[1].predict(recs)
        cols = list(recs[0])
        split = {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in recs]}}
        bodies = [
            split,
            {"dataframe_split": {"columns": cols, "index": list(range(20)),
                                 "data": [[r[c] for c in cols] for r in recs]}},
            {"dataframe_records": recs},
            {"instances": recs},
            {"inputs": {c: [r[c] for r in recs] for c in cols}},
            {"inputs": recs, "params": {"anything": 1}},
        ]
        for body in bodies:
            r = self.post_json("/invocations/churn", body)
            self.assertEqual(r.status_code, 200, (list(body), r.text))
            self.assertEqual(set(r.json()), {"predictions"})
            self.assertClose(r.json()["predictions"], want)
        text = ",".join(cols) + "\n" + "\n".join(
            ",".join(str(r[c]) for c in cols) for r in recs) + "\n"
        for ctype in ("text/csv", "application/csv", "text/csv; charset=utf-8"):
            r = self.post_json("/invocations/churn", text, headers={"Content-Type": ctype})
            self.assertEqual(r.status_code, 200, (ctype, r.text))
            self.assertClose(r.json()["predictions"], want)
        # Positional rows in the model's input column order.
        r = self.post_json("/invocations/churn",
                           {"instances": [[r[c] for c in cols] for r in recs]})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertClose(r.json()["predictions"], want)

    def test_content_type_rules(self):
        body = json.dumps({"dataframe_records": records(1)})
        for ctype in ("text/plain", "application/xml", "application/json; format=pandas-split",
                      "application/json; charset=latin-1"):
            r = self.post_json("/invocations/churn", body, headers={"Content-Type": ctype})
            self.assertEqual(r.status_code, 415, (ctype, r.text))
            self.assertIn("message", r.json())
        r = self.post_json("/invocations/churn", body,
                           headers={"Content-Type": "application/json; charset=UTF-8"})
        self.assertEqual(r.status_code, 200, r.text)

    def test_bad_bodies(self):
        rec = records(1)[0]
        for body in ([rec], {}, {"dataframe_records": [rec], "instances": [rec]},
                     {"dataframe_records": [rec], "signature_name": "x"},
                     {"dataframe_split": {"columns": ["state"], "data": [["KS", 1]]}},
                     {"inputs": {"state": ["KS"], "account_length": [1, 2]}}):
            r = self.post_json("/invocations/churn", body)
            self.assertEqual(r.status_code, 400, (body, r.text))
            self.assertEqual(r.json()["error_code"], "BAD_REQUEST", r.text)
        self.assertServerUp()

    def test_ping_health_version(self):
        r = self.s.get(self.url("/ping"))
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(self.s.get(self.url("/health")).status_code, 200)
        self.assertTrue(self.s.get(self.url("/version")).text.startswith("keel "))


class V2Test(ServingCase):

    def test_a_pinned_version_first(self):
        # Runs first on this server: loading churn/2 must not make the bare name mean it.
        rec = records(1, 2)[0]
        self.assertEqual(self.post_json("/predict/churn/2", rec).json()["model_version"], "2")
        self.assertEqual(self.post_json("/predict/churn", rec).json()["model_version"], "1")

    def test_health_and_metadata(self):
        self.assertEqual(self.s.get(self.url("/v2/health/live")).json(), {"live": True})
        self.assertEqual(self.s.get(self.url("/v2/health/ready")).json(), {"ready": True})
        meta = self.s.get(self.url("/v2")).json()
        self.assertEqual(meta["name"], "keel")
        r = self.s.get(self.url("/v2/models/churn"))
        self.assertEqual(r.status_code, 200, r.text)
        m = r.json()
        self.assertEqual(m["name"], "churn")
        self.assertEqual(m["versions"], ["1"])
        self.assertEqual(m["platform"], "keel_xgboost_json")
        inputs = {i["name"]: i["datatype"] for i in m["inputs"]}
        self.assertEqual(inputs["state"], "BYTES")
        self.assertEqual(inputs["account_length"], "FP32")
        self.assertEqual(m["outputs"][0]["name"], "churn_probability")
        r = self.s.get(self.url("/v2/models/churn/ready"))
        self.assertEqual(r.json(), {"name": "churn", "ready": True})
        r = self.s.get(self.url("/v2/models/churn/versions/2/ready"))
        self.assertEqual(r.status_code, 200, r.text)
        r = self.s.get(self.url("/v2/models/nosuch/ready"))
        self.assertEqual(r.status_code, 400)
        self.assertFalse(r.json()["ready"])

    def test_infer_per_column(self):
        recs = records(5, 40)
        inputs = []
        for col, values in {c: [r[c] for r in recs] for c in recs[0]}.items():
            dt = "BYTES" if isinstance(values[0], str) else "FP64"
            inputs.append({"name": col, "shape": [5], "datatype": dt, "data": values})
        r = self.post_json("/v2/models/churn/infer", {"id": "abc", "inputs": inputs})
        self.assertEqual(r.status_code, 200, r.text)
        out = r.json()
        self.assertEqual(out["id"], "abc")
        self.assertEqual(out["model_name"], "churn")
        self.assertEqual(out["model_version"], "1")
        o = out["outputs"][0]
        self.assertEqual((o["name"], o["datatype"], o["shape"]), ("churn_probability", "FP32", [5]))
        self.assertClose(o["data"], self.ref[1].predict(recs))
        r = self.post_json("/v2/models/churn/versions/2/infer", {"inputs": inputs})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertClose(r.json()["outputs"][0]["data"], self.ref[2].predict(recs))

    def test_infer_model_tensor(self):
        recs = records(4, 10)
        x = [self.ref[1].encode(r) for r in recs]
        flat = [v for row in x for v in row]
        body = {"inputs": [{"name": "input__0", "shape": [4, len(x[0])], "datatype": "FP32",
                            "data": flat}]}
        r = self.post_json("/v2/models/churn/infer", body)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertClose(r.json()["outputs"][0]["data"], self.ref[1].predict(recs))

    def test_errors(self):
        for body in ({"inputs": [{"name": "state", "shape": [2], "datatype": "BYTES",
                                  "data": ["KS"]}]},
                     {"inputs": [{"name": "nosuch", "shape": [1], "datatype": "FP32",
                                  "data": [1]}]},
                     {"inputs": []}, "not json"):
            r = self.post_json("/v2/models/churn/infer", body)
            self.assertEqual(r.status_code, 400, (body, r.text))
            self.assertIn("error", r.json())
        r = self.post_json("/v2/models/nosuch/infer", {"inputs": []})
        self.assertEqual(r.status_code, 404)
        self.assertIn("error", r.json())
        self.assertServerUp()


class MetricsTest(ServingCase):

    def test_metrics_text(self):
        rec = records(1)[0]
        for _ in range(3):
            self.assertEqual(self.post_json("/predict/churn", rec).status_code, 200)
        self.assertEqual(self.post_json("/predict/churn", "{").status_code, 400)
        r = self.s.get(self.url("/metrics"))
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        text = r.text
        series = {}
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
        ok = ('keel_http_requests_total{endpoint="/predict/{path}",model="churn",version="1",'
              'code="200"}')
        self.assertGreaterEqual(series[ok], 3)
        self.assertGreaterEqual(series['keel_http_requests_total{endpoint="/predict/{path}",'
                                       'model="churn",version="1",code="400"}'], 1)
        count = series['keel_http_request_duration_seconds_count{endpoint="/predict/{path}",'
                       'model="churn"}']
        inf = series['keel_http_request_duration_seconds_bucket{endpoint="/predict/{path}",'
                     'model="churn",le="+Inf"}']
        self.assertEqual(count, inf)
        self.assertGreaterEqual(count, 4)
        self.assertIn("keel_http_requests_in_flight", series)
        self.assertIn("keel_prediction_log_queue_depth", series)
        self.assertIn("keel_prediction_log_dropped_total", series)
        self.assertGreaterEqual(series['keel_model_loads_total{model="churn",result="success"}'], 1)
        self.assertIn("# TYPE keel_http_request_duration_seconds histogram", text)
        self.assertIn("# TYPE keel_http_requests_total counter", text)
        self.assertIn("# TYPE keel_prediction_log_written_total counter", text)
        self.assertIn("# TYPE keel_prediction_log_queue_depth gauge", text)


class RequestCountsTest(ServingCase):
    """Request outcomes per model and minute in the store (GET /api/2.0/keel/serving/requests)."""

    server_args = ServingCase.server_args + ["--counts-flush-ms", "100"]

    def counts(self, **params):
        r = self.s.get(self.url("/api/2.0/keel/serving/requests"), params=params, timeout=10)
        return r

    def test_errors_over_time(self):
        rec = records(1)[0]
        for _ in range(3):
            self.assertEqual(self.post_json("/predict/churn", rec).status_code, 200)
        for _ in range(2):
            self.assertEqual(self.post_json("/predict/churn", "{").status_code, 400)
        self.assertEqual(self.post_json("/predict/churn/2", rec).status_code, 200)
        deadline = time.time() + 30
        got = None
        while time.time() < deadline:
            r = self.counts(model="churn")
            self.assertEqual(r.status_code, 200, r.text)
            got = r.json()
            total = sum(p["requests"] for p in got["points"])
            if total >= 6:
                break
            time.sleep(0.05)
        self.assertEqual(got["model"], "churn")
        self.assertEqual(got["step_ms"], 60000)
        # Other tests of this class's server may have sent requests too: at least these.
        self.assertGreaterEqual(sum(p["requests"] for p in got["points"]), 6, got)
        self.assertGreaterEqual(sum(p["client_errors"] for p in got["points"]), 2, got)
        for p in got["points"]:
            self.assertEqual(p["time_ms"] % 60000, 0)
        v2 = self.counts(model="churn", version="2").json()
        self.assertEqual(sum(p["requests"] for p in v2["points"]), 1, v2)
        self.assertEqual(sum(p["client_errors"] for p in v2["points"]), 0, v2)
        hour = self.counts(model="churn", step_ms=3600000).json()
        self.assertLessEqual(len(hour["points"]), 2)
        self.assertEqual(sum(p["requests"] for p in hour["points"]),
                         sum(p["requests"] for p in got["points"]))
        for bad in ({"model": "churn", "step_ms": "1000"}, {"model": "churn", "from_ms": "5",
                                                            "to_ms": "5"}, {}):
            r = self.counts(**bad)
            self.assertEqual(r.status_code, 400, r.text)
            self.assertIn("message", r.json())
        self.assertServerUp()


class PredictionLogTest(ServingCase):

    def test_logged_and_labelled(self):
        recs = records(3, 300)
        ids = []
        for rec in recs:
            r = self.post_json("/predict/churn", rec)
            self.assertEqual(r.status_code, 200, r.text)
            ids.append((r.json()["request_id"], r.json()["churn_probability"]))
        # Labels flush the log first, so the join sees predictions answered just now.
        body = [{"request_id": ids[0][0], "label": 1}, {"request_id": ids[1][0], "label": "no"},
                {"request_id": "no-such-id", "label": 0}]
        r = self.post_json("/labels", body)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {"matched": 2, "unknown_request_ids": ["no-such-id"]})
        with self.db() as db:
            rows = {row[0]: row[1:] for row in db.execute(
                "SELECT request_id, model, version, endpoint, input, output, latency_us "
                "FROM predictions WHERE request_id IN (?, ?, ?)", [i for i, _ in ids])}
            labels = dict(db.execute("SELECT request_id, label FROM labels WHERE request_id IN "
                                     "(?, ?)", [ids[0][0], ids[1][0]]))
        self.assertEqual(len(rows), 3)
        for (rid, p), rec in zip(ids, recs):
            model, version, endpoint, inp, out, latency = rows[rid]
            self.assertEqual((model, version, endpoint), ("churn", "1", "predict"))
            self.assertEqual(json.loads(inp), rec)
            self.assertLess(abs(float(out) - p), 1e-6)
            self.assertGreater(latency, 0)
        self.assertEqual(labels, {ids[0][0]: "1", ids[1][0]: '"no"'})
        # Bad label bodies.
        for bad in ({"request_id": ids[2][0]}, {"label": 1}, [{"request_id": 5, "label": 1}],
                    {"request_id": ids[2][0], "label": None}, "nope"):
            r = self.post_json("/labels", bad)
            self.assertEqual(r.status_code, 400, (bad, r.text))

    def test_rows_of_a_batch_logged_separately(self):
        recs = records(4, 400)
        r = self.post_json("/invocations/churn", {"dataframe_records": recs})
        self.assertEqual(r.status_code, 200, r.text)
        rid = r.headers["X-Request-Id"]
        self.assertEqual(self.post_json("/labels", {"request_id": rid + "-3", "label": 0}).json(),
                         {"matched": 1, "unknown_request_ids": []})
        with self.db() as db:
            got = db.execute("SELECT request_id, endpoint, input FROM predictions WHERE "
                             "request_id LIKE ? ORDER BY request_id", [rid + "-%"]).fetchall()
        self.assertEqual([g[0] for g in got], [f"{rid}-{i}" for i in range(4)])
        self.assertEqual([json.loads(g[2]) for g in got], recs)
        self.assertEqual({g[1] for g in got}, {"invocations"})

    def test_labels_import_cli(self):
        r = self.post_json("/predict/churn", records(2, 500))
        ids = [p["request_id"] for p in r.json()["predictions"]]
        path = os.path.join(self.tmp, "labels.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "label"])
            w.writerows([[ids[0], "1"], [ids[1], "yes"], ["ghost", "0"]])
        p = subprocess.run([keel_binary(), "--tracking-uri", self.k.url, "labels", "import", path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(),
                         "labels: 3 read, 2 matched, 1 unknown request ids (e.g. ghost)")
        p = subprocess.run([keel_binary(), "--tracking-uri", self.k.url, "labels", "import",
                            os.path.join(self.tmp, "missing.csv")],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


class HotSwapTest(ServingCase):

    def test_alias_moves_under_load(self):
        rec = records(1, 11)[0]
        want = {str(v): self.ref[v].predict([rec])[0] for v in (1, 2)}
        # Alias timeline: (call started, call returned, version); the server
        # publishes the new version before the alias call answers.
        timeline = [(0.0, 0.0, "1")]
        load = Load(self.k.url, rec)
        time.sleep(0.3)
        for i in range(100):
            v = "2" if i % 2 == 0 else "1"
            b = time.monotonic()
            set_alias(self.k, "churn", "champion", v)
            timeline.append((b, time.monotonic(), v))
            time.sleep(0.01)
        set_alias(self.k, "churn", "champion", 1)
        timeline.append((time.monotonic(), time.monotonic(), "1"))
        time.sleep(0.2)
        load.stop()
        self.assertEqual(load.exceptions, [])
        self.assertEqual(load.errors, [])
        self.assertGreater(len(load.answered), 200)
        # v was possibly current from its call's start to the next call's return.
        spans = [(timeline[i][0], timeline[i + 1][1] if i + 1 < len(timeline) else math.inf,
                  timeline[i][2]) for i in range(len(timeline))]
        stale = []
        for _, t0, t1, b in load.answered:
            v, p = b["model_version"], b["churn_probability"]
            self.assertLess(abs(p - want[v]), 1e-6, (v, p))
            if not any(s <= t1 and t0 <= e and sv == v for s, e, sv in spans):
                stale.append((t0, t1, v))
        self.assertEqual(stale, [])
        self.assertEqual({b["model_version"] for *_, b in load.answered}, {"1", "2"})
        metrics = self.s.get(self.url("/metrics")).text
        swaps = [line for line in metrics.splitlines()
                 if line.startswith('keel_model_swaps_total{model="churn"}')]
        self.assertTrue(swaps and float(swaps[0].split()[-1]) >= 100, swaps)

    def test_failed_version_never_replaces_a_working_one(self):
        # A READY version whose source keel cannot load (outside its artifact store).
        r = self.k.post("model-versions/create", {"name": "churn", "source": "s3://elsewhere/m"})
        self.assertEqual(r.status_code, 200, r.text)
        bad = r.json()["model_version"]["version"]
        rec = records(1)[0]
        try:
            set_alias(self.k, "churn", "champion", bad)
            r = self.post_json("/predict/churn", rec)
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["model_version"], "1")
            status = self.s.get(self.url("/api/2.0/keel/serving")).json()
            entry = [m for m in status["models"] if m["ref"] == "churn@champion"][0]
            self.assertEqual(entry["version"], "1")
            self.assertEqual(entry["failed_version"], bad)
            self.assertIn("artifact store", entry["last_error"])
            self.assertTrue(status["ready"])
            metrics = self.s.get(self.url("/metrics")).text
            self.assertIn('keel_model_loads_total{model="churn",result="failure"}', metrics)
            self.assertIn('keel_model_load_failed{model="churn",ref="churn@champion"} 1', metrics)
            r = self.s.get(self.url("/health"))
            self.assertEqual(r.status_code, 200)
            self.assertIn(f"churn@champion: version {bad} failed to load (serving 1)", r.text)
        finally:
            set_alias(self.k, "churn", "champion", 1)


class PathLeakTest(ServingCase):

    def test_load_errors_name_no_server_path(self):
        # A READY version whose files are corrupted after registration.
        src = self.k.ok("GET", "model-versions/get", {"name": "churn", "version": "1"})
        rel = src["model_version"]["source"].split("mlflow-artifacts:/", 1)[1]
        copy = os.path.join(self.k.artifact_root, "copies", "model")
        shutil.copytree(os.path.join(self.k.artifact_root, rel), copy)
        r = self.k.post("model-versions/create",
                        {"name": "churn", "source": "mlflow-artifacts:/copies/model"})
        self.assertEqual(r.json()["model_version"]["status"], "READY", r.text)
        v = r.json()["model_version"]["version"]
        with open(os.path.join(copy, "model.json"), "w") as f:
            f.write('{"learner": ')
        set_alias(self.k, "churn", "broken", v)
        r = self.post_json("/predict/churn@broken", records(1)[0])
        self.assertEqual(r.status_code, 503, r.text)
        root = os.path.realpath(self.k.data_dir)
        for text in (r.text, self.s.get(self.url("/api/2.0/keel/serving")).text,
                     self.s.get(self.url("/health")).text):
            self.assertNotIn(root, text)
            self.assertNotIn(self.k.data_dir, text)
        self.assertIn("mlflow-artifacts:/copies/model", r.json()["message"])


class ServeReplicaTest(ServingCase):
    """keel serve: a serving-only process on the same store, following by polling."""

    def start_serve(self, *args):
        port = free_port()
        cmd = [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
               self.k.artifact_root, "serve", *args, "--port", str(port), "--poll-ms", "50"]
        log = open(os.path.join(self.tmp, f"serve-{port}.log"), "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            self.assertIsNone(proc.poll(), open(log.name).read())
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    return proc, url, log
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError("keel serve did not start: " + open(log.name).read())

    def test_replica_follows_alias(self):
        proc, url, log = self.start_serve("churn@champion")
        try:
            rec = records(1, 21)[0]
            r = requests.post(url + "/predict", json=rec, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["model_version"], "1")
            r = requests.post(url + "/invocations", json={"dataframe_records": [rec]}, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            self.assertLess(abs(r.json()["predictions"][0] - self.ref[1].predict([rec])[0]), 1e-6)
            # Only serving routes on a replica.
            r = requests.get(url + "/api/2.0/mlflow/experiments/search", timeout=10)
            self.assertEqual(r.status_code, 404)
            for path in ["/", "/ui/app.js", "/api/2.0/keel/whoami"]:  # no dashboard
                self.assertEqual(requests.get(url + path, timeout=10).status_code, 404, path)
            set_alias(self.k, "churn", "champion", 2)
            deadline = time.time() + 5
            version = "1"
            while time.time() < deadline and version != "2":
                version = requests.post(url + "/predict", json=rec, timeout=10).json()["model_version"]
                time.sleep(0.02)
            self.assertEqual(version, "2")
            self.assertLess(abs(requests.post(url + "/predict/churn", json=rec).json()[
                "churn_probability"] - self.ref[2].predict([rec])[0]), 1e-6)
        finally:
            set_alias(self.k, "churn", "champion", 1)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)
            log.close()

    def test_replica_refuses_unknown_reference(self):
        p = subprocess.run([keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
                            self.k.artifact_root, "serve", "nosuch@champion", "--port", "0"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nosuch", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


class DurabilityTest(ServingCase):
    """SIGKILL with the strict prediction log loses no answered prediction."""

    server_args = ["--log-durability", "strict", "--poll-ms", "50"]

    def test_strict_log_survives_sigkill(self):
        load = Load(self.k.url, records(1, 31)[0])
        time.sleep(1.5)
        self.k.kill()
        load.stop()
        answered = [a[0] for a in load.answered]
        self.assertGreater(len(answered), 50)
        with self.db() as db:
            logged = {row[0] for row in db.execute("SELECT request_id FROM predictions")}
        self.assertEqual([a for a in answered if a not in logged], [])
        # The server restarts on the same data and serves again.
        self.k.start()
        self.assertEqual(self.post_json("/predict/churn", records(1, 31)[0]).status_code, 200)


class GracefulShutdownTest(ServingCase):
    """SIGTERM under load: requests in flight finish and every answer is in the log."""

    server_args = ["--log-flush-ms", "60000", "--poll-ms", "50"]

    def test_sigterm_drains_and_flushes_the_log(self):
        load = Load(self.k.url, records(1, 41)[0])
        time.sleep(1.0)
        # Nothing has been flushed yet (60 s interval); SIGTERM must drain and flush.
        self.assertEqual(self.k.stop(), 0)
        load.stop()
        self.assertEqual(load.errors, [])
        answered = [a[0] for a in load.answered]
        self.assertGreater(len(answered), 50)
        with self.db() as db:
            logged = {row[0] for row in db.execute("SELECT request_id FROM predictions")}
        self.assertEqual([i for i in answered if i not in logged], [])
        self.k.start()


class ConnectionsTest(ServingCase):

    def test_idle_connections_and_slow_clients(self):
        rec = json.dumps(records(1)[0]).encode()
        idle = []
        for _ in range(2000):
            idle.append(socket.create_connection(("127.0.0.1", self.k.port)))
        # A slowloris client: headers trickle in.
        slow = socket.create_connection(("127.0.0.1", self.k.port))
        slow.sendall(b"POST /predict/churn HTTP/1.1\r\nHost: x\r\n")
        for _ in range(20):
            r = self.post_json("/predict/churn", rec)
            self.assertEqual(r.status_code, 200, r.text)
        for s in idle:
            s.close()
        slow.close()
        self.assertServerUp()


class IntervalDurabilityTest(ServingCase):
    """Default durability: a SIGKILL loses at most the last flush interval of predictions."""

    server_args = ["--log-flush-ms", "200", "--poll-ms", "50"]

    def test_sigkill_loses_at_most_the_last_interval(self):
        load = Load(self.k.url, records(1, 51)[0])
        time.sleep(2.0)
        killed_at = time.monotonic()
        self.k.kill()
        load.stop()
        with self.db() as db:
            logged = {row[0] for row in db.execute("SELECT request_id FROM predictions")}
        missing = [(rid, at) for rid, _, at, _ in load.answered if rid not in logged]
        # Lost records were answered within the last flush interval (200 ms), plus
        # the commit in progress and scheduling slack on a shared machine.
        old = [(rid, round(killed_at - at, 3)) for rid, at in missing if killed_at - at > 1.0]
        self.assertEqual(old, [])
        self.assertGreater(len(load.answered) - len(missing), 100)
        self.k.start()


class AuthTest(ServingCase):
    """With --auth-tokens: scoring needs a read token, labels a write token; health is open."""

    @classmethod
    def setUpClass(cls):
        cls.tokens = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        cls.tokens.write("alice write s3cret-w\nbob read s3cret-r\n")
        cls.tokens.close()
        cls.server_args = ["--auth-tokens", cls.tokens.name]
        cls.tmp = tempfile.mkdtemp(prefix="keel-serving-")
        cls.k = KeelServer(cls.server_args).start()
        w = {"Authorization": "Bearer s3cret-w"}
        cls.k.session.headers.update(w)
        env = {**os.environ, "MLFLOW_TRACKING_TOKEN": "s3cret-w"}
        p = subprocess.run(
            [keel_binary(), "--tracking-uri", cls.k.url, "train", "--data", CHURN, "--target",
             "churn", "--param", "n_estimators=5", "--register", "churn", "--output-name",
             "churn_probability"], capture_output=True, text=True, cwd=cls.tmp, timeout=300,
            env=env)
        assert p.returncode == 0, p.stderr
        set_alias(cls.k, "churn", "champion", 1)
        cls.s = requests.Session()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.unlink(cls.tokens.name)

    def test_roles(self):
        rec = records(1)[0]
        r = self.s.post(self.url("/predict/churn"), json=rec)
        self.assertEqual(r.status_code, 401, r.text)
        r = self.s.post(self.url("/predict/churn"), json=rec,
                        headers={"Authorization": "Bearer wrong"})
        self.assertEqual(r.status_code, 401, r.text)
        r = self.s.post(self.url("/predict/churn"), json=rec,
                        headers={"Authorization": "Bearer s3cret-r"})
        self.assertEqual(r.status_code, 200, r.text)
        rid = r.json()["request_id"]
        r = self.s.post(self.url("/labels"), json={"request_id": rid, "label": 1},
                        headers={"Authorization": "Bearer s3cret-r"})
        self.assertEqual(r.status_code, 403, r.text)
        r = self.s.post(self.url("/labels"), json={"request_id": rid, "label": 1},
                        headers={"Authorization": "Bearer s3cret-w"})
        self.assertEqual(r.json(), {"matched": 1, "unknown_request_ids": []})
        for path in ("/health", "/ping", "/metrics", "/v2/health/ready"):
            self.assertEqual(self.s.get(self.url(path)).status_code, 200, path)
        r = self.s.get(self.url("/v2/models/churn"))
        self.assertEqual(r.status_code, 401)
        self.assertEqual(set(r.json()), {"error"})  # the V2 error shape, even from auth
        r = self.s.get(self.url("/v2/nosuch"), headers={"Authorization": "Bearer s3cret-r"})
        self.assertEqual(r.status_code, 404)
        self.assertEqual(set(r.json()), {"error"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
