"""End-to-end tests of `keel drift` on real data.

The reference is the first 2500 rows of ../shared/data/mlc_churn.csv; the
current file is the other 2500 rows with a planted shift (total_day_minutes
x 1.3) and a planted new category (every tenth state becomes "ZZ"). Checks:
the planted columns drift and the others mostly do not, statistics equal
scipy's on the same columns, unseen categories are named, --fail-on gates
the exit code (3) with one plain line, the JSON and the self-contained HTML
report are written, and bad input gets a one-line error naming the file,
line and column.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_drift.py
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import REPO, keel_binary  # noqa: E402

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")


def read_rows():
    with open(CHURN, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


class DriftTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-drift-")
        d = cls.tmp.name
        header, rows = read_rows()
        cls.header = header
        half = len(rows) // 2
        ref, cur = rows[:half], [list(r) for r in rows[half:]]
        minutes = header.index("total_day_minutes")
        state = header.index("state")
        for i, r in enumerate(cur):
            r[minutes] = repr(round(float(r[minutes]) * 1.3, 2))
            if i % 10 == 0:
                r[state] = "ZZ"
        cls.ref_rows, cls.cur_rows = ref, cur
        cls.ref = os.path.join(d, "reference.csv")
        cls.cur = os.path.join(d, "current.csv")
        write_csv(cls.ref, header, ref)
        write_csv(cls.cur, header, cur)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def keel(self, *args):
        return subprocess.run([keel_binary(), "drift", *args], capture_output=True, text=True,
                              timeout=120)

    def column(self, rows, name):
        i = self.header.index(name)
        return np.array([float(r[i]) for r in rows])

    def test_report_verdicts_and_scipy_values(self):
        out = os.path.join(self.tmp.name, "report.json")
        html = os.path.join(self.tmp.name, "report.html")
        p = self.keel("--reference", self.ref, "--current", self.cur, "--stats", "ks,wasserstein",
                      "--target", "churn", "--json", out, "--report", html)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("total_day_minutes", p.stdout)
        self.assertIn("dataset drift:", p.stdout)
        with open(out) as f:
            report = json.load(f)
        cols = {c["name"]: c for c in report["columns"]}
        self.assertEqual(report["reference"]["rows"], len(self.ref_rows))
        self.assertEqual(report["current"]["rows"], len(self.cur_rows))
        self.assertEqual(cols["churn"]["role"], "target")
        self.assertTrue(cols["total_day_minutes"]["drift"])
        self.assertTrue(cols["state"]["drift"])
        self.assertEqual(cols["state"]["unseen"]["categories"], ["ZZ"])
        self.assertAlmostEqual(cols["state"]["unseen"]["share"], 0.1, places=12)
        # total_day_charge was not rewritten with the minutes, so it stays put
        # with the other columns (two halves of one file: at most chance drift).
        stable = [c for c in report["columns"]
                  if c["role"] == "feature" and c["name"] not in ("total_day_minutes", "state")]
        self.assertLessEqual(sum(1 for c in stable if c["drift"]), 2)
        self.assertEqual(report["dataset"]["columns"], len(self.header) - 1)
        self.assertFalse(report["dataset"]["drift"])
        # KS and Wasserstein against scipy on the same values.
        for name in ("account_length", "total_day_minutes", "total_night_calls"):
            r, c = self.column(self.ref_rows, name), self.column(self.cur_rows, name)
            ks = stats.ks_2samp(r, c)
            extra = cols[name]["extra"]
            self.assertAlmostEqual(extra["ks"]["statistic"], ks.statistic, delta=1e-12)
            self.assertLess(abs(extra["ks"]["score"] - ks.pvalue), 1e-9 * max(ks.pvalue, 1e-300) + 1e-300)
            wd = stats.wasserstein_distance(r, c)
            self.assertLess(abs(extra["wasserstein"]["score"] - wd), 1e-9 * wd)
        with open(html) as f:
            page = f.read()
        self.assertNotIn("<script", page)
        for name in self.header:
            self.assertIn(name, page)
        self.assertLess(len(page), 200_000)

    def test_fail_on_gates_the_exit_code(self):
        p = self.keel("--reference", self.ref, "--current", self.cur, "--fail-on", "drift")
        self.assertEqual(p.returncode, 0, p.stderr)  # 2 of 20 features: no dataset drift
        p = self.keel("--reference", self.ref, "--current", self.cur, "--fail-on", "column",
                      "--quiet")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertEqual(p.stdout, "")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("total_day_minutes", lines[0])
        self.assertIn("state", lines[0])
        # The same data against itself passes every gate.
        p = self.keel("--reference", self.ref, "--current", self.ref, "--fail-on", "column")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_json_to_stdout(self):
        p = self.keel("--reference", self.ref, "--current", self.cur, "--columns",
                      "total_day_minutes,state", "--json", "-")
        self.assertEqual(p.returncode, 0, p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual([c["name"] for c in report["columns"]], ["total_day_minutes", "state"])

    def test_saved_reference_profile_gives_the_same_report(self):
        saved = os.path.join(self.tmp.name, "reference.keelref")
        p = self.keel("--reference", self.ref, "--save-reference", saved)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("saved the reference profile", p.stderr)
        direct = self.keel("--reference", self.ref, "--current", self.cur, "--json", "-")
        stored = self.keel("--reference", saved, "--current", self.cur, "--json", "-")
        self.assertEqual(direct.returncode, 0, direct.stderr)
        self.assertEqual(stored.returncode, 0, stored.stderr)
        a, b = json.loads(direct.stdout), json.loads(stored.stdout)
        self.assertEqual(b["reference"]["name"], saved)
        a["reference"]["name"] = b["reference"]["name"] = ""
        self.assertEqual(a, b)

        damaged = os.path.join(self.tmp.name, "damaged.keelref")
        with open(saved, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0x5A
        with open(damaged, "wb") as f:
            f.write(data)
        p = self.keel("--reference", damaged, "--current", self.cur)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("damaged.keelref: damaged reference profile", p.stderr)

    def test_model_reference_is_its_training_data(self):
        env = dict(os.environ)
        env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(self.tmp.name, "store", "keel.db")
        env["KEEL_ARTIFACT_ROOT"] = os.path.join(self.tmp.name, "store", "artifacts")
        train = subprocess.run(
            [keel_binary(), "train", "--data", self.ref, "--target", "churn", "--param",
             "n_estimators=5", "--experiment", "drift", "--register", "churn"],
            capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(train.returncode, 0, train.stderr)
        p = subprocess.run(
            [keel_binary(), "drift", "--reference", "churn/1", "--current", self.cur, "--json", "-",
             "--fail-on", "column"],
            capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(p.returncode, 3, p.stderr)
        report = json.loads(p.stdout)
        self.assertIn("churn version 1", report["reference"]["name"])
        cols = {c["name"]: c for c in report["columns"]}
        self.assertTrue(cols["total_day_minutes"]["drift"])
        self.assertEqual(cols["state"]["unseen"]["categories"], ["ZZ"])
        # area_code is categorical in the training data: the current file's
        # column is read the same way.
        self.assertEqual(cols["area_code"]["kind"], "categorical")

    def test_bad_input_gets_one_plain_line(self):
        bad = os.path.join(self.tmp.name, "bad.csv")
        rows = [list(r) for r in self.cur_rows[:20]]
        rows[5][self.header.index("account_length")] = "oops"
        write_csv(bad, self.header, rows)
        p = self.keel("--reference", self.ref, "--current", bad)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("bad.csv:7", p.stderr)
        self.assertIn("account_length", p.stderr)

        p = self.keel("--reference", self.ref, "--current", os.path.join(self.tmp.name, "nope.csv"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nope.csv", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

        p = self.keel("--reference", self.ref, "--current", self.cur, "--test", "nope")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown drift statistic 'nope'", p.stderr)
        self.assertIn("ks", p.stderr)

        p = self.keel("--reference", self.ref, "--current", self.cur, "--fail-on", "sometimes")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--fail-on sometimes", p.stderr)

        missing_column = os.path.join(self.tmp.name, "fewer.csv")
        write_csv(missing_column, self.header[:-1], [r[:-1] for r in self.cur_rows[:20]])
        p = self.keel("--reference", self.ref, "--current", missing_column)
        self.assertEqual(p.returncode, 2)
        self.assertIn("'churn'", p.stderr)


if __name__ == "__main__":
    unittest.main()
