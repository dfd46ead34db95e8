"""The whole retraining loop inside `keel server`: a concept change in live
traffic, the performance-decay alert, a retraining job triggered by it, the
gate, the promotion, the hot swap, and the new champion's live performance.

A churn champion is trained on the first half of ../shared/data/mlc_churn.csv.
The server monitors every 300 ms with one rule (AUC more than 0.1 below
validation on a 1-minute window with at least 300 labeled predictions) and
runs a policy that retrains on that alert (base data plus the labeled window;
gate on the newest 30%). Traffic from the second half carries a planted
concept change (the label becomes "total_eve_minutes above its median") and
is sent through /predict with its labels. Checks:
  - no alert and no job before the change (the first 400 rows keep the old
    concept);
  - after it: the alert fires, one job runs with trigger alert:auc_decay and
    is promoted, the champion alias moves to version 2, and the server's
    answers come from version 2 without a restart (hot swap);
  - the new champion's AUC on fresh traffic of the new concept is far above
    the old champion's on the same rows (recovery), measured with
    scikit-learn on the served probabilities;
  - the job's audit record and the alias history name the alert.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_retrain_loop.py
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import (REPO, KeelServer, concept_change_split, keel_binary,  # noqa: E402
                          ServerClock, predict_and_label, wait_for_monitor_passes)

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")

RULES = """rules:
  - {name: auc_decay, metric: performance.auc.drop, threshold: 0.1,
     window: 1m, min_samples: 300, cooldown: 1h, severity: critical}
"""


def run_keel(env, *args):
    p = subprocess.run([keel_binary()] + list(args), capture_output=True, text=True, env=env,
                       timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def write_policy(directory, text):
    """Writes a retraining policy as `directory`/retrain.yaml; returns its path."""
    path = os.path.join(directory, "retrain.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


class StoreAndServer(unittest.TestCase):
    """A temporary store for the class, a server on it, and the alias read back."""

    @classmethod
    def make_store(cls, prefix):
        cls.tmp = tempfile.TemporaryDirectory(prefix=prefix)
        cls.store = os.path.join(cls.tmp.name, "store")
        cls.env = dict(os.environ)
        cls.env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(cls.store, "keel.db")
        cls.env["KEEL_ARTIFACT_ROOT"] = os.path.join(cls.store, "artifacts")
        return cls.tmp.name

    @classmethod
    def champion_on_base(cls, prefix, *train_params):
        """A store holding churn version 1, trained on the first half of the
        data (base.csv) and aliased champion. Returns (store folder, base.csv,
        [(row, label of the changed concept)] of the second half)."""
        d = cls.make_store(prefix)
        header, base, later, new_labels = concept_change_split(CHURN, d)
        cls.header = header
        params = []
        for p in train_params or ("n_estimators=40",):
            params += ["--param", p]
        run_keel(cls.env, "train", "--data", base, "--target", "churn", *params, "--experiment",
                 "churn", "--register", "churn")
        run_keel(cls.env, "models", "alias", "churn@champion", "1")
        return d, base, list(zip(later, new_labels))

    @classmethod
    def start_server(cls, *args, env=None):
        cls.server = KeelServer(data_dir=cls.store, env=env, extra_args=list(args) + [
            "--log-flush-ms", "20", "--poll-ms", "100"])
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.session.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def jobs(self):
        """The model's retraining jobs, newest first, as `keel retrain history` gives them."""
        return json.loads(run_keel(self.env, "retrain", "history", "churn", "--json").stdout)["jobs"]

    def wait_job(self, statuses, timeout=240, jobs=None):
        """The newest job once its status is one of `statuses` (jobs: how to list them)."""
        jobs = jobs or self.jobs
        deadline = time.time() + timeout
        while time.time() < deadline:
            listed = jobs()
            if listed and listed[0]["status"] in statuses:
                return listed[0]
            time.sleep(0.2)
        self.fail(f"no job reached {statuses}: {jobs()}")

    def champion(self):
        r = self.server.get("registered-models/alias", params={"name": "churn", "alias": "champion"})
        return r.json()["model_version"]["version"]


