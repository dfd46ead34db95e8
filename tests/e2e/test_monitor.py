"""End-to-end tests of `keel monitor`: a registered model's prediction log
against the reference profile stored with it.

A churn model is trained on the first half of ../shared/data/mlc_churn.csv.
The other half, with a planted shift (total_day_minutes x 1.3), is scored by
`keel batch` with every row sent to the prediction log, and a few rows are
posted to a real `keel server` (/predict) so the log holds real-time records
too. Checks: the window's drift verdicts (the planted column and the
prediction drift, the label column not treated as an input), operational
figures per endpoint, performance once labels are imported (AUC equal to
scikit-learn's on the same scores and labels), the --fail-on performance
gate (exit 3, one line), the JSON and HTML reports, and one-line errors.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_monitor.py
"""
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import REPO, KeelServer, keel_binary, planted_churn_split  # noqa: E402

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")


class MonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-monitor-")
        d = cls.tmp.name
        header, cur, cls.ref, cls.cur = planted_churn_split(CHURN, d)
        cls.header, cls.cur_rows = header, cur
        cls.env = dict(os.environ)
        cls.env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(d, "store", "keel.db")
        cls.env["KEEL_ARTIFACT_ROOT"] = os.path.join(d, "store", "artifacts")
        cls.run_keel("train", "--data", cls.ref, "--target", "churn", "--param", "n_estimators=40",
                     "--experiment", "monitor", "--register", "churn")
        cls.run_keel("models", "alias", "churn@champion", "1")
        scores = os.path.join(d, "scores.csv")
        p = cls.run_keel("batch", "churn@champion", "--input", cls.cur, "--output", scores,
                         "--monitor-sample", "1", "--no-track")
        cls.prefix = re.search(r"\((batch-[0-9a-f]+-)\*\)", p.stdout + p.stderr).group(1)
        with open(scores, newline="") as f:
            cls.scores = [float(r[0]) for r in list(csv.reader(f))[1:]]

        # A few real-time predictions through a real server on the same store.
        server = KeelServer(data_dir=os.path.join(d, "store"), extra_args=["--log-flush-ms", "20"])
        server.start()
        try:
            recs = [dict(zip(header, r)) for r in cur[:40]]
            for rec in recs:
                rec.pop("churn")
                for k in list(rec):
                    try:
                        rec[k] = float(rec[k])
                    except ValueError:
                        pass
                r = server.session.post(server.url + "/predict/churn@champion", json=rec, timeout=10)
                assert r.status_code == 200, r.text
        finally:
            server.session.close()
            server.stop()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def run_keel(cls, *args, check=True):
        p = subprocess.run([keel_binary(), *args], capture_output=True, text=True, env=cls.env,
                           timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"keel {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def monitor(self, *args, check=True):
        return self.run_keel("monitor", "churn@champion", "--window", "1h", *args, check=check)

    def test_1_window_before_labels(self):
        p = self.monitor("--json", "-")
        report = json.loads(p.stdout)
        self.assertEqual(report["model"], "churn")
        self.assertEqual(report["version"], "1")
        self.assertEqual(report["rows"], len(self.cur_rows) + 40)
        self.assertFalse(report["truncated"])
        ops = report["operational"]
        self.assertEqual(ops["endpoints"], {"batch": len(self.cur_rows), "predict": 40})
        self.assertGreater(ops["latency_us"]["max"], 0)  # the real-time records carry latency
        self.assertEqual(report["performance"]["labelled"], 0)
        self.assertEqual(report["performance"]["live"], {})
        self.assertGreater(report["performance"]["reference"]["auc"], 0.5)
        # The label-free estimate (CBPE) is there before any label.
        est = report["performance"]["estimated"]
        self.assertEqual(sorted(est), ["accuracy", "auc", "f1", "precision", "recall"])
        self.assertGreater(est["auc"], 0.5)
        self.assertLess(est["auc"], 1.0)
        drift = report["drift"]
        cols = {c["name"]: c for c in drift["columns"]}
        self.assertNotIn("churn", cols)  # the label is not an input
        self.assertTrue(cols["total_day_minutes"]["drift"])
        self.assertEqual(cols["churn_probability"]["role"], "prediction")
        self.assertTrue(drift["prediction_drift"])
        drifted = [c["name"] for c in drift["columns"] if c.get("drift") and c["role"] == "feature"]
        self.assertLessEqual(len(drifted), 3, drifted)

    def test_2_performance_after_labels(self):
        labels = os.path.join(self.tmp.name, "labels.csv")
        churn = self.header.index("churn")
        with open(labels, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "label"])
            for i, r in enumerate(self.cur_rows):
                w.writerow([f"{self.prefix}{i + 2}", r[churn]])
        p = self.run_keel("labels", "import", labels)
        self.assertIn(f"{len(self.cur_rows)} matched", p.stdout)
        p = self.monitor("--json", "-")
        perf = json.loads(p.stdout)["performance"]
        self.assertEqual(perf["labelled"], len(self.cur_rows))
        self.assertEqual(perf["unmatched_labels"], 0)
        y = [1 if r[churn] == "yes" else 0 for r in self.cur_rows]
        self.assertAlmostEqual(perf["live"]["auc"], roc_auc_score(y, self.scores), places=9)
        # The planted shift costs performance against validation.
        self.assertLess(perf["live"]["auc"], perf["reference"]["auc"])

        gate = self.monitor("--fail-on", "performance", "--max-drop", "auc:0.01", "--quiet",
                            check=False)
        self.assertEqual(gate.returncode, 3, gate.stderr)
        lines = gate.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, gate.stderr)
        self.assertIn("auc", lines[0])
        lenient = self.monitor("--fail-on", "performance", "--max-drop", "auc:0.9", "--quiet")
        self.assertEqual(lenient.returncode, 0)

        html = os.path.join(self.tmp.name, "window.html")
        text = self.monitor("--report", html)
        self.assertIn("performance (live vs validation at training)", text.stdout)
        self.assertIn("prediction drift: YES", text.stdout)
        with open(html) as f:
            page = f.read()
        self.assertIn("Model monitoring: churn version 1", page)
        self.assertIn("<h2>Performance</h2>", page)
        self.assertNotIn("<script", page)

    def test_3_errors_are_one_line(self):
        for args, code, needle in [
            (["monitor", "nope@champion"], None, "nope"),
            (["monitor", "churn@champion", "--window", "soon"], 2, "--window 'soon'"),
            (["monitor", "churn@champion", "--until", "1000"], 1, "no logged predictions"),
            (["monitor", "churn@champion", "--fail-on", "performance"], 2, "--max-drop"),
        ]:
            p = self.run_keel(*args, check=False)
            if code is None:
                self.assertNotEqual(p.returncode, 0)
            else:
                self.assertEqual(p.returncode, code, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(needle, p.stderr)


if __name__ == "__main__":
    unittest.main()
