"""End-to-end tests of `keel retrain`: one job behind the champion/challenger
gate, on the embedded store, with the real binary.

A churn model (the champion) is trained on the first half of
../shared/data/mlc_churn.csv. The second half carries a planted concept
change: its label is no longer churn but "total_eve_minutes above its median"
(the inputs are unchanged; the relationship X -> y is new). Those rows are
scored by `keel batch` into the prediction log and labeled with the new
concept. Checks:
  - a retrain on the base data plus the labeled window beats the champion on
    the newest 30% of the window (never trained on) and is promoted: alias
    moved with the job named in the alias history, data versions recorded,
    gate scores equal to scikit-learn's AUC of each model on the holdout;
  - a worse challenger (trained without the window) is rejected and the
    champion is untouched;
  - the team's own trainer as a command ({output_dir}), its failure (exit
    status and output in the job), and a timeout that stops it;
  - a job killed with SIGKILL registers nothing, and the next job marks it
    interrupted and ends its run FAILED;
  - `keel retrain history` shows every decision; bad policies and a missing
    model are one-line errors;
  - one job per model across processes: a second `keel retrain` of the model
    is refused while one runs; `keel retrain cancel` and the REST cancel (on
    a server without policies) stop a job running in another process within
    seconds (cancelled, its command gone, its run KILLED, the champion
    untouched); Ctrl-C stops keel's own trainer mid-training the same way.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_retrain.py
"""
import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import REPO, KeelServer, concept_change_split, keel_binary  # noqa: E402

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")


class RetrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-retrain-")
        d = cls.tmp.name
        header, cls.base, recent, cls.new_labels = concept_change_split(CHURN, d)
        cls.header = header
        recent_path = os.path.join(d, "recent.csv")
        with open(recent_path, "w", newline="") as f:
            csv.writer(f).writerows([header] + recent)
        cls.recent = recent

        cls.env = dict(os.environ)
        cls.env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(d, "store", "keel.db")
        cls.env["KEEL_ARTIFACT_ROOT"] = os.path.join(d, "store", "artifacts")
        cls.run_keel("train", "--data", cls.base, "--target", "churn", "--param", "n_estimators=40",
                     "--experiment", "churn", "--register", "churn")
        cls.run_keel("models", "alias", "churn@champion", "1")
        scores = os.path.join(d, "scores.csv")
        p = cls.run_keel("batch", "churn@champion", "--input", recent_path, "--output", scores,
                         "--monitor-sample", "1", "--no-track")
        prefix = re.search(r"\((batch-[0-9a-f]+-)\*\)", p.stdout + p.stderr).group(1)
        cls.ids = [f"{prefix}{i + 2}" for i in range(len(recent))]
        labels = os.path.join(d, "labels.csv")
        with open(labels, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "label"])
            w.writerows(zip(cls.ids, cls.new_labels))
        cls.run_keel("labels", "import", labels)
        # A real server on the same store, to read the registry's state.
        cls.server = KeelServer(data_dir=os.path.join(d, "store")).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    @classmethod
    def run_keel(cls, *args, check=True, timeout=300):
        p = subprocess.run([keel_binary()] + list(args), capture_output=True, text=True,
                           env=cls.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"keel {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def policy(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def alias_version(self, alias):
        r = self.server.get("registered-models/alias",
                            params={"name": "churn", "alias": alias})
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["model_version"]["version"]

    def version(self, v):
        r = self.server.get("model-versions/get",
                            params={"name": "churn", "version": v})
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["model_version"]

    def holdout_rows(self):
        """Indexes (into self.recent) of the holdout: the newest ceil(30%) of the labeled
        predictions by (time, request id), read from the store's file."""
        db = sqlite3.connect(self.env["KEEL_STORE_URI"][len("sqlite://"):])
        try:
            ids = [r[0] for r in db.execute(
                "SELECT p.request_id FROM predictions p JOIN labels l ON l.request_id = p.request_id "
                "WHERE p.model = 'churn' ORDER BY p.time DESC, p.request_id DESC")]
        finally:
            db.close()
        take = -(-len(ids) * 3 // 10)
        index = {rid: i for i, rid in enumerate(self.ids)}
        return sorted(index[rid] for rid in ids[:take])

    def holdout_auc(self, version):
        """scikit-learn's AUC of a registered version on the holdout rows."""
        keep = self.holdout_rows()
        rows = [self.recent[i] for i in keep]
        path = os.path.join(self.tmp.name, f"holdout-{version}.csv")
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([self.header] + rows)
        out = os.path.join(self.tmp.name, f"holdout-{version}-scores.csv")
        self.run_keel("batch", f"churn/{version}", "--input", path, "--output", out,
                      "--monitor-sample", "0", "--no-track")
        with open(out, newline="") as f:
            scores = [float(r[0]) for r in list(csv.reader(f))[1:]]
        y = [1 if self.new_labels[i] == "yes" else 0 for i in keep]
        return roc_auc_score(y, scores), len(rows)

    def test_1_retrain_on_the_window_is_promoted(self):
        path = self.policy("retrain.yaml", f"""
model: churn
train: {{ data: {self.base}, target: churn, model: xgboost, params: {{ n_estimators: 40 }} }}
window: {{ recent: 30d, include_labeled_predictions: true }}
gate: {{ metric: auc, min_delta: 0.0, max_regression: 1.0, min_rows: 500, holdout: recent }}
promote: champion
""")
        p = self.run_keel("retrain", "churn", "--policy", path, "--json")
        job = json.loads(p.stdout)
        self.assertEqual(job["status"], "promoted", job)
        self.assertEqual(job["champion_version"], "1")
        self.assertEqual(job["challenger_version"], "2")
        self.assertEqual(job["trigger"], "manual")
        gate = job["gate"]
        self.assertTrue(gate["passed"], gate)
        self.assertEqual(gate["metric"], "auc")
        n = len(self.recent)
        holdout = -(-n * 3 // 10)
        self.assertEqual(gate["holdout_rows"], holdout)
        # The gate's scores are each model's AUC on the holdout, as scikit-learn computes it.
        champion_auc, rows = self.holdout_auc("1")
        challenger_auc, _ = self.holdout_auc("2")
        self.assertEqual(rows, holdout)
        self.assertAlmostEqual(gate["champion"], champion_auc, places=6)
        self.assertAlmostEqual(gate["challenger"], challenger_auc, places=6)
        self.assertLess(gate["champion"], 0.6)    # the old concept does not hold any more
        self.assertGreater(gate["challenger"], gate["champion"] + 0.1)
        roles = {d["role"]: d for d in job["data"]}
        with open(self.base) as f:
            self.assertEqual(roles["data"]["rows"], len(f.readlines()) - 1)
        self.assertEqual(len(roles["data"]["sha256"]), 64)
        self.assertEqual(roles["window"]["rows"], n - holdout)
        self.assertEqual(roles["holdout"]["rows"], holdout)
        self.assertLessEqual(roles["window"]["to_ms"], roles["holdout"]["from_ms"])
        # Each source has a data version: SHA-256 of the file's bytes, or of
        # the logged rows (inputs and labels) read for the window and holdout.
        shas = [roles[r]["sha256"] for r in ("data", "window", "holdout")]
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{64}", h) for h in shas), shas)
        self.assertEqual(len(set(shas)), 3)

        self.assertEqual(self.alias_version("champion"), "2")
        self.assertEqual(self.alias_version("challenger"), "2")
        # The alias history names the job; version 1 stays registered for a rollback.
        r = self.server.session.get(self.server.url + "/api/2.0/keel/registered-models/alias-history",
                                    params={"name": "churn", "alias": "champion"})
        changes = r.json()["changes"]
        self.assertEqual(changes[0]["to_version"], "2")
        self.assertEqual(changes[0]["from_version"], "1")
        self.assertIn("retrain job 1", changes[0]["reason"])
        self.assertIn("gate passed", changes[0]["reason"])
        self.assertEqual(self.version("1")["status"], "READY")
        self.assertEqual(self.version("2")["run_id"], job["run_id"])

    def test_2_a_worse_challenger_is_rejected(self):
        path = self.policy("worse.yaml", f"""
model: churn
train: {{ data: {self.base}, target: churn, params: {{ n_estimators: 2, max_depth: 1 }} }}
window: {{ include_labeled_predictions: false }}
gate: {{ min_rows: 500 }}
""")
        before = self.alias_version("champion")
        p = self.run_keel("retrain", "churn", "--policy", path)
        self.assertIn("rejected", p.stdout)
        self.assertIn("is below gate.min_delta", p.stdout)
        self.assertEqual(self.alias_version("champion"), before)
        hist = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        self.assertEqual(hist[0]["status"], "rejected")
        self.assertFalse(hist[0]["gate"]["passed"])
        self.assertLess(hist[0]["gate"]["challenger"], hist[0]["gate"]["champion"])
        self.assertEqual(self.alias_version("challenger"), hist[0]["challenger_version"])

    def test_3_the_teams_own_trainer(self):
        # "Training" copies version 1's package: the old concept, so rejected.
        run_id = self.version("1")["run_id"]
        pkg = None
        for root, dirs, files in os.walk(self.env["KEEL_ARTIFACT_ROOT"]):
            if "MLmodel" in files and run_id in root:
                pkg = root
                break
        self.assertIsNotNone(pkg, run_id)
        path = self.policy("command.yaml", f"""
model: churn
train: {{ command: "echo copying the package; test -s {{data}} && cp -r {pkg} {{output_dir}}/model", target: churn }}
gate: {{ min_rows: 500 }}
""")
        job = json.loads(self.run_keel("retrain", "churn", "--policy", path, "--json").stdout)
        self.assertEqual(job["status"], "rejected", job)
        # The job's log: its steps in order, with the command's output.
        texts = [line["text"] for line in job["log"]]
        self.assertRegex(texts[0], r"^job \d+ started: manual")
        self.assertTrue(any(t == "training command output:\ncopying the package\n" for t in texts),
                        texts)
        self.assertTrue(any("registered churn version " + job["challenger_version"] in t
                            for t in texts), texts)
        self.assertTrue(texts[-1].startswith(f"job {job['id']} rejected: "), texts)
        times = [line["time_ms"] for line in job["log"]]
        self.assertEqual(times, sorted(times))
        stored = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        self.assertEqual([j["log"] for j in stored if j["id"] == job["id"]], [job["log"]])
        self.assertTrue(job["run_id"])
        r = self.server.get("runs/get", params={"run_id": job["run_id"]})
        self.assertEqual(r.json()["run"]["info"]["status"], "FINISHED")
        self.assertEqual(self.version(job["challenger_version"])["run_id"], job["run_id"])

        failing = self.policy("failing.yaml", """
model: churn
train: { command: "echo training broke >&2; exit 3", target: churn }
""")
        before = self.alias_version("champion")
        p = self.run_keel("retrain", "churn", "--policy", failing, check=False)
        self.assertNotEqual(p.returncode, 0)
        last = p.stderr.strip().splitlines()[-1]
        self.assertRegex(last, r"^keel: error: retrain job \d+ failed: the training command "
                               r"exited with status 3: training broke$")
        failed = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        failed_log = [line["text"] for line in failed[0]["log"]]
        self.assertIn("training command output:\ntraining broke\n", failed_log)
        self.assertEqual(self.alias_version("champion"), before)

        slow = self.policy("slow.yaml", """
model: churn
train: { command: "sleep 60", target: churn }
job: { timeout: 1s }
""")
        t0 = time.monotonic()
        p = self.run_keel("retrain", "churn", "--policy", slow, check=False)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cancelled: timed out after 1s", p.stderr)
        # The command's process group is gone with the job.
        left = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True)
        self.assertEqual(left.stdout.strip(), "", "the timed-out command is still running")
        self.assertEqual(self.alias_version("champion"), before)

    def test_4_a_killed_job_registers_nothing(self):
        slow = self.policy("killed.yaml", """
model: churn
train: { command: "sleep 67", target: churn }
""")
        before_champion = self.alias_version("champion")
        before_jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        versions_before = self.server.get("registered-models/get", params={"name": "churn"}).json()
        proc = subprocess.Popen([keel_binary(), "retrain", "churn", "--policy", slow],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        job = None
        while time.monotonic() < deadline:
            jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
            if len(jobs) > len(before_jobs) and jobs[0]["status"] == "running":
                job = jobs[0]
                break
            time.sleep(0.1)
        self.assertIsNotNone(job, "the job never showed as running")
        time.sleep(0.5)  # inside the command
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        # The command's process group outlives a killed keel (documented): end it here.
        subprocess.run(["pkill", "-f", "sleep 67"], check=False)
        # Nothing was registered and the champion is untouched.
        self.assertEqual(self.alias_version("champion"), before_champion)
        after = self.server.get("registered-models/get", params={"name": "churn"}).json()
        self.assertEqual(after["registered_model"].get("latest_versions"),
                         versions_before["registered_model"].get("latest_versions"))
        # The next job marks it as interrupted.
        quick = self.policy("quick.yaml", """
model: churn
train: { command: "exit 1", target: churn }
""")
        p = self.run_keel("retrain", "churn", "--policy", quick, check=False)
        self.assertIn("marked 1 retraining job(s) of stopped processes as failed", p.stderr)
        jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        killed = [j for j in jobs if j["id"] == job["id"]][0]
        self.assertEqual(killed["status"], "failed")
        self.assertIn("interrupted", killed["message"])
        # Its run, named in the job's record from the start, ended FAILED with it.
        self.assertTrue(killed["run_id"], killed)
        run = self.server.get("runs/get", params={"run_id": killed["run_id"]}).json()["run"]
        self.assertEqual(run["info"]["status"], "FAILED")
        self.assertIn("end_time", run["info"])

    def start_slow_job(self, name, seconds):
        """`keel retrain churn` with a command that sleeps, in the background; returns
        (process, its job once it shows as running)."""
        slow = self.policy(name, f"""
model: churn
train: {{ command: "sleep {seconds}", target: churn }}
""")
        before = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        proc = subprocess.Popen([keel_binary(), "retrain", "churn", "--policy", slow],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
            if len(jobs) > len(before) and jobs[0]["status"] == "running" and jobs[0]["run_id"]:
                return proc, jobs[0]
            time.sleep(0.1)
        proc.kill()
        self.fail("the job never showed as running with its run")

    def finish(self, proc, seconds=30):
        """Waits for a background keel; returns (exit status, stderr's last line)."""
        _, err = proc.communicate(timeout=seconds)
        return proc.returncode, err.strip().splitlines()[-1]

    def test_6_one_job_per_model_and_cancel_from_another_process(self):
        champion = self.alias_version("champion")
        proc, job = self.start_slow_job("sleepy.yaml", 68)
        # A second job of the same model, from another process, does not start.
        second = self.policy("second.yaml", "model: churn\ntrain: { command: \"exit 0\", target: churn }\n")
        p = self.run_keel("retrain", "churn", "--policy", second, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr.strip(),
                         rf"^keel: error: model 'churn' already has retraining job {job['id']} "
                         rf"running \(in {re.escape(job['host'])}:{job['pid']}:[^)]+\); one job "
                         r"per model at a time: wait for it, or cancel it \(keel retrain cancel "
                         r"churn\)$")
        # keel retrain cancel, from a third process, stops it within seconds.
        t0 = time.monotonic()
        p = self.run_keel("retrain", "cancel", "churn")
        self.assertIn("cancelled 0 queued job(s) of churn; asked 1 running job(s) to stop", p.stdout)
        code, last = self.finish(proc)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertNotEqual(code, 0)
        self.assertRegex(last, rf"^keel: error: retrain job {job['id']} cancelled: cancelled by "
                               r"\S+: the training command was stopped$")
        jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        self.assertEqual((jobs[0]["id"], jobs[0]["status"]), (job["id"], "cancelled"))
        run = self.server.get("runs/get", params={"run_id": job["run_id"]}).json()["run"]
        self.assertEqual(run["info"]["status"], "KILLED")
        left = subprocess.run(["pgrep", "-f", "sleep 68"], capture_output=True, text=True)
        self.assertEqual(left.stdout.strip(), "", "the cancelled command is still running")
        self.assertEqual(self.alias_version("champion"), champion)
        # Nothing left to cancel: one line, non-zero.
        p = self.run_keel("retrain", "cancel", "churn", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.strip(), "keel: error: no retraining job of model 'churn' is "
                                           "queued, running or in its shadow phase")

        # The same over REST, on a server without policies of its own (any
        # replica on the store takes it).
        proc, job = self.start_slow_job("sleepy2.yaml", 69)
        r = self.server.session.post(self.server.url + "/api/2.0/keel/retrain/jobs/cancel",
                                     json={"model": "churn"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {"model": "churn", "cancelled": "job", "queued": 0, "running": 1})
        code, last = self.finish(proc)
        self.assertNotEqual(code, 0)
        self.assertRegex(last, rf"^keel: error: retrain job {job['id']} cancelled: cancelled by ")
        self.assertEqual(self.alias_version("champion"), champion)

    def test_7_ctrl_c_stops_keels_own_trainer(self):
        champion = self.alias_version("champion")
        path = self.policy("long.yaml", f"""
model: churn
train: {{ data: {self.base}, target: churn, params: {{ n_estimators: 100000, max_depth: 8 }} }}
""")
        before = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        proc = subprocess.Popen([keel_binary(), "retrain", "churn", "--policy", path],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        # Interrupted once the trainer reports its rounds (keel retrain prints
        # each step on stderr): inside training, not before or after it.
        seen = []
        stuck = threading.Timer(60, proc.kill)  # a trainer gone quiet fails, not hangs
        stuck.start()
        try:
            for line in proc.stderr:
                seen.append(line)
                if line.startswith("round "):
                    break
        finally:
            stuck.cancel()
        self.assertTrue(seen and seen[-1].startswith("round "), "".join(seen))
        jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        self.assertEqual(len(jobs), len(before) + 1)
        job = jobs[0]
        self.assertEqual(job["status"], "running")
        self.assertTrue(job["run_id"], job)
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        code, last = self.finish(proc, seconds=60)
        self.assertNotEqual(code, 0)
        self.assertRegex(last, rf"^keel: error: retrain job {job['id']} cancelled: ")
        jobs = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)["jobs"]
        self.assertEqual((jobs[0]["id"], jobs[0]["status"]), (job["id"], "cancelled"))
        self.assertEqual(jobs[0]["challenger_version"], "")
        run = self.server.get("runs/get", params={"run_id": job["run_id"]}).json()["run"]
        self.assertEqual(run["info"]["status"], "KILLED")
        self.assertEqual(self.alias_version("champion"), champion)

    def test_5_history_and_errors(self):
        p = self.run_keel("retrain", "history", "churn")
        for word in ("promoted", "rejected", "failed", "cancelled", "manual"):
            self.assertIn(word, p.stdout)
        bad = self.policy("bad.yaml", "model: churn\ntrain: { data: x.csv, target: churn }\n"
                                      "gate: { min_rows: many }\n")
        p = self.run_keel("retrain", "churn", "--policy", bad, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("gate.min_rows: expected a non-negative integer, got 'many'", p.stderr)
        good = self.policy("good.yaml", f"model: churn\ntrain: {{ data: {self.base}, target: churn }}\n")
        p = self.run_keel("retrain", "nosuch", "--policy", good, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no policy for model 'nosuch'", p.stderr)
        p = self.run_keel("retrain", "churn", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--policy FILE is required", p.stderr)
        # Against a server: history reads the same records over REST; a manual
        # job needs a server that runs policies (this one runs none).
        remote = ["--tracking-uri", self.server.url]
        local = json.loads(self.run_keel("retrain", "history", "churn", "--json").stdout)
        over_rest = json.loads(self.run_keel(*remote, "retrain", "history", "churn",
                                             "--json").stdout)
        self.assertEqual(over_rest, local)
        self.assertGreaterEqual(len(local["jobs"]), 5)
        p = self.run_keel(*remote, "retrain", "churn", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.strip(), "keel: error: this server runs no retraining policies; "
                                           "start it with --retrain-policies FILE")
        p = self.run_keel(*remote, "retrain", "churn", "--policy", good, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("leave out --policy", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
