"""The README's first command, `scripts/run.sh`, end to end with the binary
under test (KEEL_BINARY: no install, no build) on a temporary data folder
(KEEL_DATA_DIR) and a free port. Checks that the sample churn project is
trained, registered as churn@champion, served, monitored and given the
retraining policy, and that the printed URLs answer:
  - the URL lines (dashboard, tracking API, predict, retraining) are printed
    before the server listens;
  - /health, the dashboard page, and /predict/churn on the printed example
    customer (a churn probability in [0, 1]) answer;
  - the serving status shows churn@champion at version 1 with the
    prediction log on, and the sample batch job's rows are in the log;
  - the server runs the written policy (the issue's: Mondays 03:00, drift
    and decay alerts, 1 h shadow, 24 h watch) as the scheduler's leader;
  - the remote `keel retrain churn` printed by run.sh queues a job there.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_quickstart.py
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import REPO, free_port, keel_binary  # noqa: E402

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")


class QuickstartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-quickstart-")
        cls.dir = os.path.join(cls.tmp.name, "data")
        cls.port = free_port()
        cls.url = f"http://127.0.0.1:{cls.port}"
        env = dict(os.environ)
        env.update({"KEEL_BINARY": keel_binary(), "KEEL_DATA_DIR": cls.dir,
                    "KEEL_PORT": str(cls.port), "KEEL_SAMPLE_DATA": CHURN})
        env.pop("KEEL_STORE_URI", None)
        env.pop("KEEL_ARTIFACT_ROOT", None)
        env.pop("KEEL_TRACKING_URI", None)
        cls.out_path = os.path.join(cls.tmp.name, "run.log")
        cls.out = open(cls.out_path, "w")
        cls.proc = subprocess.Popen(["bash", os.path.join(REPO, "scripts", "run.sh")], env=env,
                                    stdout=cls.out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if cls.proc.poll() is not None:
                raise AssertionError(f"run.sh exited with {cls.proc.returncode}:\n{cls.log()}")
            try:
                if requests.get(cls.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        cls.stop()
        raise AssertionError("run.sh's server did not answer /health in 300 s:\n" + cls.log())

    @classmethod
    def log(cls):
        with open(cls.out_path) as f:
            return f.read()

    @classmethod
    def stop(cls):
        if cls.proc.poll() is None:
            os.killpg(cls.proc.pid, signal.SIGTERM)
            try:
                cls.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(cls.proc.pid, signal.SIGKILL)
                cls.proc.wait()
        cls.out.close()

    @classmethod
    def tearDownClass(cls):
        cls.stop()
        cls.tmp.cleanup()

    def test_urls_are_printed_and_answer(self):
        log = self.log()
        for line in (f"run: keel on {self.url}", f"  dashboard      {self.url}/",
                     f"  tracking API   {self.url}/api/2.0/mlflow/",
                     f"  predict        curl -d @{self.dir}/customer.json {self.url}/predict/churn",
                     f"  retraining     policy {self.dir}/retrain.yaml;",
                     f"                 run one now: {os.path.realpath(keel_binary())} "
                     f"--tracking-uri {self.url} retrain churn"):
            self.assertIn(line, log)
        self.assertLess(log.index("  dashboard"), log.index("keel server listening"))
        page = requests.get(self.url + "/", timeout=10)
        self.assertEqual(page.status_code, 200)
        self.assertIn("text/html", page.headers["Content-Type"])
        with open(os.path.join(self.dir, "customer.json")) as f:
            customer = json.load(f)
        r = requests.post(self.url + "/predict/churn", json=customer, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(body["model_version"], "1")
        self.assertTrue(0.0 <= body["churn_probability"] <= 1.0, body)

    def test_served_and_monitored(self):
        r = requests.get(self.url + "/api/2.0/keel/serving", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        status = r.json()
        self.assertTrue(status["ready"])
        self.assertEqual([(m["ref"], m["version"]) for m in status["models"]],
                         [("churn@champion", "1")])
        self.assertEqual(status["prediction_log"]["sample_rate"], 1.0)
        # The sample batch job put a window of 20% of the data into the log.
        p = subprocess.run([keel_binary(), "--store-uri", f"sqlite://{self.dir}/keel.db",
                            "--artifact-root", f"{self.dir}/artifacts", "monitor",
                            "churn@champion", "--window", "1d", "--json", "-"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual(report["version"], "1")
        self.assertGreater(report["operational"]["endpoints"]["batch"], 500)

    def test_retraining_policy_runs(self):
        r = requests.get(self.url + "/api/2.0/keel/retrain/policies", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertTrue(body["scheduler"])
        self.assertTrue(body["leader"])
        [policy] = body["policies"]
        self.assertEqual(policy["model"], "churn")
        self.assertEqual(policy["schedule"], "0 3 * * 1")
        self.assertEqual(policy["on_alerts"], ["data_drift", "performance_decay"])
        self.assertEqual((policy["shadow_ms"], policy["watch_ms"]), (3_600_000, 86_400_000))
        self.assertEqual(policy["gate"]["metric"], "auc")
        self.assertGreater(policy["next_slot_ms"], int(time.time() * 1000))
        p = subprocess.run([keel_binary(), "--tracking-uri", self.url, "retrain", "churn"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"queued a retrain of churn on {self.url}", p.stdout)
        jobs = requests.get(self.url + "/api/2.0/keel/retrain/jobs?model=churn", timeout=10).json()
        self.assertGreaterEqual(len(jobs["jobs"]), 1)
        self.assertEqual(jobs["jobs"][0]["trigger"], "manual")


if __name__ == "__main__":
    unittest.main(verbosity=2)
