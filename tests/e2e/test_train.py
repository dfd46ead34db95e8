"""End-to-end tests of `keel train` and model registration checks.

Runs the real keel binary (embedded and against a server) on the churn data in
$KEEL_SHARED_DIR/data/mlc_churn.csv and checks what it records against
independent computations: hashlib for data versions, python3-xgboost and
sklearn for the model and its metrics.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_train.py
Needs python3-requests, python3-numpy, python3-pandas, python3-sklearn,
python3-xgboost, python3-yaml (scripts/install-deps.sh).
"""
import os

# XGBoost's OpenMP threads busy-wait by default; on a shared 2-core machine
# that makes every training several times slower. Passive waiting changes no
# result (the tests check exact reproducibility), only the wall time. Set
# before xgboost is imported and inherited by every keel process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
import xgboost as xgb  # noqa: E402
import yaml  # noqa: E402
from sklearn.metrics import f1_score, log_loss, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import KeelServer, free_port, keel_binary  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"
CLI_USER = "keel-tester"
SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared")
# keel records data paths absolute and normalised (so --rerun works anywhere).
CHURN = os.path.normpath(os.path.abspath(os.path.join(SHARED, "data", "mlc_churn.csv")))

BINARY_METRICS = {"auc", "log_loss", "accuracy", "precision", "recall", "f1"}
REGRESSION_METRICS = {"rmse", "mae", "r2"}
MULTICLASS_METRICS = {"accuracy", "log_loss", "f1_macro"}
# What keel prints on stderr while training (not a TTY: one line per status).
PROGRESS = re.compile(r"^(reading |training |round \d+/\d+|profiling )")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "MLFLOW_"))}
    env["USER"] = CLI_USER
    env.update(extra)
    return env


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def uid():
    return uuid.uuid4().hex[:8]


def cli(k, *args, remote=True, cwd=None, timeout=180):
    """Runs keel against server k (remote) or its store (embedded)."""
    base = ["--tracking-uri", k.url] if remote else [
        "--store-uri", k.store_uri, "--artifact-root", k.artifact_root]
    return subprocess.run([keel_binary(), *base, *args], capture_output=True, text=True,
                          env=clean_env(), cwd=cwd or tempfile.gettempdir(), timeout=timeout)


def parse_train_output(stdout):
    """The four result lines of `keel train` -> dict."""
    lines = stdout.rstrip("\n").split("\n")
    out = {}
    m = re.fullmatch(r"run      ([0-9a-f]{32}) \(experiment (\d+), ([0-9.eE+-]+) s\)", lines[0])
    assert m, f"bad run line: {lines[0]!r}"
    out["run_id"], out["experiment_id"], out["seconds"] = m.group(1), m.group(2), float(m.group(3))
    rest = lines[1:]
    if rest and rest[0].startswith("metrics  "):
        tokens = rest[0][len("metrics  "):].split()
        assert len(tokens) % 2 == 0, rest[0]
        out["metrics"] = {tokens[i]: float(tokens[i + 1]) for i in range(0, len(tokens), 2)}
        rest = rest[1:]
    m = re.fullmatch(r"model    (mlflow-artifacts:/\S+)", rest[0])
    assert m, f"bad model line: {rest[0]!r}"
    out["model_uri"] = m.group(1)
    rest = rest[1:]
    if rest:
        m = re.fullmatch(r"version  (\S+) (\d+) \((\w+)\)", rest[0])
        assert m, f"bad version line: {rest[0]!r}"
        out["version"] = (m.group(1), m.group(2), m.group(3))
        rest = rest[1:]
    assert rest == [], f"unexpected output lines: {rest}"
    return out


def kv(items):
    return {i["key"]: i["value"] for i in items or []}


def get_run(k, run_id):
    run = k.ok("GET", "runs/get", {"run_id": run_id})["run"]
    return {"info": run["info"], "params": kv(run["data"].get("params")),
            "tags": kv(run["data"].get("tags")),
            "metrics": {m["key"]: m["value"] for m in run["data"].get("metrics", [])},
            "inputs": run.get("inputs", {}).get("dataset_inputs", [])}


def search_runs(k, experiment_name):
    exp = k.ok("GET", "experiments/get-by-name", {"experiment_name": experiment_name})
    eid = exp["experiment"]["experiment_id"]
    runs = k.ok("POST", "runs/search", {"experiment_ids": [eid], "run_view_type": "ALL",
                                        "max_results": 1000}).get("runs", [])
    return eid, runs


def artifact_rel(uri):
    assert uri.startswith("mlflow-artifacts:/"), uri
    return uri[len("mlflow-artifacts:"):].lstrip("/")


def list_artifacts(k, rel):
    r = k.session.get(k.url + ART, params={"path": rel}, timeout=30)
    assert r.status_code == 200, r.text
    return {f["path"]: f for f in r.json().get("files", [])}


def get_artifact(k, rel):
    r = k.session.get(k.url + ART + "/" + rel, timeout=60)
    assert r.status_code == 200, f"GET {rel} -> {r.status_code}: {r.text[:200]}"
    return r.content


def put_artifact(k, rel, data):
    r = k.session.put(k.url + ART + "/" + rel, data=data, timeout=60)
    assert r.status_code == 200, f"PUT {rel} -> {r.status_code}: {r.text[:200]}"


def download_tree(k, rel, dest):
    """Downloads every file under artifact path rel into dest; returns relative names."""
    names = []
    for name, info in list_artifacts(k, rel).items():
        if info.get("is_dir"):
            names += [name + "/" + n for n in download_tree(k, rel + "/" + name,
                                                             os.path.join(dest, name))]
        else:
            os.makedirs(dest, exist_ok=True)
            with open(os.path.join(dest, name), "wb") as f:
                f.write(get_artifact(k, rel + "/" + name))
            names.append(name)
    return sorted(names)


def encode(pipeline, df):
    """Encodes raw rows (a DataFrame of strings) by keel's pipeline.json rules."""
    missing = set(pipeline["missing_markers"])
    native = pipeline["encoding"] == "native"
    parts = []
    for col in pipeline["columns"]:
        values = df[col["name"]].tolist()
        is_missing = [v is None or str(v).strip(" \t") in missing for v in values]
        if col["type"] == "numeric":
            parts.append([[np.nan if m else float(v)] for v, m in zip(values, is_missing)])
        elif col["type"] == "boolean":
            parts.append([[np.nan if m else float(str(v).strip().lower() in ("true", "yes", "1"))]
                          for v, m in zip(values, is_missing)])
        elif native:
            index = {c: i for i, c in enumerate(col["categories"])}
            parts.append([[np.nan if m else float(index.get(v, np.nan))]
                          for v, m in zip(values, is_missing)])
        else:
            cats = col["categories"]
            parts.append([[0.0 if m else float(v == c) for c in cats]
                          for v, m in zip(values, is_missing)])
    x = np.hstack([np.asarray(p, dtype=np.float64) for p in parts]).astype(np.float32)
    assert x.shape[1] == len(pipeline["feature_names"]), (x.shape, len(pipeline["feature_names"]))
    return x


