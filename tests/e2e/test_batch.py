"""End-to-end tests of `keel batch`: CSV scoring in chunks, in input order.

Trains a churn model with `keel train` into a real store, scores CSV files with
the real binary, and checks the scores against python3-xgboost on the package's
model.json with the one-hot pipeline rebuilt in Python (test_serving.Reference).

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_batch.py
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import csv  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import KeelServer, keel_binary  # noqa: E402
from test_serving import CHURN, download_package, set_alias, train  # noqa: E402


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def typed_records(header, lines):
    """Data lines of the churn CSV as records without the target, numbers as floats."""
    recs = read_csv(header + "\n" + "\n".join(lines) + "\n")
    for r in recs:
        r.pop("churn")
        for k, v in r.items():
            try:
                r[k] = float(v)
            except ValueError:
                pass
    return recs


class BatchTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="keel-batch-")
        cls.k = KeelServer().start()
        train(cls.k, cls.tmp, 30)
        set_alias(cls.k, "churn", "champion", 1)
        cls.ref = download_package(cls.k, "churn", 1, os.path.join(cls.tmp, "v1"))
        cls.k.stop()  # keel batch works on the store and artifact root directly
        with open(CHURN) as f:
            lines = f.read().splitlines()
        cls.header = lines[0]
        cls.good = lines[1:301]
        # Rows 2 and 5 of the data (lines 3 and 6 of the file) are bad.
        bad_value = cls.good[1].split(",")
        bad_value[1] = "abc"
        body = [cls.good[0], ",".join(bad_value), *cls.good[2:4], '"KS",1,2', *cls.good[4:]]
        cls.input = os.path.join(cls.tmp, "in.csv")
        with open(cls.input, "w") as f:
            f.write(cls.header + "\n" + "\n".join(body) + "\n")
        cls.want_rows = [cls.good[0], *cls.good[2:4], *cls.good[4:]]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def batch(self, *args, stdin=None):
        cmd = [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
               self.k.artifact_root, "batch", *args]
        return subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=120)

    def expected(self):
        return self.ref.predict(typed_records(self.header, self.want_rows))

    def assertScores(self, rows, want):
        self.assertEqual(len(rows), len(want))
        for row, w in zip(rows, want):
            self.assertLess(abs(float(row["churn_probability"]) - w), 1e-6, row)

    def test_scores_in_order_with_rejects(self):
        out = os.path.join(self.tmp, "scores.csv")
        p = self.batch("churn@champion", "--input", self.input, "--output", out,
                       "--id-column", "state", "--keep-columns", "account_length,churn",
                       "--max-rejects", "2", "--chunk-rows", "7")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr.strip(), r"^batch: 301 rows in, 299 scored, 2 rejected "
                         r"\(.*scores\.csv\.rejects\.csv\), [0-9.e-]+ s, churn@champion version 1, "
                         r"run [0-9a-f]{32}, [0-9]+ rows to monitoring \(batch-[0-9a-f]{32}-\*\)$")
        with open(out) as f:
            rows = read_csv(f.read())
        self.assertEqual(list(rows[0]), ["state", "account_length", "churn", "churn_probability"])
        self.assertScores(rows, self.expected())
        want_ids = [r["state"] for r in read_csv(self.header + "\n" + "\n".join(self.want_rows))]
        self.assertEqual([r["state"] for r in rows], want_ids)
        with open(out + ".rejects.csv") as f:
            rejects = read_csv(f.read())
        self.assertEqual([r["line"] for r in rejects], ["3", "6"])
        self.assertIn("account_length", rejects[0]["reason"])
        self.assertIn("3 fields", rejects[1]["reason"])
        # The same scores whatever the chunk size.
        out2 = os.path.join(self.tmp, "scores2.csv")
        p = self.batch("churn", "--input", self.input, "--output", out2, "--id-column", "state",
                       "--keep-columns", "account_length,churn", "--max-rejects", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as a, open(out2) as b:
            self.assertEqual(a.read(), b.read())

    def test_too_many_rejects_leaves_no_output(self):
        out = os.path.join(self.tmp, "failed.csv")
        p = self.batch("churn@champion", "--input", self.input, "--output", out,
                       "--max-rejects", "1")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("2 rows rejected (more than --max-rejects 1); first: line 3", p.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("failed.csv.tmp")], [])

    def test_job_is_a_run_and_a_monitoring_window(self):
        out = os.path.join(self.tmp, "tracked.csv")
        p = self.run_ok("churn@champion", "--input", self.input, "--output", out,
                        "--max-rejects", "2", "--monitor-sample", "1", "--experiment", "nightly")
        m = re.search(r", run ([0-9a-f]{32}), 299 rows to monitoring \(batch-\1-\*\)$",
                      p.stderr.strip())
        self.assertIsNotNone(m, p.stderr)
        run_id = m.group(1)
        with open(out) as f:
            scores = [float(r["churn_probability"]) for r in read_csv(f.read())]
        # A failing job (too many rejects) is a FAILED run saying why.
        p = self.batch("churn@champion", "--input", self.input, "--output", out + ".x",
                       "--experiment", "nightly")
        self.assertNotEqual(p.returncode, 0)
        with open(self.input, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.k.start()
        try:
            run = self.k.ok("GET", "runs/get", {"run_id": run_id})["run"]
            exp = self.k.ok("GET", "experiments/get-by-name", {"experiment_name": "nightly"})
            failed = self.k.ok("POST", "runs/search", {
                "experiment_ids": [exp["experiment"]["experiment_id"]],
                "filter": "attributes.status = 'FAILED'"})["runs"]
        finally:
            self.k.stop()
        self.assertEqual(run["info"]["status"], "FINISHED")
        self.assertEqual(run["info"]["experiment_id"], exp["experiment"]["experiment_id"])
        data = run["data"]
        metrics = {m["key"]: m["value"] for m in data["metrics"]}
        self.assertEqual((metrics["rows_in"], metrics["rows_out"], metrics["rows_rejected"],
                          metrics["rows_monitored"]), (301, 299, 2, 299))
        self.assertGreater(metrics["duration_s"], 0)
        tags = {t["key"]: t["value"] for t in data["tags"]}
        self.assertEqual(tags["keel.batch.input_sha256"], digest)
        self.assertEqual(tags["keel.model.name"], "churn")
        self.assertEqual(tags["keel.model.version"], "1")
        self.assertEqual(tags["mlflow.runName"], "batch-churn-v1")
        params = {t["key"]: t["value"] for t in data["params"]}
        self.assertEqual(params["model"], "churn@champion")
        self.assertEqual(params["input"], self.input)
        dataset = run["inputs"]["dataset_inputs"][0]["dataset"]
        self.assertEqual(dataset["digest"], digest[:8])
        self.assertEqual(len(failed), 1)
        self.assertIn("rows rejected", {t["key"]: t["value"] for t in
                                        failed[0]["data"]["tags"]}["keel.batch.error"])
        # The window: one prediction-log record per scored row, keyed by the run and line.
        import sqlite3
        with sqlite3.connect(os.path.join(self.k.data_dir, "keel.db")) as db:
            logged = db.execute(
                "SELECT request_id, model, version, endpoint, input, output FROM predictions "
                "WHERE request_id LIKE ? ORDER BY time, request_id", (f"batch-{run_id}-%",)
            ).fetchall()
        self.assertEqual(len(logged), 299)
        lines = sorted(int(r[0].rsplit("-", 1)[1]) for r in logged)
        self.assertEqual(lines, [2, *range(4, 6), *range(7, 303)])
        by_line = {int(r[0].rsplit("-", 1)[1]): r for r in logged}
        self.assertEqual(by_line[2][1:4], ("churn", "1", "batch"))
        number = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
        fields = next(csv.reader([self.good[0]]))
        self.assertEqual(json.loads(by_line[2][4]), {
            k: json.loads(v) if number.fullmatch(v) else v
            for k, v in zip(next(csv.reader([self.header])), fields)})
        self.assertEqual(json.loads(by_line[2][5]), scores[0])
        self.assertEqual(json.loads(by_line[302][5]), scores[-1])
        # A sample: about the share asked for, the same rows on a rerun.
        samples = []
        for _ in range(2):
            p = self.run_ok("churn@champion", "--input", self.input, "--output", out,
                            "--max-rejects", "2", "--monitor-sample", "0.3", "--no-track")
            samples.append(int(re.search(r"([0-9]+) rows to monitoring", p.stderr).group(1)))
        self.assertEqual(samples[0], samples[1])
        self.assertTrue(50 < samples[0] < 130, samples)

    def test_interrupted_job_is_killed_and_leaves_nothing(self):
        out = os.path.join(self.tmp, "interrupted.csv")
        cmd = [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
               self.k.artifact_root, "batch", "churn", "--input", "-", "--output", out,
               "--chunk-rows", "10", "--experiment", "interrupted"]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdin.write(self.header + "\n" + "\n".join(self.good[:100]) + "\n")
        p.stdin.flush()
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        p.stdin.write("\n".join(self.good[100:200]) + "\n")
        p.stdin.close()
        err = p.stderr.read()
        self.assertNotEqual(p.wait(timeout=60), 0, err)
        self.assertIn("interrupted after", err)
        self.assertFalse(os.path.exists(out))
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("interrupted.csv")], [])
        self.k.start()
        try:
            exp = self.k.ok("GET", "experiments/get-by-name", {"experiment_name": "interrupted"})
            runs = self.k.ok("POST", "runs/search", {
                "experiment_ids": [exp["experiment"]["experiment_id"]]})["runs"]
        finally:
            self.k.stop()
        self.assertEqual([r["info"]["status"] for r in runs], ["KILLED"])

    def test_pipes_and_local_package(self):
        with open(self.input) as f:
            text = f.read()
        p = self.batch(os.path.join(self.k.artifact_root,
                                    self.source_rel()), "--input", "-", "--output", "-",
                       "--max-rejects", "2", stdin=text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertScores(read_csv(p.stdout), self.expected())
        # Rejects go to stderr when the scores go to stdout.
        self.assertIn("rejected line 3:", p.stderr)

    def source_rel(self):
        import sqlite3
        with sqlite3.connect(os.path.join(self.k.data_dir, "keel.db")) as db:
            source = db.execute("SELECT source FROM model_versions WHERE name = 'churn' AND "
                                "version = 1").fetchone()[0]
        return source.split("mlflow-artifacts:/", 1)[1]

    def run_ok(self, *args, stdin=None):
        p = self.batch(*args, stdin=stdin)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_compressed_input_and_output(self):
        plain = os.path.join(self.tmp, "plain.csv")
        self.run_ok("churn", "--input", self.input, "--output", plain, "--max-rejects", "2")
        with open(plain, "rb") as f:
            want = f.read()
        gz_in = os.path.join(self.tmp, "in.csv.gz")
        with open(self.input, "rb") as f, gzip.open(gz_in, "wb") as g:
            g.write(f.read())
        zst_in = os.path.join(self.tmp, "in.csv.zst")
        subprocess.run(["zstd", "-q", "-f", self.input, "-o", zst_in], check=True)
        for src in (gz_in, zst_in):
            for ext in (".gz", ".zst"):
                out = os.path.join(self.tmp, "out" + os.path.basename(src) + ext)
                self.run_ok("churn", "--input", src, "--output", out, "--max-rejects", "2")
                if ext == ".gz":
                    with gzip.open(out, "rb") as g:
                        got = g.read()
                else:
                    got = subprocess.run(["zstd", "-q", "-d", "-c", out], check=True,
                                         capture_output=True).stdout
                self.assertEqual(got, want, (src, ext))
        # Corrupt compressed input fails and writes nothing.
        with open(gz_in, "rb") as f:
            data = f.read()
        for name, body, why in (("cut.csv.gz", data[:len(data) // 2], "gzip: "),
                                ("bad.csv.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 40, "zstd: ")):
            path = os.path.join(self.tmp, name)
            with open(path, "wb") as f:
                f.write(body)
            out = os.path.join(self.tmp, name + ".out.csv")
            p = self.batch("churn", "--input", path, "--output", out, "--max-rejects", "1000")
            self.assertNotEqual(p.returncode, 0, name)
            self.assertIn(name + ": " + why, p.stderr)
            self.assertFalse(os.path.exists(out))

    def test_json_lines(self):
        recs = typed_records(self.header, self.good[:40])
        recs[3]["total_day_minutes"] = None   # a missing value
        del recs[4]["total_eve_minutes"]      # absent: missing too
        lines = [json.dumps(r) for r in recs]
        lines.insert(10, '{"state": "KS", "account_length": "abc"}')  # line 11: rejected
        lines.insert(20, "")                                            # blank: skipped
        path = os.path.join(self.tmp, "in.jsonl.gz")
        with gzip.open(path, "wt") as g:
            g.write("\n".join(lines) + "\n")
        out = os.path.join(self.tmp, "jsonl.csv")
        p = self.run_ok("churn", "--input", path, "--output", out, "--id-column", "state",
                        "--keep-columns", "account_length", "--max-rejects", "1")
        self.assertIn("41 rows in, 40 scored, 1 rejected", p.stderr)
        with open(out) as f:
            rows = read_csv(f.read())
        self.assertScores(rows, self.ref.predict(recs))
        self.assertEqual([r["state"] for r in rows], [r["state"] for r in recs])
        self.assertEqual(rows[0]["account_length"], "128.0")  # the JSON text as given
        with open(out + ".rejects.csv") as f:
            self.assertEqual([r["line"] for r in read_csv(f.read())], ["11"])

    def test_memory_stays_bounded(self):
        # About 500 MB of CSV through a pipe (never on disk); keel's peak RSS must
        # stay far below it. Under ASan the shadow memory makes RSS meaningless.
        if "asan" in keel_binary():
            self.skipTest("RSS is not meaningful under AddressSanitizer")
        row = self.good[0].encode() + b"\n"
        rows = (500 << 20) // len(row)
        # GNU time measures keel alone: a child forked from this Python process
        # would carry Python's own peak RSS into ru_maxrss across exec.
        rss_file = os.path.join(self.tmp, "maxrss")
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file, keel_binary(),
               "--store-uri", self.k.store_uri, "--artifact-root", self.k.artifact_root,
               "batch", "churn", "--input", "-", "--output", os.path.join(self.tmp, "big.csv.zst")]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        block = row * 4096
        p.stdin.write(self.header.encode() + b"\n")
        for _ in range(rows // 4096):
            p.stdin.write(block)
        p.stdin.close()
        err = p.stderr.read().decode()
        self.assertEqual(p.wait(), 0, err)
        scored = rows // 4096 * 4096
        self.assertIn(f"batch: {scored} rows in, {scored} scored", err)
        with open(rss_file) as f:
            peak_mb = int(f.read().split()[-1]) / 1024
        self.assertLess(peak_mb, 120, f"peak RSS {peak_mb:.0f} MB for 500 MB of input")

    def test_bad_invocations(self):
        out = os.path.join(self.tmp, "x.csv")
        missing = os.path.join(self.tmp, "missing-col.csv")
        with open(missing, "w") as f:
            f.write("state,account_length\nKS,1\n")
        for args, part in (
                (["churn@champion", "--input", missing, "--output", out],
                 "missing-col.csv: CSV header lacks input column 'area_code'"),
                (["churn@champion", "--input", self.input, "--output", out,
                  "--id-column", "nope"], "'nope'"),
                (["nosuch@champion", "--input", self.input, "--output", out], "nosuch"),
                (["churn@champion", "--input", os.path.join(self.tmp, "none.csv"),
                  "--output", out], "none.csv")):
            p = self.batch(*args)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(part, p.stderr)
            self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main(verbosity=2)
