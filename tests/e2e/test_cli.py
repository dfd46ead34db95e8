"""End-to-end tests of the keel CLI, in embedded mode and against a running server.

Run: /usr/bin/python3 tests/e2e/test_cli.py
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import warnings
import uuid

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import KeelServer, free_port, keel_binary  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"
CLI_USER = "keel-tester"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "MLFLOW_"))}
    env["USER"] = CLI_USER
    env.update(extra)
    return env


def table(stdout):
    """Parses keel's PrintTable output into (header, rows); cells may be empty."""
    lines = stdout.rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        if line and set(line) <= {"-", " "} and "-" in line:
            rule = line
            header_line = lines[i - 1]
            body = lines[i + 1:]
            break
    else:
        raise AssertionError(f"no table in output:\n{stdout}")
    starts = [m.start() for m in re.finditer(r"-+", rule)]

    def cells(line):
        out = []
        for j, s in enumerate(starts):
            e = starts[j + 1] if j + 1 < len(starts) else None
            out.append(line[s:e].strip() if e else line[s:].strip())
        return out

    rows = [cells(l) for l in body if l.strip() and not l.startswith("(")]
    return cells(header_line), rows


def populate(k):
    """Data the CLI tests read: one experiment, four runs, a model artifact."""
    exp = k.ok("POST", "experiments/create", {"name": "cli-exp"})["experiment_id"]
    runs = {}
    spec = {
        "alpha": ({"lr": "0.1", "depth": "3", "opt": "adam"}, {"auc": 0.91, "loss": 0.3}),
        "beta": ({"lr": "0.2", "depth": "3", "opt": "adam"}, {"auc": 0.85, "loss": 0.4}),
        "gamma": ({"lr": "0.1", "depth": "3", "opt": "sgd"}, {"auc": 0.95, "loss": 0.2}),
        "delta": ({"lr": "0.3"}, {"auc": 0.5}),
    }
    for i, (name, (params, metrics)) in enumerate(spec.items()):
        run = k.ok("POST", "runs/create", {"experiment_id": exp, "run_name": name,
                                          "start_time": 1_700_000_000_000 + i * 1000})["run"]
        rid = run["info"]["run_id"]
        k.ok("POST", "runs/log-batch", {
            "run_id": rid,
            "params": [{"key": kk, "value": v} for kk, v in params.items()],
            "metrics": [{"key": kk, "value": v, "timestamp": 1_700_000_000_000, "step": 7}
                        for kk, v in metrics.items()]})
        runs[name] = {"id": rid, "artifact_uri": run["info"]["artifact_uri"]}
    uri = runs["alpha"]["artifact_uri"]
    rel = uri[len("mlflow-artifacts:"):].lstrip("/")
    r = k.session.put(k.url + ART + "/" + rel + "/model/MLmodel", data=b"flavors: {}\n", timeout=10)
    assert r.status_code == 200, r.text
    return exp, runs