def read_raw(path):
    """A CSV as text, exactly as keel sees the fields."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_split(cls):
    """The peers' split of the churn data (80/20, random_state=42) as two CSV files."""
    df = pd.read_csv(CHURN)
    train, test = train_test_split(df, test_size=0.2, random_state=42)
    cls.train_csv = os.path.join(cls.tmp, "churn_train.csv")
    cls.test_csv = os.path.join(cls.tmp, "churn_test.csv")
    train.to_csv(cls.train_csv, index=False)
    test.to_csv(cls.test_csv, index=False)
    cls.raw_train = read_raw(cls.train_csv)
    cls.raw_test = read_raw(cls.test_csv)


class TrainCase(unittest.TestCase):
    """A server of its own (with helpers for keel train)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="keel-e2e-train-")
        cls.k = KeelServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, *args, remote=True, cwd=None):
        p = cli(self.k, "train", *args, remote=remote, cwd=cwd or self.tmp)
        self.assertEqual(p.returncode, 0, f"keel train {args} failed: {p.stderr}")
        self.assertProgressOnly(p.stderr)
        return parse_train_output(p.stdout)

    def assertProgressOnly(self, stderr):
        for line in stderr.splitlines():
            self.assertRegex(line, PROGRESS, f"unexpected stderr line in:\n{stderr}")

    def assertOneErrorLine(self, p, what=""):
        """Fails with exactly one `keel: error:` line, the last on stderr; the rest is progress."""
        self.assertNotEqual(p.returncode, 0, f"{what} should fail; stdout: {p.stdout}")
        self.assertEqual(p.stdout, "", what)
        lines = p.stderr.splitlines()
        self.assertTrue(lines, f"{what}: no error printed")
        errors = [l for l in lines if "keel: error:" in l]
        self.assertEqual(len(errors), 1, f"{what}: stderr was {p.stderr!r}")
        self.assertTrue(lines[-1].startswith("keel: error: "), f"{what}: {p.stderr!r}")
        self.assertGreater(len(lines[-1].strip()), len("keel: error:"), what)
        for line in lines[:-1]:
            self.assertRegex(line, PROGRESS, f"{what}: stderr was {p.stderr!r}")
        return lines[-1]

    def model_files(self, model_uri):
        """{relative name: bytes} of a logged model."""
        dest = tempfile.mkdtemp(dir=self.tmp)
        names = download_tree(self.k, artifact_rel(model_uri), dest)
        out = {}
        for n in names:
            with open(os.path.join(dest, n), "rb") as f:
                out[n] = f.read()
        return out


# --- 1. train churn, embedded and remote ----------------------------------------------------------
class TrainChurnTest(TrainCase):

    def check_run(self, out, experiment, model_name, git_commit, dirty):
        k = self.k
        rid = out["run_id"]
        run = get_run(k, rid)
        info = run["info"]
        self.assertEqual(info["status"], "FINISHED")
        self.assertEqual(info["experiment_id"], out["experiment_id"])
        exp = k.ok("GET", "experiments/get-by-name", {"experiment_name": experiment})
        self.assertEqual(exp["experiment"]["experiment_id"], out["experiment_id"])
        self.assertEqual(out["model_uri"], info["artifact_uri"] + "/model")
        self.assertEqual(out["model_uri"],
                         f"mlflow-artifacts:/{out['experiment_id']}/{rid}/artifacts/model")
        self.assertGreater(out["seconds"], 0)

        # Metrics: printed = recorded; the full binary set for train_ and valid_.
        m = run["metrics"]
        self.assertEqual(set(m), {f"{p}_{n}" for p in ("train", "valid") for n in BINARY_METRICS}
                         | {"rounds"}, m)
        self.assertEqual(out["metrics"], {k2: v for k2, v in m.items() if k2.startswith("valid_")})
        self.assertEqual(m["rounds"], 60)
        self.assertGreater(m["valid_auc"], 0.85)
        self.assertLessEqual(m["valid_auc"], 1.0)
        self.assertGreater(m["train_auc"], m["valid_auc"])
        for p in ("train", "valid"):
            for n in ("accuracy", "precision", "recall", "f1"):
                self.assertTrue(0 <= m[f"{p}_{n}"] <= 1, (p, n, m))
            self.assertGreater(m[f"{p}_log_loss"], 0)
        # Churn is ~14% positive: a model beating the majority class.
        self.assertGreater(m["valid_accuracy"], 0.9)

        # Params: the model's, num_boost_round and everything --rerun needs.
        p = run["params"]
        expected = {
            "keel.model": "xgboost", "keel.target": "churn", "keel.data": CHURN, "keel.seed": "42",
            "keel.task": "binary", "keel.positive_class": "yes", "keel.categorical": "onehot",
            "keel.output_name": "churn_probability", "keel.param.n_estimators": "60",
            "keel.param.max_depth": "4", "num_boost_round": "60", "objective": "binary:logistic",
            "eval_metric": "auc", "tree_method": "hist", "seed": "42", "max_depth": "4",
        }
        self.assertEqual(float(p["keel.validation_fraction"]), 0.2)
        for key, value in expected.items():
            self.assertEqual(p.get(key), value, f"param {key}")

        # Tags: data version, rows, code version, keel version, user.
        t = run["tags"]
        self.assertEqual(t["keel.data.train.sha256"], sha256_of(CHURN))
        self.assertEqual(t["keel.data.train.rows"], "5000")
        self.assertEqual(t["keel.data.train.columns"], "20")
        self.assertEqual(t["keel.data.train.path"], CHURN)
        self.assertEqual(t["keel.rows.train"], "4000")
        self.assertEqual(t["keel.rows.validation"], "1000")
        self.assertEqual(t["keel.task"], "binary")
        self.assertEqual(t["keel.model.format"], "xgboost-json")
        self.assertEqual(t["keel.version"], self.version)
        self.assertEqual(t["mlflow.user"], CLI_USER)
        self.assertEqual(info.get("user_id"), CLI_USER)
        self.assertEqual(t["mlflow.source.git.commit"], git_commit)
        self.assertEqual(t["keel.code.dirty"], dirty)
        self.assertNotIn("keel.data.train.snapshot", t)
        self.assertNotIn("keel.rerun_of", t)

        # The dataset entry of log-inputs.
        self.assertEqual(len(run["inputs"]), 1, run["inputs"])
        ds = run["inputs"][0]
        self.assertEqual(kv(ds.get("tags")).get("mlflow.data.context"), "train")
        self.assertEqual(ds["dataset"]["name"], "mlc_churn.csv")
        self.assertEqual(ds["dataset"]["digest"], sha256_of(CHURN)[:8])
        self.assertEqual(json.loads(ds["dataset"]["source"]), {"uri": CHURN})
        self.assertEqual(json.loads(ds["dataset"]["profile"])["num_rows"], 5000)

        # Artifacts.
        rel = artifact_rel(out["model_uri"])
        top = list_artifacts(k, rel)
        self.assertEqual(set(top), {"MLmodel", "model.json", "keel", "input_example.json"}, top)
        self.assertTrue(top["keel"]["is_dir"])
        self.assertEqual(set(list_artifacts(k, rel + "/keel")),
                         {"pipeline.json", "profile.json", "reference.keelref"})
        mlmodel = yaml.safe_load(get_artifact(k, rel + "/MLmodel"))
        self.assertEqual(set(mlmodel["flavors"]), {"keel", "xgboost"})
        self.assertEqual(mlmodel["flavors"]["xgboost"]["data"], "model.json")
        self.assertEqual(mlmodel["flavors"]["xgboost"]["model_format"], "json")
        self.assertEqual(mlmodel["flavors"]["xgboost"]["xgb_version"], xgb.__version__)
        keel_flavor = mlmodel["flavors"]["keel"]
        self.assertEqual(keel_flavor["model"], "model.json")
        self.assertEqual(keel_flavor["pipeline"], "keel/pipeline.json")
        self.assertEqual(keel_flavor["task"], "binary")
        self.assertEqual(keel_flavor["classes"], ["no", "yes"])
        self.assertEqual(keel_flavor["output_name"], "churn_probability")
        self.assertEqual(mlmodel["run_id"], rid)
        booster = xgb.Booster(model_file=bytearray(get_artifact(k, rel + "/model.json")))
        self.assertEqual(booster.num_boosted_rounds(), 60)
        example = json.loads(get_artifact(k, rel + "/input_example.json"))
        self.assertEqual(len(example["columns"]), 19)
        self.assertNotIn("churn", example["columns"])

        # The registered version.
        name, version, status = out["version"]
        self.assertEqual((name, status), (model_name, "READY"))
        mv = k.ok("GET", "model-versions/get", {"name": name, "version": version})["model_version"]
        self.assertEqual(mv["status"], "READY")
        self.assertEqual(mv["run_id"], rid)
        self.assertEqual(mv["source"], out["model_uri"])
        return run

    def test_train_churn_embedded_and_remote(self):
        self.version = subprocess.run([keel_binary(), "--version"], capture_output=True,
                                      text=True, timeout=30).stdout.split()[-1]
        # A git repository as the working directory: the run records the commit.
        repo = os.path.join(self.tmp, "repo")
        os.makedirs(repo)
        with open(os.path.join(repo, "train.sh"), "w") as f:
            f.write("keel train\n")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
               "-c", "commit.gpgsign=false"]
        for args in (["init", "-q"], ["add", "train.sh"], ["commit", "-q", "-m", "one"]):
            subprocess.run(git + args, cwd=repo, check=True, capture_output=True, timeout=30)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        args = ["--data", CHURN, "--target", "churn", "--param", "n_estimators=60",
                "--param", "max_depth=4"]

        # Embedded: the CLI opens the store itself (no server running).
        self.k.stop()
        emb = self.train(*args, "--experiment", "churn-embedded", "--register", "churn-emb",
                         remote=False, cwd=repo)
        self.k.start()
        r1 = self.check_run(emb, "churn-embedded", "churn-emb", commit, "false")

        # Remote, with the working tree dirty.
        with open(os.path.join(repo, "train.sh"), "a") as f:
            f.write("# edited\n")
        before = sorted(os.listdir(repo))
        rem = self.train(*args, "--experiment", "churn-remote", "--register", "churn-rem",
                         "--run-name", "remote-one", cwd=repo)
        self.assertEqual(sorted(os.listdir(repo)), before, "remote train wrote into its cwd")
        r2 = self.check_run(rem, "churn-remote", "churn-rem", commit, "true")
        self.assertEqual(r2["tags"]["mlflow.runName"], "remote-one")
        self.assertNotEqual(rem["experiment_id"], emb["experiment_id"])
        # Same data, seed and params: the same model and metrics either way.
        self.assertEqual(r1["metrics"], r2["metrics"])


# --- 2. parity with xgboost/sklearn on an explicit split; 4. native categoricals ------------------
class ParityTest(TrainCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        write_split(cls)
        cls.y_train = (cls.raw_train["churn"] == "yes").astype(int).to_numpy()
        cls.y_test = (cls.raw_test["churn"] == "yes").astype(int).to_numpy()

    def check_against_xgboost(self, out, rounds):
        run = get_run(self.k, out["run_id"])
        m = run["metrics"]
        files = self.model_files(out["model_uri"])
        pipeline = json.loads(files["keel/pipeline.json"])
        booster = xgb.Booster(model_file=bytearray(files["model.json"]))
        self.assertEqual(booster.num_boosted_rounds(), rounds)
        self.assertEqual(booster.num_features(), len(pipeline["feature_names"]))
        native = pipeline["encoding"] == "native"
        kw = {"feature_names": pipeline["feature_names"]}
        if native:
            kw.update(feature_types=pipeline["feature_types"], enable_categorical=True)
        x_test = encode(pipeline, self.raw_test)
        pred = booster.predict(xgb.DMatrix(x_test, **kw))
        x_train = encode(pipeline, self.raw_train)
        pred_train = booster.predict(xgb.DMatrix(x_train, **kw))
        # What keel logged is what the reference computes on xgboost's predictions.
        self.assertAlmostEqual(m["valid_auc"], roc_auc_score(self.y_test, pred), delta=1e-6)
        self.assertAlmostEqual(m["train_auc"], roc_auc_score(self.y_train, pred_train), delta=1e-6)
        self.assertAlmostEqual(m["valid_log_loss"], log_loss(self.y_test, pred.astype(np.float64)),
                               delta=1e-5)
        self.assertAlmostEqual(m["valid_accuracy"], float(np.mean((pred >= 0.5) == self.y_test)),
                               delta=1e-9)
        t = run["tags"]
        self.assertEqual(t["keel.rows.train"], str(len(self.y_train)))
        self.assertEqual(t["keel.rows.validation"], str(len(self.y_test)))
        self.assertEqual(t["keel.data.validation.sha256"], sha256_of(self.test_csv))
        self.assertEqual(t["keel.data.train.sha256"], sha256_of(self.train_csv))
        self.assertEqual(run["params"]["keel.validation_data"], self.test_csv)
        contexts = {kv(d.get("tags")).get("mlflow.data.context"): d["dataset"]
                    for d in run["inputs"]}
        self.assertEqual(set(contexts), {"train", "validation"})
        self.assertEqual(contexts["validation"]["digest"], sha256_of(self.test_csv)[:8])
        self.assertEqual(json.loads(contexts["validation"]["profile"])["num_rows"],
                         len(self.y_test))
        return m, pipeline, booster, x_train

    def test_parity_with_reference(self):
        # The serving peer's XGBoost: 400 trees, depth 6, lr 0.05, hist, seed 42.
        out = self.train("--data", self.train_csv, "--validation", self.test_csv,
                         "--target", "churn", "--param", "n_estimators=400",
                         "--param", "max_depth=6", "--param", "learning_rate=0.05",
                         "--experiment", "parity")
        m, pipeline, booster, x_train = self.check_against_xgboost(out, 400)
        self.assertEqual(pipeline["encoding"], "one_hot")
        self.assertEqual(len(pipeline["feature_names"]), 73)  # 15 numeric + 58 one-hot
        self.assertEqual(get_run(self.k, out["run_id"])["params"]["eta"], "0.05")
        # The peer's figure on this split (peers/serving/README.md: 0.9313).
        self.assertAlmostEqual(m["valid_auc"], 0.9313, delta=0.01)
        # xgboost itself, trained on keel's encoding with the same parameters,
        # reaches the same quality.
        ref = xgb.train({"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 6,
                         "eta": 0.05, "tree_method": "hist", "seed": 42, "nthread": 1},
                        xgb.DMatrix(x_train, label=self.y_train,
                                    feature_names=pipeline["feature_names"]), 400)
        ref_auc = roc_auc_score(self.y_test, ref.predict(xgb.DMatrix(
            encode(pipeline, self.raw_test), feature_names=pipeline["feature_names"])))
        self.assertAlmostEqual(m["valid_auc"], ref_auc, delta=0.005)

    def test_native_categorical(self):
        out = self.train("--data", self.train_csv, "--validation", self.test_csv,
                         "--target", "churn", "--categorical", "native",
                         "--param", "n_estimators=60", "--experiment", "native")
        m, pipeline, booster, _ = self.check_against_xgboost(out, 60)
        self.assertEqual(pipeline["encoding"], "native")
        self.assertEqual(len(pipeline["feature_names"]), 19)
        types = dict(zip(pipeline["feature_names"], pipeline["feature_types"]))
        for c in ("state", "area_code", "international_plan", "voice_mail_plan"):
            self.assertEqual(types[c], "c", c)
        self.assertEqual(types["total_day_minutes"], "q")
        # The trees split on categories (not on category indexes as numbers).
        learner = json.loads(booster.save_raw("json"))["learner"]
        trees = learner["gradient_booster"]["model"]["trees"]
        self.assertTrue(any(1 in t["split_type"] for t in trees), "no categorical split")
        self.assertGreater(m["valid_auc"], 0.85)
        self.assertEqual(get_run(self.k, out["run_id"])["params"]["keel.categorical"], "native")


# --- 3. other tasks and models --------------------------------------------------------------------
class TasksTest(TrainCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        write_split(cls)

    def predict(self, out, raw):
        files = self.model_files(out["model_uri"])
        pipeline = json.loads(files["keel/pipeline.json"])
        booster = xgb.Booster(model_file=bytearray(files["model.json"]))
        pred = booster.predict(xgb.DMatrix(encode(pipeline, raw),
                                           feature_names=pipeline["feature_names"]))
        return files, pipeline, pred

    def test_regression(self):
        out = self.train("--data", self.train_csv, "--validation", self.test_csv,
                         "--target", "total_day_charge", "--drop", "churn",
                         "--param", "n_estimators=60", "--experiment", "tasks")
        run = get_run(self.k, out["run_id"])
        m = run["metrics"]
        self.assertEqual(set(m), {f"{p}_{n}" for p in ("train", "valid")
                                  for n in REGRESSION_METRICS} | {"rounds"})
        self.assertEqual(set(out["metrics"]), {"valid_" + n for n in REGRESSION_METRICS})
        files, pipeline, pred = self.predict(out, self.raw_test)
        self.assertNotIn("churn", [c["name"] for c in pipeline["columns"]])
        self.assertNotIn("total_day_charge", [c["name"] for c in pipeline["columns"]])
        y = self.raw_test["total_day_charge"].astype(float).to_numpy(dtype=np.float32)
        err = pred.astype(np.float64) - y.astype(np.float64)
        self.assertAlmostEqual(m["valid_rmse"], float(np.sqrt(np.mean(err ** 2))), delta=1e-5)
        self.assertAlmostEqual(m["valid_mae"], float(np.mean(np.abs(err))), delta=1e-5)
        r2 = 1 - np.sum(err ** 2) / np.sum((y - y.astype(np.float64).mean()) ** 2)
        self.assertAlmostEqual(m["valid_r2"], float(r2), delta=1e-6)
        # total_day_charge is a fixed rate times total_day_minutes.
        self.assertGreater(m["valid_r2"], 0.99)
        p = run["params"]
        self.assertEqual(p["keel.task"], "regression")
        self.assertEqual(p["objective"], "reg:squarederror")
        self.assertEqual(p["keel.drop"], "churn")
        self.assertEqual(p["keel.output_name"], "total_day_charge")
        self.assertNotIn("keel.positive_class", p)
        self.assertEqual(run["tags"]["keel.task"], "regression")
        example = json.loads(files["input_example.json"])
        self.assertNotIn("churn", example["columns"])
        self.assertNotIn("total_day_charge", example["columns"])
        self.assertEqual(len(example["columns"]), 18)

    def test_multiclass(self):
        out = self.train("--data", self.train_csv, "--validation", self.test_csv,
                         "--target", "area_code", "--param", "n_estimators=30",
                         "--experiment", "tasks")
        run = get_run(self.k, out["run_id"])
        m = run["metrics"]
        self.assertEqual(set(m), {f"{p}_{n}" for p in ("train", "valid")
                                  for n in MULTICLASS_METRICS} | {"rounds"})
        self.assertEqual(set(out["metrics"]), {"valid_" + n for n in MULTICLASS_METRICS})
        self.assertEqual(run["params"]["keel.task"], "multiclass")
        self.assertEqual(run["params"]["num_class"], "3")
        self.assertEqual(run["params"]["objective"], "multi:softprob")
        files, pipeline, proba = self.predict(out, self.raw_test)
        classes = ["area_code_408", "area_code_415", "area_code_510"]
        self.assertEqual(yaml.safe_load(files["MLmodel"])["flavors"]["keel"]["classes"], classes)
        self.assertEqual(proba.shape, (len(self.raw_test), 3))
        y = self.raw_test["area_code"].map(classes.index).to_numpy()
        self.assertAlmostEqual(m["valid_accuracy"], float(np.mean(proba.argmax(axis=1) == y)),
                               delta=1e-9)
        self.assertAlmostEqual(m["valid_log_loss"],
                               log_loss(y, proba.astype(np.float64), labels=[0, 1, 2]), delta=1e-5)
        self.assertAlmostEqual(m["valid_f1_macro"],
                               f1_score(y, proba.argmax(axis=1), average="macro"), delta=1e-9)
        # area_code is unrelated to the other columns: about a uniform guess.
        self.assertLess(m["valid_log_loss"], np.log(3) + 0.1)
        self.assertGreater(m["train_accuracy"], m["valid_accuracy"])

    def test_keel_linear_and_logistic(self):
        out = self.train("--data", CHURN, "--target", "total_day_charge", "--drop", "churn",
                         "--model", "linear", "--experiment", "tasks")
        run = get_run(self.k, out["run_id"])
        m = run["metrics"]
        self.assertEqual(set(m), {f"{p}_{n}" for p in ("train", "valid")
                                  for n in REGRESSION_METRICS})
        self.assertGreater(m["valid_r2"], 0.999)  # an exactly linear relation
        self.assertEqual(run["tags"]["keel.model.format"], "keel-linear")
        self.assertIn("l2", run["params"])
        self.assertIn("max_iter", run["params"])
        mlmodel = yaml.safe_load(self.model_files(out["model_uri"])["MLmodel"])
        self.assertEqual(set(mlmodel["flavors"]), {"keel"})
        self.assertEqual(mlmodel["flavors"]["keel"]["format"], "keel-linear")

        out = self.train("--data", CHURN, "--target", "churn", "--model", "logistic",
                         "--experiment", "tasks")
        run = get_run(self.k, out["run_id"])
        m = run["metrics"]
        self.assertEqual(set(m), {f"{p}_{n}" for p in ("train", "valid") for n in BINARY_METRICS})
        self.assertGreater(m["valid_auc"], 0.75)
        self.assertGreater(m["valid_accuracy"], 0.8)
        self.assertEqual(run["params"]["keel.positive_class"], "yes")
        self.assertEqual(run["tags"]["keel.model.format"], "keel-linear")


# --- 5. bad input ---------------------------------------------------------------------------------
class BadInputTest(TrainCase):

    def test_bad_input(self):
        exp = "bad-input-" + uid()
        ragged = os.path.join(self.tmp, "ragged.csv")
        with open(ragged, "w") as f:
            f.write("a,b,y\n1,2,0\n3,4,1\n5,6,7,1\n7,8,0\n")
        missing_file = os.path.join(self.tmp, "no-such-file.csv")
        common = ["--experiment", exp]
        cases = [
            # (run name, args, text the message must contain, run must exist as FAILED)
            ("no-data", ["--target", "churn"], "--data", False),
            ("no-target", ["--data", CHURN], "--target", False),
            ("unknown-target", ["--data", CHURN, "--target", "no_such_column"],
             "no_such_column", True),
            ("missing-file", ["--data", missing_file, "--target", "churn"], missing_file, True),
            ("ragged", ["--data", ragged, "--target", "y"], ragged + ":4", True),
            ("bad-rounds", ["--data", CHURN, "--target", "churn", "--param", "n_estimators=abc"],
             "n_estimators", True),
            ("bad-model", ["--data", CHURN, "--target", "churn", "--model", "forest"],
             "forest", None),
            ("bad-positive", ["--data", CHURN, "--target", "churn", "--positive-class", "maybe"],
             "maybe", True),
            ("binary-3", ["--data", CHURN, "--target", "area_code", "--task", "binary"],
             "area_code", True),
            ("logistic-regression", ["--data", CHURN, "--target", "total_day_charge",
                                     "--model", "logistic"], "binary", None),
        ]
        for name, args, needle, started in cases:
            with self.subTest(name):
                p = cli(self.k, "train", *args, *common, "--run-name", name, cwd=self.tmp)
                line = self.assertOneErrorLine(p, name)
                self.assertIn(needle, line)
        # No server behind the tracking URI.
        down = KeelServer()
        down.port = free_port()
        p = cli(down, "train", "--data", CHURN, "--target", "churn", cwd=self.tmp)
        self.assertOneErrorLine(p, "unreachable server")
        shutil.rmtree(down.data_dir, ignore_errors=True)
        # Runs that started are FAILED (with an end time), never left RUNNING.
        _, runs = search_runs(self.k, exp)
        by_name = {}
        for r in runs:
            by_name.setdefault(r["info"]["run_name"], []).append(r["info"])
        for name, _, _, started in cases:
            with self.subTest(run=name):
                if started is False:
                    self.assertNotIn(name, by_name)
                elif started:
                    self.assertEqual(len(by_name.get(name, [])), 1, by_name.keys())
                for info in by_name.get(name, []):
                    self.assertEqual(info["status"], "FAILED", info)
                    self.assertGreaterEqual(int(info.get("end_time", 0)), int(info["start_time"]))
        self.assertTrue(all(r["info"]["status"] == "FAILED" for r in runs), runs)


# --- 6. snapshots and reruns ----------------------------------------------------------------------
class RerunTest(TrainCase):

    def test_snapshot_then_rerun_reproduces(self):
        d1 = os.path.join(self.tmp, "a")
        d2 = os.path.join(self.tmp, "b")
        os.makedirs(d1)
        os.makedirs(d2)
        data = os.path.join(d1, "churn.csv")
        shutil.copy(CHURN, data)
        sha = sha256_of(data)
        args = ["--target", "churn", "--param", "n_estimators=40", "--snapshot-data",
                "--experiment", "snap"]
        first = self.train("--data", data, *args)
        run1 = get_run(self.k, first["run_id"])
        uri = f"mlflow-artifacts:/datasets/sha256/{sha}/churn.csv"
        self.assertEqual(run1["tags"]["keel.data.train.snapshot"], uri)
        with open(data, "rb") as f:
            self.assertEqual(get_artifact(self.k, artifact_rel(uri)), f.read())
        stored = os.path.join(self.k.artifact_root, "datasets", "sha256", sha, "churn.csv")
        mtime = os.stat(stored).st_mtime_ns

        # The same bytes from another place: the snapshot is reused, not stored again.
        other = os.path.join(d2, "churn.csv")
        shutil.copy(data, other)
        time.sleep(0.05)
        second = self.train("--data", other, *args)
        run2 = get_run(self.k, second["run_id"])
        self.assertEqual(run2["tags"]["keel.data.train.snapshot"], uri)
        self.assertEqual(list_artifacts(self.k, f"datasets/sha256/{sha}").keys(), {"churn.csv"})
        self.assertEqual(os.stat(stored).st_mtime_ns, mtime, "the snapshot was written again")

        # The original file changes; --rerun trains on the snapshot and reproduces the run.
        with open(data, "a") as f:
            f.write('"KS",1,"area_code_415","no","no",0,1,1,1,1,1,1,1,1,1,1,1,1,1,"yes"\n')
        p = cli(self.k, "train", "--rerun", first["run_id"], cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        rerun = parse_train_output(p.stdout)
        run3 = get_run(self.k, rerun["run_id"])
        self.assertNotEqual(rerun["run_id"], first["run_id"])
        self.assertEqual(run3["info"]["experiment_id"], run1["info"]["experiment_id"])
        self.assertEqual(run3["info"]["status"], "FINISHED")
        self.assertEqual(run3["tags"]["keel.rerun_of"], first["run_id"])
        self.assertEqual(run3["metrics"], run1["metrics"])
        self.assertEqual(run3["params"], run1["params"])
        self.assertEqual(run3["tags"]["keel.data.train.sha256"], sha)
        self.assertEqual(run3["tags"]["keel.data.train.snapshot"], uri)
        m1 = self.model_files(first["model_uri"])
        m3 = self.model_files(rerun["model_uri"])
        self.assertEqual(m3["model.json"], m1["model.json"])
        self.assertEqual(m3["keel/pipeline.json"], m1["keel/pipeline.json"])

    def test_rerun_without_snapshot_detects_changed_file(self):
        d = os.path.join(self.tmp, "c")
        os.makedirs(d)
        data = os.path.join(d, "churn.csv")
        shutil.copy(CHURN, data)
        exp = "nosnap-" + uid()
        first = self.train("--data", data, "--target", "churn", "--param", "n_estimators=30",
                           "--experiment", exp)
        run1 = get_run(self.k, first["run_id"])
        self.assertNotIn("keel.data.train.snapshot", run1["tags"])
        # Unchanged: the rerun reads the file again and reproduces the run.
        p = cli(self.k, "train", "--rerun", first["run_id"], cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        again = get_run(self.k, parse_train_output(p.stdout)["run_id"])
        self.assertEqual(again["metrics"], run1["metrics"])
        self.assertEqual(again["tags"]["keel.rerun_of"], first["run_id"])

        # Changed: one value differs.
        with open(data) as f:
            text = f.read()
        lines = text.split("\n")
        lines[1] = lines[1].replace(",128,", ",129,", 1)
        self.assertNotEqual("\n".join(lines), text)
        with open(data, "w") as f:
            f.write("\n".join(lines))
        _, before = search_runs(self.k, exp)
        p = cli(self.k, "train", "--rerun", first["run_id"], cwd=self.tmp)
        line = self.assertOneErrorLine(p, "rerun of a changed file")
        self.assertIn("changed", line)
        self.assertIn(data, line)
        self.assertIn(first["run_id"], line)
        _, after = search_runs(self.k, exp)
        self.assertEqual(len(after), len(before), "a failed rerun must not start a run")

        # A run that keel train did not make cannot be rerun.
        eid = run1["info"]["experiment_id"]
        foreign = self.k.ok("POST", "runs/create", {"experiment_id": eid})["run"]["info"]["run_id"]
        line = self.assertOneErrorLine(cli(self.k, "train", "--rerun", foreign, cwd=self.tmp),
                                       "rerun of a foreign run")
        self.assertIn("keel train", line)
        line = self.assertOneErrorLine(cli(self.k, "train", "--rerun", "f" * 32, cwd=self.tmp),
                                       "rerun of an unknown run")
        self.assertIn("f" * 32, line)


# --- 7. Ctrl-C ------------------------------------------------------------------------------------
class InterruptTest(TrainCase):

    def test_sigint_marks_run_killed(self):
        exp = "sigint-" + uid()
        cmd = [keel_binary(), "--tracking-uri", self.k.url, "train", "--data", CHURN,
               "--target", "churn", "--param", "n_estimators=100000", "--param", "max_depth=8",
               "--experiment", exp]
        started_at = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=clean_env(), cwd=self.tmp)
        lines = []
        started = threading.Event()

        def pump():
            for line in proc.stderr:
                lines.append(line.rstrip("\n"))
                if line.startswith("round "):
                    started.set()
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            self.assertTrue(started.wait(60), f"training never started: {lines}")
            time.sleep(1.5)
            self.assertIsNone(proc.poll(), "training ended before the interrupt")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=15)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(10)
        stdout = proc.stdout.read()
        proc.stdout.close()
        proc.stderr.close()
        self.assertNotEqual(rc, 0)
        self.assertGreater(rc, 0, "keel should report the interrupt, not die of the signal")
        self.assertLess(elapsed, 10)
        self.assertEqual(stdout, "")
        errors = [l for l in lines if "keel: error:" in l]
        self.assertEqual(len(errors), 1, lines)
        self.assertEqual(lines[-1], errors[0])
        self.assertIn("interrupted", errors[0])
        for line in lines[:-1]:
            self.assertRegex(line, PROGRESS)
        # Not a terminal: round lines are throttled (one per 5 s), not one per round.
        rounds = [l for l in lines if l.startswith("round ")]
        self.assertLessEqual(len(rounds), 2 + (time.monotonic() - started_at) / 5, rounds)
        last_round = int(re.match(r"round (\d+)/100000", rounds[-1]).group(1))
        _, runs = search_runs(self.k, exp)
        self.assertEqual(len(runs), 1, runs)
        info = runs[0]["info"]
        self.assertEqual(info["status"], "KILLED")
        self.assertGreaterEqual(int(info["end_time"]), int(info["start_time"]))
        self.assertGreaterEqual(last_round, 1)
        # Nothing was logged as a model.
        self.assertNotIn("model", list_artifacts(self.k, artifact_rel(info["artifact_uri"])))


# --- 8. registration checks -----------------------------------------------------------------------
class RegistrationTest(TrainCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        p = cli(cls.k, "train", "--data", CHURN, "--target", "churn", "--param", "n_estimators=30",
                "--experiment", "reg", cwd=cls.tmp)
        assert p.returncode == 0, p.stderr
        cls.trained = parse_train_output(p.stdout)
        cls.package = os.path.join(cls.tmp, "package", "model")
        download_tree(cls.k, artifact_rel(cls.trained["model_uri"]), cls.package)

    def register_ok(self, name, path, fmt):
        p = cli(self.k, "models", "register", name, path, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        source_re = rf"mlflow-artifacts:/registered-models/{re.escape(name)}/[0-9a-f]+/model"
        m = re.fullmatch(rf"registered {re.escape(name)} version (\d+) \(READY, {fmt}, "
                         rf"({source_re})\)", p.stdout.strip())
        self.assertTrue(m, p.stdout)
        version, source = m.group(1), m.group(2)
        mv = self.k.ok("GET", "model-versions/get", {"name": name, "version": version})
        self.assertEqual(mv["model_version"]["status"], "READY")
        self.assertEqual(mv["model_version"]["source"], source)
        return version, source

    def create_version(self, name, source):
        self.k.post("registered-models/create", {"name": name})
        return self.k.post("model-versions/create", {"name": name, "source": source})

    def assertServerUp(self):
        self.assertIsNone(self.k.proc.poll(), "the server died")
        self.assertEqual(requests.get(self.k.url + "/health", timeout=5).status_code, 200)

    def test_register_local_directory(self):
        name = "local-dir-" + uid()
        version, source = self.register_ok(name, self.package, "xgboost-json")
        self.assertEqual(version, "1")
        rel = artifact_rel(source)
        with open(os.path.join(self.package, "model.json"), "rb") as f:
            self.assertEqual(get_artifact(self.k, rel + "/model.json"), f.read())
        with open(os.path.join(self.package, "keel", "pipeline.json"), "rb") as f:
            self.assertEqual(get_artifact(self.k, rel + "/keel/pipeline.json"), f.read())
        # A second version of the same model.
        version, _ = self.register_ok(name, self.package, "xgboost-json")
        self.assertEqual(version, "2")

    def test_register_bare_xgboost_files(self):
        df = pd.read_csv(CHURN)
        x = df[["total_day_minutes", "number_customer_service_calls",
                "total_eve_minutes"]].to_numpy(dtype=np.float32)
        y = (df["churn"] == "yes").astype(int).to_numpy()
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                            xgb.DMatrix(x, label=y), 20)
        for ext, fmt in (("json", "xgboost-json"), ("ubj", "xgboost-ubj")):
            with self.subTest(ext):
                path = os.path.join(self.tmp, f"bare.{ext}")
                booster.save_model(path)
                name = f"bare-{ext}-" + uid()
                _, source = self.register_ok(name, path, fmt)
                rel = artifact_rel(source)
                mlmodel = yaml.safe_load(get_artifact(self.k, rel + "/MLmodel"))
                self.assertEqual(mlmodel["flavors"]["keel"]["format"], fmt)
                model_file = mlmodel["flavors"]["keel"]["model"]
                self.assertEqual(model_file, f"model.{ext}")
                with open(path, "rb") as f:
                    self.assertEqual(get_artifact(self.k, rel + "/" + model_file), f.read())
        # A broken model file is refused before anything is uploaded or created.
        broken = os.path.join(self.tmp, "broken.json")
        with open(os.path.join(self.tmp, "bare.json"), "rb") as f:
            data = f.read()
        with open(broken, "wb") as f:
            f.write(data[:len(data) // 2])
        name = "broken-file-" + uid()
        p = cli(self.k, "models", "register", name, broken, cwd=self.tmp)
        self.assertOneErrorLine(p, "register a truncated model file")
        r = self.k.get("registered-models/get", {"name": name})
        self.assertEqual(r.status_code, 404, r.text)

    def upload_package(self, rel, mutate=None):
        for root, _, files in os.walk(self.package):
            for fname in files:
                full = os.path.join(root, fname)
                sub = os.path.relpath(full, self.package)
                with open(full, "rb") as f:
                    data = f.read()
                if mutate:
                    data = mutate(sub, data)
                put_artifact(self.k, rel + "/" + sub, data)

    def test_corrupted_package_fails_registration(self):
        # model.json cut in half.
        rel = f"uploads/{uid()}/model"
        self.upload_package(rel, lambda sub, d: d[:len(d) // 2] if sub == "model.json" else d)
        name = "corrupt-" + uid()
        r = self.create_version(name, "mlflow-artifacts:/" + rel)
        self.assertEqual(r.status_code, 200, r.text)
        mv = r.json()["model_version"]
        self.assertEqual(mv["status"], "FAILED_REGISTRATION")
        self.assertTrue(mv.get("status_message", "").strip(), mv)
        got = self.k.ok("GET", "model-versions/get", {"name": name, "version": mv["version"]})
        self.assertEqual(got["model_version"]["status"], "FAILED_REGISTRATION")
        self.assertEqual(got["model_version"]["status_message"], mv["status_message"])
        self.assertServerUp()
        # The CLI reports it as a failure.
        p = cli(self.k, "models", "register", name, "--source", "mlflow-artifacts:/" + rel,
                cwd=self.tmp)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("keel: error:"), 1, p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn("FAILED_REGISTRATION", p.stdout)

        # A model that loads but cannot score its input example.
        rel = f"uploads/{uid()}/model"

        def bad_example(sub, d):
            if sub != "input_example.json":
                return d
            ex = json.loads(d)
            ex["data"][0][ex["columns"].index("total_day_minutes")] = "lots"
            return json.dumps(ex).encode()
        self.upload_package(rel, bad_example)
        r = self.create_version("bad-example-" + uid(), "mlflow-artifacts:/" + rel)
        self.assertEqual(r.status_code, 200, r.text)
        mv = r.json()["model_version"]
        self.assertEqual(mv["status"], "FAILED_REGISTRATION")
        self.assertIn("total_day_minutes", mv["status_message"])

        # The untouched package registers READY from the same place.
        rel = f"uploads/{uid()}/model"
        self.upload_package(rel)
        r = self.create_version("intact-" + uid(), "mlflow-artifacts:/" + rel)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["model_version"]["status"], "READY")
        self.assertServerUp()

    def test_other_checked_sources(self):
        """runs:/ URIs, mlflow.xgboost directories, bare files and broken MLmodel files."""
        with open(os.path.join(self.package, "model.json"), "rb") as f:
            model_json = f.read()
        half = model_json[:len(model_json) // 2]
        xgb_mlmodel = (b"artifact_path: model\nflavors:\n  xgboost:\n    data: model.json\n"
                       b"    model_class: xgboost.core.Booster\n    model_format: json\n"
                       b"    xgb_version: 1.7.4\n")
        cases = [
            # (label, {file: bytes} or None for a run's logged package, source suffix, status)
            ("xgboost flavor", {"MLmodel": xgb_mlmodel, "model.json": model_json}, "", "READY"),
            ("xgboost flavor, truncated", {"MLmodel": xgb_mlmodel, "model.json": half}, "",
             "FAILED_REGISTRATION"),
            ("bare file", {"model.json": model_json}, "/model.json", "READY"),
            ("bare file, truncated", {"model.json": half}, "/model.json", "FAILED_REGISTRATION"),
            ("MLmodel not YAML", {"MLmodel": b"flavors: [keel: {model: model.json\n",
                                  "model.json": model_json}, "", "FAILED_REGISTRATION"),
            ("model file outside the package",
             {"MLmodel": b"flavors:\n  keel:\n    format: xgboost-json\n"
                         b"    model: ../../../../../etc/passwd\n"}, "", "FAILED_REGISTRATION"),
        ]
        for label, files, suffix, status in cases:
            with self.subTest(label):
                rel = f"uploads/{uid()}/model"
                for fname, data in files.items():
                    put_artifact(self.k, rel + "/" + fname, data)
                r = self.create_version("checked-" + uid(), "mlflow-artifacts:/" + rel + suffix)
                self.assertEqual(r.status_code, 200, r.text)
                mv = r.json()["model_version"]
                self.assertEqual(mv["status"], status, mv)
                self.assertEqual(bool(mv.get("status_message")), status != "READY", mv)
        # runs:/<run>/model resolves to the run's artifacts, which are checked too.
        run = self.k.ok("POST", "runs/create", {"experiment_id": self.trained["experiment_id"]})
        info = run["run"]["info"]
        rel = artifact_rel(info["artifact_uri"]) + "/model"
        self.upload_package(rel, lambda sub, d: d[:len(d) // 2] if sub == "model.json" else d)
        r = self.create_version("runs-uri-" + uid(), f"runs:/{info['run_id']}/model")
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["model_version"]["status"], "FAILED_REGISTRATION", r.text)
        r = self.create_version("runs-uri-" + uid(), f"runs:/{self.trained['run_id']}/model")
        self.assertEqual(r.json()["model_version"]["status"], "READY", r.text)
        self.assertServerUp()

    def test_register_corrupt_local_directory(self):
        # The CLI loads a local package before uploading it: nothing is created.
        broken = os.path.join(self.tmp, "broken-pkg", "model")
        shutil.copytree(self.package, broken)
        path = os.path.join(broken, "model.json")
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        name = "broken-dir-" + uid()
        self.assertOneErrorLine(cli(self.k, "models", "register", name, broken, cwd=self.tmp),
                                "register a corrupt directory")
        self.assertEqual(self.k.get("registered-models/get", {"name": name}).status_code, 404)
        self.assertNotIn(name, list_artifacts(self.k, "registered-models"))

    def test_source_outside_artifact_root(self):
        # A valid package outside the artifact root: were it read, the version would be READY.
        outside = os.path.join(self.k.data_dir, "outside", "model")
        shutil.copytree(self.package, outside)
        os.symlink(os.path.join(self.k.data_dir, "outside"),
                   os.path.join(self.k.artifact_root, "escape"))
        for source in ["mlflow-artifacts:/../../etc", "mlflow-artifacts:/../outside/model",
                       "mlflow-artifacts:/escape/model"]:
            with self.subTest(source):
                r = self.create_version("outside-" + uid(), source)
                if r.status_code == 400:
                    self.assertEqual(r.json().get("error_code"), "INVALID_PARAMETER_VALUE", r.text)
                    continue
                self.assertEqual(r.status_code, 200, r.text)
                mv = r.json()["model_version"]
                self.assertEqual(mv["status"], "FAILED_REGISTRATION", mv)
                self.assertTrue(mv.get("status_message"), mv)
        self.assertServerUp()

    def test_other_flavors_stay_ready(self):
        rel = f"uploads/{uid()}/sk-model"
        put_artifact(self.k, rel + "/MLmodel", b"artifact_path: sk-model\nflavors:\n"
                     b"  python_function:\n    loader_module: mlflow.sklearn\n"
                     b"    model_path: model.pkl\n  sklearn:\n    pickled_model: model.pkl\n"
                     b"    serialization_format: cloudpickle\n    sklearn_version: 1.2.1\n")
        put_artifact(self.k, rel + "/model.pkl", b"not really a pickle")
        for source in ["mlflow-artifacts:/" + rel, "s3://some-bucket/models/churn"]:
            with self.subTest(source):
                r = self.create_version("other-" + uid(), source)
                self.assertEqual(r.status_code, 200, r.text)
                mv = r.json()["model_version"]
                self.assertEqual(mv["status"], "READY", mv)
                self.assertEqual(mv.get("status_message", ""), "")


def setUpModule():
    # keel_harness keeps each server's log file open across stop/start.
    warnings.filterwarnings("ignore", category=ResourceWarning)
    # Missing data is an error, not a skip: these tests must not pass vacuously.
    if not os.path.isfile(CHURN):
        raise RuntimeError(f"{CHURN} not found (set KEEL_SHARED_DIR)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