class RetrainLoopTest(StoreAndServer):
    @classmethod
    def setUpClass(cls):
        d = cls.make_store("keel-loop-")
        header, cls.base, later, new_labels = concept_change_split(CHURN, d)
        cls.header = header
        churn = header.index("churn")
        cls.old = [(r, r[churn]) for r in later[:400]]                   # the old concept
        changed = list(zip(later[400:], new_labels[400:]))
        cls.changed, cls.fresh = changed[:1600], changed[1600:]          # fresh: after the swap

        run_keel(cls.env, "train", "--data", cls.base, "--target", "churn", "--param",
                 "n_estimators=40", "--experiment", "churn", "--register", "churn")
        run_keel(cls.env, "models", "alias", "churn@champion", "1")
        rules = os.path.join(d, "rules.yaml")
        with open(rules, "w") as f:
            f.write(RULES)
        policy = write_policy(d, f"""
model: churn
train: {{ data: {cls.base}, target: churn, params: {{ n_estimators: 40 }} }}
on_alerts: [auc_decay]
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.05, max_regression: 1.0, min_rows: 300 }}
""")
        cls.start_server("--monitor-interval", "300ms", "--alert-rules", rules,
                         "--retrain-policies", policy)

    def send(self, pairs, label=True):
        """(probabilities, versions that answered) of pairs sent through /predict."""
        return predict_and_label(self.server, self.header, pairs, label=label)

    def alerts(self):
        return json.loads(run_keel(self.env, "alerts", "list", "--json").stdout)["alerts"]

    def test_the_loop(self):
        # Before the change: the old concept holds; no alert, no job.
        _, versions = self.send(self.old)
        self.assertEqual(versions, {"1"})
        # A pass that began after the last label has ended: it saw all of it.
        # (Stored windows are not waited for: a 1-minute window is stored at
        # most once a minute, maybe from a pass that saw part of the traffic.)
        wait_for_monitor_passes(self.server)
        self.assertEqual([a for a in self.alerts() if a["rule"] == "auc_decay"], [])
        self.assertEqual(self.jobs(), [])

        # The concept changes.
        old_probs, _ = self.send(self.changed)
        deadline = time.time() + 240
        job = None
        while time.time() < deadline:
            jobs = self.jobs()
            if jobs and jobs[0]["status"] != "running":
                job = jobs[0]
                break
            time.sleep(0.5)
        self.assertIsNotNone(job, "no finished retraining job after the change")
        self.assertEqual(len(self.jobs()), 1)
        self.assertEqual(job["trigger"], "alert:auc_decay")
        self.assertEqual(job["actor"], "keel-monitor")
        self.assertEqual(job["status"], "promoted", job)
        self.assertGreater(job["gate"]["challenger"], job["gate"]["champion"] + 0.05)
        alerts = [a for a in self.alerts() if a["rule"] == "auc_decay"]
        self.assertEqual(len(alerts), 1)
        self.assertEqual(self.champion(), job["challenger_version"])

        # Hot swap: the server answers with the new version, no restart.
        deadline = time.time() + 30
        while time.time() < deadline:
            _, versions = self.send(self.fresh[:50], label=False)
            if versions == {job["challenger_version"]}:
                break
            time.sleep(0.1)
        self.assertEqual(versions, {job["challenger_version"]})

        # Recovery: on fresh rows of the new concept, the new champion ranks far
        # better than the old one did on the changed traffic.
        new_probs, _ = self.send(self.fresh)
        y_fresh = [1 if y == "yes" else 0 for _, y in self.fresh]
        y_changed = [1 if y == "yes" else 0 for _, y in self.changed]
        auc_new = roc_auc_score(y_fresh, new_probs)
        auc_old = roc_auc_score(y_changed, old_probs)
        self.assertLess(auc_old, 0.65)
        self.assertGreater(auc_new, auc_old + 0.2)
        print(f"\nlive AUC of the new concept: old champion {auc_old:.3f} on "
              f"{len(y_changed)} rows, new champion {auc_new:.3f} on {len(y_fresh)} rows",
              file=sys.stderr)

        # The read endpoint gives the same records as `keel retrain history`.
        r = self.server.session.get(self.server.url + "/api/2.0/keel/retrain/jobs",
                                    params={"model": "churn"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["jobs"], self.jobs())
        r = self.server.session.get(self.server.url + "/api/2.0/keel/retrain/jobs",
                                    params={"limit": "0"})
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn("limit must be between 1 and 1000", r.json()["message"])

        # The alias history names the job and the alert.
        r = self.server.session.get(self.server.url + "/api/2.0/keel/registered-models/alias-history",
                                    params={"name": "churn", "alias": "champion"})
        change = r.json()["changes"][0]
        self.assertEqual(change["actor"], "keel-monitor")
        self.assertIn(f"retrain job {job['id']} (alert:auc_decay)", change["reason"])


class WatchRollbackTest(StoreAndServer):
    """A deliberately bad forced promotion is rolled back by the watch: version
    2 is trained on the changed concept, forced to champion by hand, and then
    scored on traffic of the old concept; the server's watch compares it with
    version 1 on those same rows and moves the alias back."""

    @classmethod
    def setUpClass(cls):
        d = cls.make_store("keel-watch-")
        header, base, later, new_labels = concept_change_split(CHURN, d)
        cls.header = header
        churn = header.index("churn")
        cls.old = [(r, r[churn]) for r in later[:600]]
        changed = os.path.join(d, "changed.csv")
        with open(changed, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for r, y in zip(later, new_labels):
                w.writerow(r[:churn] + [y] + r[churn + 1:])
        for data in (base, changed):
            run_keel(cls.env, "train", "--data", data, "--target", "churn", "--param",
                     "n_estimators=40", "--experiment", "churn", "--register", "churn")
        run_keel(cls.env, "models", "alias", "churn@champion", "1")
        policy = write_policy(d, f"""
model: churn
train: {{ data: {base}, target: churn }}
gate: {{ min_rows: 300 }}
watch: {{ duration: 1h, rollback_if: {{ metric: auc, drop_more_than: 0.05 }} }}
""")
        cls.start_server("--monitor-interval", "off", "--retrain-policies", policy,
                         "--retrain-watch-interval", "200ms")

    def test_a_bad_forced_promotion_is_rolled_back(self):
        run_keel(self.env, "models", "alias", "churn@champion", "2", "--reason", "forced")
        deadline = time.time() + 30
        while time.time() < deadline:  # the server follows the alias
            _, versions = predict_and_label(self.server, self.header, self.old[:50], label=False)
            if versions == {"2"}:
                break
            time.sleep(0.1)
        self.assertEqual(versions, {"2"})
        predict_and_label(self.server, self.header, self.old[50:])  # 550 labeled rows for v2
        # The alias moves first, then the record and the alert are written.
        deadline = time.time() + 60
        while time.time() < deadline:
            jobs = json.loads(run_keel(self.env, "retrain", "history", "churn", "--json").stdout)["jobs"]
            alerts = json.loads(run_keel(self.env, "alerts", "list", "--json").stdout)["alerts"]
            if self.champion() == "1" and jobs and jobs[0]["status"] != "running" and alerts:
                break
            time.sleep(0.2)
        self.assertEqual(self.champion(), "1")
        self.assertEqual(len(jobs), 1)
        job = jobs[0]
        self.assertEqual((job["trigger"], job["status"], job["actor"]),
                         ("watch", "rolled_back", "keel-watch"))
        self.assertEqual((job["champion_version"], job["challenger_version"]), ("2", "1"))
        # In a watch record "champion" is the version under watch (2), "challenger" the one before.
        self.assertGreater(job["gate"]["challenger"] - job["gate"]["champion"], 0.05)
        self.assertGreaterEqual(job["gate"]["holdout_rows"], 300)
        self.assertEqual([a["rule"] for a in alerts], ["watch_rollback"])
        self.assertEqual(alerts[0]["severity"], "critical")
        r = self.server.session.get(self.server.url + "/api/2.0/keel/registered-models/alias-history",
                                    params={"name": "churn", "alias": "champion"})
        change = r.json()["changes"][0]
        self.assertEqual((change["actor"], change["from_version"], change["to_version"]),
                         ("keel-watch", "2", "1"))
        # The server answers from version 1 again.
        deadline = time.time() + 30
        while time.time() < deadline:
            _, versions = predict_and_label(self.server, self.header, self.old[:10], label=False)
            if versions == {"1"}:
                break
            time.sleep(0.1)
        self.assertEqual(versions, {"1"})
        print(f"\nwatch: auc {job['gate']['challenger']:.3f} (version 1) vs "
              f"{job['gate']['champion']:.3f} (version 2) on {job['gate']['holdout_rows']} rows",
              file=sys.stderr)


class ShadowPhaseTest(StoreAndServer):
    """A job started over REST passes the gate and enters its shadow phase:
    the challenger takes the `shadow` alias and scores live traffic beside
    the champion without answering; once shadow.duration has passed with
    shadow.min_requests shadowed requests, the server compares the two on
    those requests (with their labels) and promotes."""

    @classmethod
    def setUpClass(cls):
        d, base, changed = cls.champion_on_base("keel-shadow-")
        cls.window, cls.live = changed[:600], changed[600:1000]
        policy = write_policy(d, f"""
model: churn
train: {{ data: {base}, target: churn, params: {{ n_estimators: 40 }} }}
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.05, max_regression: 1.0, min_rows: 150 }}
shadow: {{ duration: 2s, min_requests: 300 }}
""")
        cls.start_server("--monitor-interval", "off", "--retrain-policies", policy,
                         "--retrain-watch-interval", "200ms")

    def api(self, path, body):
        return self.server.session.post(self.server.url + "/api/2.0/keel/retrain/" + path,
                                        json=body, timeout=30)

    def alias(self, name):
        r = self.server.get("registered-models/alias", params={"name": "churn", "alias": name})
        return r.json()["model_version"]["version"] if r.status_code == 200 else None

    def api_jobs(self):
        r = self.server.session.get(self.server.url + "/api/2.0/keel/retrain/jobs",
                                    params={"model": "churn"})
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["jobs"]

    def test_shadow_then_promotion(self):
        # Bad requests are named; nothing is queued.
        r = self.api("jobs", {"model": "fraud"})
        self.assertEqual(r.status_code, 404, r.text)
        self.assertIn("no retraining policy for model 'fraud'", r.json()["message"])
        r = self.api("jobs", {})
        self.assertEqual(r.status_code, 400, r.text)
        r = self.api("jobs/cancel", {"model": "churn"})
        self.assertEqual(r.status_code, 404, r.text)

        predict_and_label(self.server, self.header, self.window)  # the changed concept, labeled
        r = self.api("jobs", {"model": "churn"})
        self.assertEqual(r.status_code, 202, r.text)
        self.assertEqual(r.json(), {"model": "churn", "trigger": "manual", "queued": True})

        # The first job's shadow phase is cancelled over REST: champion untouched.
        first = self.wait_job({"shadow", "promoted", "rejected", "failed"}, jobs=self.api_jobs)
        self.assertEqual(first["status"], "shadow", first)
        self.assertEqual(first["finished_ms"], 0)
        self.assertEqual(self.alias("shadow"), first["challenger_version"])
        r = self.api("jobs/cancel", {"model": "churn"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {"model": "churn", "cancelled": "shadow", "queued": 0,
                                    "running": 0})
        cancelled = self.api_jobs()[0]
        self.assertEqual((cancelled["id"], cancelled["status"]), (first["id"], "cancelled"))
        self.assertIn("during the shadow phase", cancelled["message"])
        self.assertIsNone(self.alias("shadow"))
        self.assertEqual(self.champion(), "1")

        # The second job goes through its shadow phase to promotion.
        r = self.api("jobs", {"model": "churn"})
        self.assertEqual(r.status_code, 202, r.text)
        deadline = time.time() + 240
        while time.time() < deadline:
            job = self.api_jobs()[0]
            if job["id"] != first["id"] and job["status"] != "running":
                break
            time.sleep(0.2)
        self.assertEqual(job["status"], "shadow", job)
        self.assertTrue(job["gate"]["passed"])
        self.assertEqual(self.alias("shadow"), job["challenger_version"])
        self.assertEqual(self.champion(), "1")
        deadline = time.time() + 30
        while time.time() < deadline:  # keel server lists what it serves, and the shadow
            served = self.server.session.get(self.server.url + "/api/2.0/keel/serving").json()
            if any(m.get("shadow_version") == job["challenger_version"] for m in served["models"]):
                break
            time.sleep(0.1)
        self.assertIn(job["challenger_version"],
                      [m.get("shadow_version") for m in served["models"]], served)

        # Live traffic: version 1 answers every request; version 2 scores them in shadow.
        deadline = time.time() + 30
        while time.time() < deadline:  # the engine follows the shadow alias
            text = self.server.session.get(self.server.url + "/metrics").text
            if 'keel_shadow_rows_total{model="churn",result="scored"}' in text:
                break
            _, versions = predict_and_label(self.server, self.header, self.live[:20], label=False)
            time.sleep(0.1)
        # Labels follow each batch of 50, so the phase (due after 2 s) is
        # decided with most of its requests labeled.
        versions = set()
        for start in range(0, len(self.live), 50):
            _, v = predict_and_label(self.server, self.header, self.live[start:start + 50])
            versions |= v
        self.assertEqual(versions, {"1"})

        done = self.wait_job({"promoted", "rejected", "failed"}, timeout=60, jobs=self.api_jobs)
        self.assertEqual(done["id"], job["id"])
        self.assertEqual(done["status"], "promoted", done)
        shadow = done["shadow"]
        self.assertGreaterEqual(shadow["requests"], 300)
        self.assertEqual(shadow["errors"], 0)
        self.assertEqual(shadow["non_finite"], 0)
        self.assertGreaterEqual(shadow["labeled_rows"], 150)
        live = shadow["live"]
        self.assertTrue(live["passed"], live)
        self.assertGreater(live["challenger"], live["champion"] + 0.05)  # new concept, live rows
        self.assertEqual(self.champion(), job["challenger_version"])
        self.assertIsNone(self.alias("shadow"))  # the phase is over
        deadline = time.time() + 30
        while time.time() < deadline:
            _, versions = predict_and_label(self.server, self.header, self.live[:10], label=False)
            if versions == {job["challenger_version"]}:
                break
            time.sleep(0.1)
        self.assertEqual(versions, {job["challenger_version"]})
        r = self.server.session.get(self.server.url + "/api/2.0/keel/registered-models/alias-history",
                                    params={"name": "churn", "alias": "champion"})
        self.assertIn("shadow passed", r.json()["changes"][0]["reason"])
        print(f"\nshadow: {shadow['requests']} requests, agreement {shadow['agreement']:.3f}; "
              f"live auc {live['challenger']:.3f} (challenger) vs {live['champion']:.3f} "
              f"(champion) on {live['holdout_rows']} labeled rows", file=sys.stderr)


class ContinuousModeTest(StoreAndServer):
    """Continuous mode in a server: every second the policy's cadence asks
    for an update; with too few new labeled rows nothing runs or is
    recorded; once there are enough, the champion is updated on them
    (XGBoost continued training: new trees on top of version 1's), gated on
    the newest of them, and promoted; the next update starts after the rows
    the new champion learnt from."""

    @classmethod
    def setUpClass(cls):
        d, base, changed = cls.champion_on_base("keel-continuous-", "n_estimators=40",
                                                "max_depth=4")
        cls.first, cls.second = changed[:700], changed[700:1100]
        policy = cls.policy = write_policy(d, f"""
model: churn
train: {{ data: {base}, target: churn, params: {{ n_estimators: 40, max_depth: 4 }} }}
continuous: {{ every: 1s, min_rows: 600, rounds: 30, learning_rate: 0.3 }}
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.05, max_regression: 1.0, min_rows: 150 }}
""")
        cls.start_server("--monitor-interval", "off", "--retrain-policies", policy)

    def test_updates_on_new_rows_only(self):
        # 300 labeled rows: under min_rows, so the cadence runs nothing.
        predict_and_label(self.server, self.header, self.first[:300])
        time.sleep(2.5)
        self.assertEqual(self.jobs(), [])
        predict_and_label(self.server, self.header, self.first[300:])
        deadline = time.time() + 120
        while time.time() < deadline:
            jobs = self.jobs()
            if jobs and jobs[0]["status"] != "running":
                break
            time.sleep(0.2)
        self.assertEqual(len(jobs), 1, jobs)
        job = jobs[0]
        self.assertEqual((job["trigger"], job["actor"]), ("continuous", "keel-scheduler"))
        self.assertEqual(job["status"], "promoted", job)
        self.assertEqual(job["champion_version"], "1")
        self.assertGreater(job["gate"]["challenger"], job["gate"]["champion"] + 0.05)
        roles = {d["role"]: d for d in job["data"]}
        self.assertEqual(set(roles), {"window", "holdout"})  # no base data: an update
        self.assertEqual(roles["window"]["rows"] + roles["holdout"]["rows"], 700)
        self.assertEqual(len(roles["window"]["sha256"]), 64)
        self.assertEqual(self.champion(), job["challenger_version"])
        # The run says what it grew from; the model has version 1's trees and 30 more.
        run = self.server.get("runs/get", params={"run_id": job["run_id"]}).json()["run"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        self.assertEqual(params["keel.continue.base"], "churn version 1")
        self.assertEqual(params["keel.continue.rounds"], "30")
        self.assertEqual(params["keel.continue.rows"], str(roles["window"]["rows"]))

        # The rows version 2 learnt from do not count again: 400 more are under min_rows.
        predict_and_label(self.server, self.header, self.second)
        time.sleep(2.5)
        self.assertEqual(len(self.jobs()), 1)
        # The same on demand: nothing runs, nothing is recorded, exit 0.
        p = run_keel(self.env, "retrain", "churn", "--policy", self.policy, "--continuous")
        self.assertIn("no update of churn: 400 new labeled rows since the champion's data",
                      p.stdout)
        self.assertIn("fewer than 600 (continuous.min_rows)", p.stdout)
        self.assertEqual(len(self.jobs()), 1)
        print(f"\ncontinuous: auc {job['gate']['champion']:.3f} (version 1) -> "
              f"{job['gate']['challenger']:.3f} (version {job['challenger_version']}, "
              f"updated on {roles['window']['rows']} rows) on {job['gate']['holdout_rows']} "
              f"holdout rows", file=sys.stderr)


class ScheduledJobTest(StoreAndServer):
    """A cron schedule in a named time zone fires in a real server whose clock
    is moved forward (KEEL_CLOCK_OFFSET_FILE, the clock seam's test hook) to
    just after the next Monday 03:00 in Paris; the job passes the gate and
    enters a 1-hour shadow phase, which ends when the clock is moved past
    it. No test step waits for time to pass: the clock is set."""

    @classmethod
    def setUpClass(cls):
        d, base, changed = cls.champion_on_base("keel-schedule-")
        cls.clock = ServerClock(d)
        cls.window, cls.live = changed[:600], changed[600:900]
        policy = write_policy(d, f"""
model: churn
train: {{ data: {base}, target: churn, params: {{ n_estimators: 40 }} }}
schedule: "0 3 * * 1"
timezone: Europe/Paris
missed: skip
window: {{ recent: 30d }}
gate: {{ metric: auc, min_delta: 0.05, max_regression: 1.0, min_rows: 150 }}
shadow: {{ duration: 1h, min_requests: 200 }}
""")
        cls.start_server("--monitor-interval", "off", "--retrain-policies", policy,
                         "--retrain-watch-interval", "200ms", env=cls.clock.env(cls.env))

    def test_monday_0300_paris(self):
        from datetime import datetime, timedelta, timezone
        from zoneinfo import ZoneInfo
        paris = ZoneInfo("Europe/Paris")
        predict_and_label(self.server, self.header, self.window)
        self.assertEqual(self.jobs(), [])  # nothing is due yet
        now = datetime.now(timezone.utc)
        local = now.astimezone(paris)
        monday = (local + timedelta(days=(7 - local.weekday()) % 7 or 7)).replace(
            hour=3, minute=0, second=0, microsecond=0)
        if local.weekday() == 0 and local.hour < 3:
            monday = local.replace(hour=3, minute=0, second=0, microsecond=0)
        fire = monday.astimezone(timezone.utc)
        # The scheduler's view, as the dashboard reads it: the next slot is that Monday 03:00.
        r = self.server.session.get(self.server.url + "/api/2.0/keel/retrain/policies", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertTrue(body["scheduler"])
        [policy] = body["policies"]
        self.assertEqual((policy["model"], policy["schedule"], policy["timezone"], policy["missed"],
                          policy["state"]), ("churn", "0 3 * * 1", "Europe/Paris", "skip", "idle"))
        self.assertEqual(policy["next_slot_ms"], int(fire.timestamp() * 1000))
        self.assertEqual((policy["gate"]["metric"], policy["shadow_ms"]), ("auc", 3_600_000))
        offset_ms = (fire - now).total_seconds() * 1000 + 30_000  # 30 s past the slot
        self.clock.set(offset_ms)
        job = self.wait_job({"shadow", "promoted", "rejected", "failed"})
        self.assertEqual((job["trigger"], job["actor"]), ("schedule", "keel-scheduler"))
        self.assertEqual(job["status"], "shadow", job)
        started = datetime.fromtimestamp(job["shadow"]["started_ms"] / 1000, timezone.utc)
        self.assertEqual(started.astimezone(paris).strftime("%a %H:%M"), "Mon 03:00",
                         started.astimezone(paris))
        # Live traffic during the phase, then the clock moves past its end.
        for start in range(0, len(self.live), 50):
            predict_and_label(self.server, self.header, self.live[start:start + 50])
        self.assertEqual(self.jobs()[0]["status"], "shadow")  # the hour has not passed
        self.clock.set(offset_ms + 3_600_000 + 60_000)
        done = self.wait_job({"promoted", "rejected", "failed"}, timeout=60)
        self.assertEqual(done["status"], "promoted", done)
        self.assertGreaterEqual(done["shadow"]["requests"], 200)
        self.assertEqual(self.champion(), done["challenger_version"])
        self.assertEqual(len(self.jobs()), 1)  # one slot, one job
        print(f"\nscheduled: job at {started.astimezone(paris):%a %Y-%m-%d %H:%M %Z} (Paris), "
              f"promoted after the shadow phase on {done['shadow']['requests']} requests",
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