class CliMixin:
    """The same CLI checks, run embedded and remote. Subclasses set up self.k/mode."""

    mode = None  # "remote" | "embedded"

    @classmethod
    def run_cli(cls, *args, env=None):
        cmd = [keel_binary()]
        if cls.mode == "remote":
            cmd += ["--tracking-uri", cls.k.url]
        else:
            cmd += ["--store-uri", cls.k.store_uri, "--artifact-root", cls.k.artifact_root]
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=True, env=env or clean_env(),
                              cwd=cls.cwd, timeout=60)

    def ok(self, *args):
        p = self.run_cli(*args)
        self.assertEqual(p.returncode, 0, f"keel {' '.join(args)} failed: {p.stderr}")
        self.assertEqual(p.stderr, "", f"keel {' '.join(args)}: unexpected stderr")
        return p.stdout

    def fails(self, *args):
        p = self.run_cli(*args)
        self.assertOneErrorLine(p, args)
        return p.stderr

    def assertOneErrorLine(self, p, args):
        self.assertNotEqual(p.returncode, 0, f"keel {args} should fail: {p.stdout}")
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"keel {args}: stderr was {p.stderr!r}")
        self.assertTrue(lines[0].startswith("keel: error:"), lines[0])
        self.assertGreater(len(lines[0]), len("keel: error: "), lines[0])

    @classmethod
    def api(cls, fn):
        """Runs fn(server) against the store the CLI used (a server must own it)."""
        if cls.mode == "remote":
            return fn(cls.k)
        cls.k.start()
        try:
            return fn(cls.k)
        finally:
            cls.k.stop()

    def assertHistory(self, rows, expected_oldest_first):
        """History rows (ALIAS FROM TO REASON) in time order, newest or oldest first."""
        got = [r[1:4] + r[5:] for r in rows]
        self.assertIn(got, [expected_oldest_first, expected_oldest_first[::-1]], got)
        times = [r[0] for r in rows]
        self.assertIn(times, [sorted(times), sorted(times, reverse=True)])

    def uid(self):
        return uuid.uuid4().hex[:8]

    # --- experiments -----------------------------------------------------------------
    def test_experiments_lifecycle(self):
        name = "exp-" + self.uid()
        out = self.ok("experiments", "create", name)
        exp_id = out.strip()
        self.assertRegex(exp_id, r"^\d+$")
        header, rows = table(self.ok("experiments", "list"))
        self.assertEqual(header, ["ID", "NAME", "STAGE", "ARTIFACTS", "CREATED"])
        self.assertIn([exp_id, name, "active"], [r[:3] for r in rows])
        self.assertIn([self.exp_id, "cli-exp", "active"], [r[:3] for r in rows])
        for ref in (name, exp_id):
            show = self.ok("experiments", "show", ref)
            self.assertRegex(show, rf"(?m)^id:\s+{exp_id}$")
            self.assertRegex(show, rf"(?m)^name:\s+{re.escape(name)}$")
            self.assertRegex(show, r"(?m)^stage:\s+active$")

        new = name + "-renamed"
        self.ok("experiments", "rename", name, new)
        self.assertRegex(self.ok("experiments", "show", exp_id), rf"(?m)^name:\s+{re.escape(new)}$")
        self.fails("experiments", "show", name)

        self.ok("experiments", "delete", new)
        _, rows = table(self.ok("experiments", "list"))
        self.assertNotIn(exp_id, [r[0] for r in rows])
        _, rows = table(self.ok("experiments", "list", "--all"))
        self.assertIn([exp_id, new, "deleted"], [r[:3] for r in rows])
        self.assertRegex(self.ok("experiments", "show", exp_id), r"(?m)^stage:\s+deleted$")
        self.assertEqual(self.api(lambda k: k.ok("GET", "experiments/get", {"experiment_id": exp_id})
                                  ["experiment"]["lifecycle_stage"]), "deleted")

        self.ok("experiments", "restore", exp_id)
        self.assertRegex(self.ok("experiments", "show", new), r"(?m)^stage:\s+active$")
        exp = self.api(lambda k: k.ok("GET", "experiments/get", {"experiment_id": exp_id}))
        self.assertEqual(exp["experiment"]["lifecycle_stage"], "active")
        self.assertEqual(exp["experiment"]["name"], new)

    def test_experiment_create_duplicate_fails(self):
        name = "dup-" + self.uid()
        self.ok("experiments", "create", name)
        err = self.fails("experiments", "create", name)
        self.assertIn(name, err)

    # --- runs ------------------------------------------------------------------------------
    def test_runs_list(self):
        ids = {n: r["id"] for n, r in self.runs.items()}
        for ref in ("cli-exp", self.exp_id):
            header, rows = table(self.ok("runs", "list", "-e", ref))
            self.assertEqual(header, ["RUN", "NAME", "STATUS", "STARTED", "auc", "loss"])
            by_id = {r[0]: r for r in rows}
            self.assertEqual(set(by_id), set(ids.values()))
            self.assertEqual(by_id[ids["alpha"]][1], "alpha")
            self.assertEqual(by_id[ids["alpha"]][4:], ["0.91", "0.3"])
            self.assertEqual(by_id[ids["delta"]][4:], ["0.5", ""])

    def test_runs_list_filter_order_max(self):
        ids = {n: r["id"] for n, r in self.runs.items()}
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp", "-f", "metrics.auc > 0.9"))
        self.assertEqual(sorted(r[1] for r in rows), ["alpha", "gamma"])
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp", "-f",
                                "metrics.auc > 0.8 and params.lr = '0.1'"))
        self.assertEqual(sorted(r[1] for r in rows), ["alpha", "gamma"])
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp", "-f", "params.opt = 'sgd'"))
        self.assertEqual([r[0] for r in rows], [ids["gamma"]])
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp", "-o", "metrics.auc DESC"))
        self.assertEqual([r[1] for r in rows], ["gamma", "alpha", "beta", "delta"])
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp", "-o", "metrics.auc ASC"))
        self.assertEqual([r[1] for r in rows], ["delta", "beta", "alpha", "gamma"])
        out = self.ok("runs", "list", "-e", "cli-exp", "-o", "metrics.auc DESC", "-n", "2")
        _, rows = table(out)
        self.assertEqual([r[1] for r in rows], ["gamma", "alpha"])
        self.assertIn("(more runs", out)
        out = self.ok("runs", "list", "-e", "cli-exp", "-n", "4")
        self.assertNotIn("(more runs", out)
        self.fails("runs", "list", "-e", "cli-exp", "-f", "metrics.auc >>> 1")
        self.fails("runs", "list", "-e", "no-such-experiment-" + self.uid())

    def test_runs_show(self):
        alpha = self.runs["alpha"]
        out = self.ok("runs", "show", alpha["id"])
        self.assertRegex(out, rf"(?m)^run:\s+{alpha['id']}$")
        self.assertRegex(out, r"(?m)^name:\s+alpha$")
        self.assertRegex(out, rf"(?m)^experiment:\s+{self.exp_id}$")
        self.assertRegex(out, rf"(?m)^artifacts:\s+{re.escape(alpha['artifact_uri'])}$")
        params = out[out.index("params:"):out.index("metrics:")]
        _, rows = table(params)
        self.assertEqual(rows, [["depth", "3"], ["lr", "0.1"], ["opt", "adam"]])
        metrics = out[out.index("metrics:"):]
        _, rows = table(metrics.split("\n\n")[0])
        self.assertEqual(rows, [["auc", "0.91", "7"], ["loss", "0.3", "7"]])

    def test_runs_compare(self):
        a, b, g = (self.runs[n]["id"] for n in ("alpha", "beta", "gamma"))
        header, rows = table(self.ok("runs", "compare", a, b, g))
        self.assertEqual(header, ["", "KEY", "alpha", "beta", "gamma"])
        by_key = {(r[0].lstrip("*").strip(), r[1]): r for r in rows}
        self.assertEqual(by_key[("param", "lr")], ["*param", "lr", "0.1", "0.2", "0.1"])
        self.assertEqual(by_key[("param", "depth")], ["param", "depth", "3", "3", "3"])
        self.assertEqual(by_key[("param", "opt")], ["*param", "opt", "adam", "adam", "sgd"])
        self.assertEqual(by_key[("metric", "auc")], ["*metric", "auc", "0.91", "0.85", "0.95"])
        self.assertEqual(by_key[("metric", "loss")], ["*metric", "loss", "0.3", "0.4", "0.2"])
        self.assertEqual(len(rows), 5)
        # Two runs whose lr agrees: lr not marked, opt marked.
        header, rows = table(self.ok("runs", "compare", a, g))
        self.assertEqual(header, ["", "KEY", "alpha", "gamma"])
        by_key = {r[1]: r for r in rows}
        self.assertEqual(by_key["lr"], ["param", "lr", "0.1", "0.1"])
        self.assertEqual(by_key["opt"], ["*param", "opt", "adam", "sgd"])
        # A param only one run has differs.
        d = self.runs["delta"]["id"]
        header, rows = table(self.ok("runs", "compare", a, d))
        by_key = {r[1]: r for r in rows}
        self.assertEqual(by_key["depth"], ["*param", "depth", "3", ""])

    def test_runs_delete_restore(self):
        # A run of its own so the other tests' view of cli-exp does not change.
        def make(k):
            return k.ok("POST", "runs/create", {"experiment_id": self.exp_id, "run_name": "victim",
                                                "start_time": 1})["run"]["info"]["run_id"]
        rid = self.api(make)
        self.ok("runs", "delete", rid)
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp"))
        self.assertNotIn(rid, [r[0] for r in rows])
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp", "--all"))
        self.assertIn(rid, [r[0] for r in rows])
        self.assertEqual(self.api(lambda k: k.ok("GET", "runs/get", {"run_id": rid})
                                  ["run"]["info"]["lifecycle_stage"]), "deleted")
        self.ok("runs", "restore", rid)
        _, rows = table(self.ok("runs", "list", "-e", "cli-exp"))
        self.assertIn(rid, [r[0] for r in rows])
        self.assertEqual(self.api(lambda k: k.ok("GET", "runs/get", {"run_id": rid})
                                  ["run"]["info"]["lifecycle_stage"]), "active")
        # Clean up: leave cli-exp as populate() made it.
        self.ok("runs", "delete", rid)

    # --- models ----------------------------------------------------------------------------
    def test_models_register_alias_history_rollback(self):
        m = "model-" + self.uid()
        alpha, beta = self.runs["alpha"], self.runs["beta"]
        out = self.ok("models", "register", m, "--run", alpha["id"])
        self.assertEqual(out.strip(),
                         f"registered {m} version 1 (READY, {alpha['artifact_uri']}/model)")
        out = self.ok("models", "register", m, "--run", beta["id"], "--path", "weights")
        self.assertEqual(out.strip(),
                         f"registered {m} version 2 (READY, {beta['artifact_uri']}/weights)")
        out = self.ok("models", "register", m, "--source", "mlflow-artifacts:/custom/model")
        self.assertEqual(out.strip(), f"registered {m} version 3 (READY, mlflow-artifacts:/custom/model)")

        _, rows = table(self.ok("models", "list"))
        self.assertIn([m, "3", ""], [r[:3] for r in rows])

        self.assertEqual(self.ok("models", "alias", f"{m}@prod", "1", "--reason",
                                 "initial release").strip(), f"{m}@prod -> version 1")
        self.ok("models", "alias", f"{m}@prod", "2", "--reason", "better auc")
        self.ok("models", "alias", f"{m}@staging", "3")

        show = self.ok("models", "show", m)
        self.assertRegex(show, rf"(?m)^model: {m}$")
        self.assertRegex(show, r"(?m)^alias: prod -> 2$")
        self.assertRegex(show, r"(?m)^alias: staging -> 3$")
        header, rows = table(show)
        self.assertEqual(header[:4], ["VERSION", "STAGE", "STATUS", "ALIASES"])
        by_version = {r[0]: r for r in rows}
        self.assertEqual(set(by_version), {"1", "2", "3"})
        self.assertEqual(by_version["2"][3], "prod")
        self.assertEqual(by_version["3"][3], "staging")
        self.assertEqual(by_version["1"][4], alpha["id"])
        self.assertEqual(by_version["1"][6], alpha["artifact_uri"] + "/model")

        header, rows = table(self.ok("models", "history", f"{m}@prod"))
        self.assertEqual(header, ["TIME", "ALIAS", "FROM", "TO", "BY", "REASON"])
        self.assertHistory(rows, [["prod", "-", "1", "initial release"],
                                  ["prod", "1", "2", "better auc"]])
        if self.mode == "embedded":
            self.assertEqual({r[4] for r in rows}, {CLI_USER})

        out = self.ok("models", "rollback", f"{m}@prod", "--reason", "regression in v2")
        self.assertEqual(out.strip(), f"{m}@prod: 2 -> 1")

        def alias_version(k, alias):
            r = k.get("registered-models/alias", {"name": m, "alias": alias})
            return r.status_code, r.json()
        status, body = self.api(lambda k: alias_version(k, "prod"))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["model_version"]["version"], "1")
        self.assertRegex(self.ok("models", "show", m), r"(?m)^alias: prod -> 1$")

        _, rows = table(self.ok("models", "history", f"{m}@prod"))
        self.assertHistory(rows, [["prod", "-", "1", "initial release"],
                                  ["prod", "1", "2", "better auc"],
                                  ["prod", "2", "1", "regression in v2"]])
        # History of the whole model includes the other alias.
        _, rows = table(self.ok("models", "history", m))
        self.assertEqual(sorted((r[1], r[3]) for r in rows),
                         [("prod", "1"), ("prod", "1"), ("prod", "2"), ("staging", "3")])

        self.ok("models", "delete-alias", f"{m}@prod")
        status, body = self.api(lambda k: alias_version(k, "prod"))
        # MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE.
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error_code"], "INVALID_PARAMETER_VALUE")
        _, rows = table(self.ok("models", "history", f"{m}@prod"))
        self.assertHistory(rows, [["prod", "-", "1", "initial release"],
                                  ["prod", "1", "2", "better auc"],
                                  ["prod", "2", "1", "regression in v2"],
                                  ["prod", "1", "(deleted)", ""]])
        self.assertNotIn("alias: prod", self.ok("models", "show", m))

    def test_model_name_with_quote(self):
        # Names are data, not syntax: a quote must not break any command.
        m = "o'brien-" + self.uid()
        self.ok("models", "register", m, "--source", "mlflow-artifacts:/q/model")
        self.ok("models", "alias", f"{m}@prod", "1", "--reason", "it's \"quoted\"")
        _, rows = table(self.ok("models", "list"))
        self.assertIn([m, "1", "prod->1"], [r[:3] for r in rows])
        _, rows = table(self.ok("models", "history", f"{m}@prod"))
        self.assertEqual(rows[0][5], "it's \"quoted\"")
        show = self.ok("models", "show", m)
        self.assertRegex(show, rf"(?m)^model: {re.escape(m)}$")
        _, rows = table(show)
        self.assertEqual([r[0] for r in rows], ["1"])

    def test_experiment_name_with_quotes_and_unicode(self):
        e = "exp 'q' \"dq\" ünïcødé " + self.uid()
        exp_id = self.ok("experiments", "create", e).strip()
        self.assertRegex(self.ok("experiments", "show", e), rf"(?m)^id:\s+{exp_id}$")
        self.assertRegex(self.ok("experiments", "show", e), rf"(?m)^name:\s+{re.escape(e)}$")
        _, rows = table(self.ok("runs", "list", "-e", e))
        self.assertEqual(rows, [])

    def test_rollback_walks_back(self):
        m = "walk-" + self.uid()
        for _ in range(3):
            self.ok("models", "register", m, "--source", "mlflow-artifacts:/w/model")
        self.ok("models", "alias", f"{m}@live", "1")
        self.ok("models", "alias", f"{m}@live", "3")
        self.assertEqual(self.ok("models", "rollback", f"{m}@live").strip(), f"{m}@live: 3 -> 1")
        status = self.api(lambda k: k.get("registered-models/alias",
                                          {"name": m, "alias": "live"}).json())
        self.assertEqual(status["model_version"]["version"], "1")

    # --- errors -----------------------------------------------------------------------------
    def test_errors(self):
        m = "err-" + self.uid()
        self.ok("models", "register", m, "--source", "mlflow-artifacts:/e/model")
        unknown = "f" * 32
        cases = [
            ("runs", "show", unknown),
            ("runs", "compare", self.runs["alpha"]["id"], unknown),
            ("runs", "compare", self.runs["alpha"]["id"]),
            ("runs", "delete", unknown),
            ("experiments", "show", "no-such-exp-" + self.uid()),
            ("experiments", "delete", "987654"),
            ("models", "show", "no-such-model-" + self.uid()),
            ("models", "alias", m, "1"),
            ("models", "alias", f"{m}@", "1"),
            ("models", "alias", "@prod", "1"),
            ("models", "alias", f"{m}@prod", "99"),
            ("models", "delete-alias", m),
            ("models", "delete-alias", "no-such-model-" + self.uid() + "@prod"),
            ("models", "rollback", m),
            ("models", "rollback", f"{m}@"),
            ("models", "rollback", f"{m}@never-set"),
            ("models", "register", m),  # neither --run nor --source
            ("models", "register", m, "--run", unknown),
            ("models", "history", "no-such-model-" + self.uid()),
        ]
        for args in cases:
            with self.subTest(args=args):
                self.fails(*args)
        err = self.fails("runs", "show", unknown)
        self.assertIn(unknown, err)
        err = self.fails("models", "alias", "noat", "1")
        self.assertIn("NAME@ALIAS", err)
        # Deleting an alias that was never set is a no-op (as in MLflow)...
        self.ok("models", "delete-alias", f"{m}@never-set")
        # ...and neither it nor the failed alias commands left any history.
        _, rows = table(self.ok("models", "history", m))
        self.assertEqual(rows, [])


class RemoteCliTest(CliMixin, unittest.TestCase):
    mode = "remote"

    @classmethod
    def setUpClass(cls):
        cls.cwd = tempfile.mkdtemp(prefix="keel-e2e-cwd-")
        cls.k = KeelServer().start()
        cls.exp_id, cls.runs = populate(cls.k)

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        # Remote mode never creates an embedded store in the working directory.
        leftovers = os.listdir(cls.cwd)
        shutil.rmtree(cls.cwd, ignore_errors=True)
        assert leftovers == [], f"remote CLI wrote {leftovers} into its cwd"

    def test_tracking_uri_from_env(self):
        p = subprocess.run([keel_binary(), "experiments", "list"], capture_output=True, text=True,
                           env=clean_env(KEEL_TRACKING_URI=self.k.url), cwd=self.cwd, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        _, rows = table(p.stdout)
        self.assertIn("cli-exp", [r[1] for r in rows])
        self.assertEqual(os.listdir(self.cwd), [])


class EmbeddedCliTest(CliMixin, unittest.TestCase):
    """The CLI opens the store directly; the server that filled it is stopped first."""

    mode = "embedded"

    @classmethod
    def setUpClass(cls):
        cls.cwd = tempfile.mkdtemp(prefix="keel-e2e-cwd-")
        cls.k = KeelServer().start()
        cls.exp_id, cls.runs = populate(cls.k)
        cls.k.stop()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        shutil.rmtree(cls.cwd, ignore_errors=True)


class SharedStoreTest(unittest.TestCase):
    """Remote writes are visible embedded (server stopped) and vice versa."""

    def test_remote_then_embedded_then_remote(self):
        cwd = tempfile.mkdtemp(prefix="keel-e2e-cwd-")
        k = KeelServer().start()
        try:
            def cli(*args, remote):
                base = ["--tracking-uri", k.url] if remote else [
                    "--store-uri", k.store_uri, "--artifact-root", k.artifact_root]
                p = subprocess.run([keel_binary(), *base, *args], capture_output=True, text=True,
                                   env=clean_env(), cwd=cwd, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
                return p.stdout
            rid = cli("experiments", "create", "made-remote", remote=True).strip()
            k.stop()
            self.assertRegex(cli("experiments", "show", "made-remote", remote=False),
                             rf"(?m)^id:\s+{rid}$")
            eid = cli("experiments", "create", "made-embedded", remote=False).strip()
            cli("models", "register", "shared-model", "--source", "mlflow-artifacts:/s/m",
                remote=False)
            cli("models", "alias", "shared-model@prod", "1", "--reason", "from embedded",
                remote=False)
            k.start()
            r = k.ok("GET", "experiments/get-by-name", {"experiment_name": "made-embedded"})
            self.assertEqual(r["experiment"]["experiment_id"], eid)
            r = k.ok("GET", "registered-models/alias", {"name": "shared-model", "alias": "prod"})
            self.assertEqual(r["model_version"]["version"], "1")
            _, rows = table(cli("models", "history", "shared-model@prod", remote=True))
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0][1:4] + rows[0][5:], ["prod", "-", "1", "from embedded"])
            self.assertEqual(rows[0][4], CLI_USER)
        finally:
            k.stop()
            shutil.rmtree(k.data_dir, ignore_errors=True)
            shutil.rmtree(cwd, ignore_errors=True)


class RemoteErrorsAndAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cwd = tempfile.mkdtemp(prefix="keel-e2e-cwd-")
        cls.tokens = cls.cwd.rstrip("/") + "-tokens.txt"
        with open(cls.tokens, "w") as f:
            f.write("writer write w-secret-123\nreader read r-secret-456\n")
        cls.k = KeelServer(["--auth-tokens", cls.tokens]).start()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        shutil.rmtree(cls.cwd, ignore_errors=True)
        os.unlink(cls.tokens)

    def run_cli(self, *args, uri=None, **env):
        cmd = [keel_binary(), "--tracking-uri", uri or self.k.url, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=clean_env(**env),
                              cwd=self.cwd, timeout=60)

    def assertOneErrorLine(self, p):
        self.assertNotEqual(p.returncode, 0, p.stdout)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("keel: error:"), lines[0])
        return lines[0]

    def test_unreachable_tracking_uri(self):
        port = free_port()  # nothing listens here
        for args in [("experiments", "list"), ("runs", "show", "f" * 32),
                     ("models", "alias", "m@prod", "1")]:
            with self.subTest(args=args):
                p = self.run_cli(*args, uri=f"http://127.0.0.1:{port}")
                self.assertOneErrorLine(p)
        p = self.run_cli("experiments", "list", uri=f"http://127.0.0.1:{port}",
                         KEEL_TRACKING_TOKEN="w-secret-123")
        self.assertOneErrorLine(p)

    def test_bad_tracking_uri(self):
        for uri in ["ftp://127.0.0.1:1", "not a uri", "http://"]:
            with self.subTest(uri=uri):
                self.assertOneErrorLine(self.run_cli("experiments", "list", uri=uri))

    def test_auth_from_env(self):
        for label, env in [
            ("KEEL_TRACKING_TOKEN", {"KEEL_TRACKING_TOKEN": "w-secret-123"}),
            ("MLFLOW_TRACKING_TOKEN", {"MLFLOW_TRACKING_TOKEN": "w-secret-123"}),
            ("basic", {"MLFLOW_TRACKING_USERNAME": "writer",
                       "MLFLOW_TRACKING_PASSWORD": "w-secret-123"}),
        ]:
            with self.subTest(label):
                name = "auth-" + label.lower() + "-" + uuid.uuid4().hex[:6]
                p = self.run_cli("experiments", "create", name, **env)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertRegex(p.stdout.strip(), r"^\d+$")
                p = self.run_cli("experiments", "show", name, **env)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(name, p.stdout)
                # The server agrees.
                r = requests.get(self.k.url + "/api/2.0/mlflow/experiments/get-by-name",
                                 params={"experiment_name": name},
                                 headers={"Authorization": "Bearer r-secret-456"}, timeout=10)
                self.assertEqual(r.status_code, 200, r.text)

    def test_auth_failures(self):
        # No credentials.
        line = self.assertOneErrorLine(self.run_cli("experiments", "list"))
        self.assertIn("authenticated", line.lower())
        # Wrong credentials.
        self.assertOneErrorLine(self.run_cli("experiments", "list", KEEL_TRACKING_TOKEN="nope"))
        self.assertOneErrorLine(self.run_cli("experiments", "list",
                                             MLFLOW_TRACKING_USERNAME="writer",
                                             MLFLOW_TRACKING_PASSWORD="wrong"))
        # Read-only user: reading works, writing is refused.
        p = self.run_cli("experiments", "list", KEEL_TRACKING_TOKEN="r-secret-456")
        self.assertEqual(p.returncode, 0, p.stderr)
        name = "ro-" + uuid.uuid4().hex[:6]
        line = self.assertOneErrorLine(self.run_cli("experiments", "create", name,
                                                    KEEL_TRACKING_TOKEN="r-secret-456"))
        self.assertIn("permission", line.lower())
        r = requests.get(self.k.url + "/api/2.0/mlflow/experiments/get-by-name",
                         params={"experiment_name": name},
                         headers={"Authorization": "Bearer r-secret-456"}, timeout=10)
        self.assertEqual(r.status_code, 404)

    def test_keel_token_wins_over_mlflow_vars(self):
        p = self.run_cli("experiments", "create", "prec-" + uuid.uuid4().hex[:6],
                         KEEL_TRACKING_TOKEN="w-secret-123", MLFLOW_TRACKING_TOKEN="bad",
                         MLFLOW_TRACKING_USERNAME="x", MLFLOW_TRACKING_PASSWORD="y")
        self.assertEqual(p.returncode, 0, p.stderr)


def setUpModule():
    # keel_harness keeps each server's log file open across stop/start; those
    # ResourceWarnings are harness noise, not findings.
    warnings.filterwarnings("ignore", category=ResourceWarning)


if __name__ == "__main__":
    unittest.main(verbosity=2)
