"""The whole retraining loop inside `keel server`, end to end on real data,
with the server's time moved by its injectable clock rather than waited for.

Every class trains churn version 1 on the first half of
../shared/data/mlc_churn.csv (the old concept) and starts a server whose
clock is real time plus the milliseconds in a file (KEEL_CLOCK_OFFSET_FILE,
ServerClock in keel_harness.py); the CLI calls share that clock. The second
half carries a planted concept change: its label becomes "total_eve_minutes
above its median" (inputs unchanged). Policy durations are realistic (alert
window 1 h, retraining window 1 d, shadow phase 1 h, watch 24 h, continuous
cadence 1 h): a test moves the clock past them and only polls for the
server's asynchronous work to finish; no step sleeps for policy time.

RetrainLoopTest (the issue's loop). Traffic is a seeded random sample
(random.Random(SEED), without replacement) of the second half: 400 rows of
the old concept, 1600 of the new one, 500 fresh rows of the new one. One
alert rule (AUC more than 0.1 below validation over 1 h, at least 300
labeled predictions, cooldown 1 h); the policy retrains on that alert (base
data plus the last day's labeled predictions, gate on their newest 30%).
  - the old-concept traffic raises no alert and no job;
  - the clock moves 2 days on (the old traffic leaves both windows); the
    changed traffic is answered by version 1, and its labels (posted in one
    request) make the alert fire, once; one job (and only one) runs with
    trigger alert:auc_decay and actor keel-monitor, passes the gate
    (challenger more than 0.05 AUC above the champion on the holdout) and is
    promoted; the champion alias moves to its version;
  - it trained on the recent window: its record's "window" rows equal the
    1600 labeled predictions minus the holdout (ceil 30% = 480), the
    "holdout" rows are those 480 and the gate's holdout_rows too, the base
    data's rows are base.csv's, and the window's and holdout's time ranges
    lie, in that order, inside the changed traffic's;
  - hot swap: the server answers from the new version without a restart;
  - recovery, with scikit-learn's AUC of the served probabilities: the old
    champion's AUC on the changed traffic is under 0.65; on the SAME 500
    fresh rows, version 1 pinned (/predict/churn/1) scores under 0.65 and
    the new champion (answering every fresh request) more than 0.2 above it,
    and more than 0.2 above the old champion's AUC on the changed traffic;
  - the jobs endpoint equals `keel retrain history`, rejects limit 0, and
    the alias history names the job and the alert.
WatchRollbackTest: a bad version forced to champion is rolled back by a
24-hour watch 6 hours (server clock) after the promotion.
ShadowPhaseTest: REST-started jobs, a cancelled shadow phase, and a 1-hour
shadow phase that stays open while live traffic is shadowed and labeled and
is decided (promotion) once the clock passes its end.
ContinuousModeTest: an hourly continuous cadence, each cadence passed by
moving the clock; too few new rows run and record nothing.
ScheduledJobTest: a cron slot in Europe/Paris fired by moving the clock.
(Each class's docstring says exactly what it checks.)

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_retrain_loop.py
"""
import csv
import json
import os
import random
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
SEED = 20240611  # the traffic sample of RetrainLoopTest

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
FINISHED = {"promoted", "rejected", "failed", "cancelled"}

RULES = """rules:
  - {name: auc_decay, metric: performance.auc.drop, threshold: 0.1,
     window: 1h, min_samples: 300, cooldown: 1h, severity: critical}
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
    """A temporary store for the class, a clock for it (cls.clock; the CLI
    calls and the server read the same offset file), a server on it, and the
    alias read back."""

    @classmethod
    def make_store(cls, prefix):
        cls.tmp = tempfile.TemporaryDirectory(prefix=prefix)
        cls.store = os.path.join(cls.tmp.name, "store")
        cls.clock = ServerClock(cls.tmp.name)
        env = dict(os.environ)
        env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(cls.store, "keel.db")
        env["KEEL_ARTIFACT_ROOT"] = os.path.join(cls.store, "artifacts")
        cls.env = cls.clock.env(env)
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
    def start_server(cls, *args):
        """Starts the server on the class's store and clock."""
        cls.server = KeelServer(data_dir=cls.store, env=cls.env, extra_args=list(args) + [
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

    def policy_state(self):
        """The server's scheduler view of the churn policy (GET .../retrain/policies)."""
        r = self.server.session.get(self.server.url + "/api/2.0/keel/retrain/policies", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        [policy] = r.json()["policies"]
        return policy

    def set_clock_to(self, server_ms):
        """Moves the server's clock so that it reads `server_ms` now."""
        self.clock.set(server_ms - int(time.time() * 1000))

    def wait_log(self, text, timeout=60):
        """Polls the server's output until `text` is in it (the server prints
        each retraining step, flushed, as `  retrain: ...`)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.server.read_log():
                return
            time.sleep(0.1)
        self.fail(f"the server did not print {text!r} in {timeout} s:\n{self.server.read_log()}")


class RetrainLoopTest(StoreAndServer):
    """The loop of the issue; see the module docstring's first list for the
    exact checks. Time: the old-concept traffic is logged at the real time,
    then the server's clock moves 2 days on and the changed traffic is
    logged, so the 1-hour alert window and the 1-day retraining window hold
    only the changed traffic (the job must train on it alone)."""

    @classmethod
    def setUpClass(cls):
        d = cls.make_store("keel-loop-")
        header, cls.base, later, new_labels = concept_change_split(CHURN, d)
        cls.header = header
        churn = header.index("churn")
        # Live traffic: a seeded random sample of the second half, without
        # replacement (no fresh row is also a training row).
        order = list(range(len(later)))
        random.Random(SEED).shuffle(order)
        cls.old = [(later[i], later[i][churn]) for i in order[:400]]         # the old concept
        changed = [(later[i], new_labels[i]) for i in order[400:]]
        cls.changed, cls.fresh = changed[:1600], changed[1600:]              # fresh: after the swap
        assert len(cls.fresh) == 500, len(cls.fresh)

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

    def send(self, pairs, label=True, ref="churn@champion"):
        """(probabilities, versions that answered) of pairs sent through /predict/<ref>."""
        return predict_and_label(self.server, self.header, pairs, label=label, ref=ref)

    def alerts(self):
        return json.loads(run_keel(self.env, "alerts", "list", "--json").stdout)["alerts"]

    def test_the_loop(self):
        # Before the change: the old concept holds; no alert, no job.
        _, versions = self.send(self.old)
        self.assertEqual(versions, {"1"})
        # A pass that began after the last label has ended: it saw all of it.
        # (Stored windows are not waited for: a stored window may come from a
        # pass that saw part of the traffic.)
        wait_for_monitor_passes(self.server)
        self.assertEqual([a for a in self.alerts() if a["rule"] == "auc_decay"], [])
        self.assertEqual(self.jobs(), [])

        # Two days later the concept has changed. The labels of the changed
        # traffic are posted in one request (one transaction) after all of it
        # was scored, so the alert, and the job it triggers, see all 1600.
        self.clock.set(2 * DAY_MS)
        changed_from = self.clock.now_ms()
        old_probs, versions = self.send(self.changed)
        changed_to = self.clock.now_ms()
        self.assertEqual(versions, {"1"})
        job = self.wait_job(FINISHED)
        self.assertEqual(len(self.jobs()), 1)
        self.assertEqual(job["trigger"], "alert:auc_decay")
        self.assertEqual(job["actor"], "keel-monitor")
        self.assertEqual(job["status"], "promoted", job)
        self.assertGreater(job["gate"]["challenger"], job["gate"]["champion"] + 0.05)
        alerts = [a for a in self.alerts() if a["rule"] == "auc_decay"]
        self.assertEqual(len(alerts), 1)
        self.assertEqual(self.champion(), job["challenger_version"])

        # It trained on the recent window: the last day's labeled predictions
        # (the changed traffic only; the old traffic is 2 days old) minus the
        # newest 30%, its holdout.
        n = len(self.changed)
        holdout = -(-n * 3 // 10)
        roles = {d["role"]: d for d in job["data"]}
        self.assertEqual(set(roles), {"data", "window", "holdout"})
        with open(self.base) as f:
            self.assertEqual(roles["data"]["rows"], len(f.readlines()) - 1)
        self.assertEqual(roles["window"]["rows"], n - holdout)
        self.assertEqual(roles["holdout"]["rows"], holdout)
        self.assertEqual(job["gate"]["holdout_rows"], holdout)
        self.assertLessEqual(changed_from, roles["window"]["from_ms"])
        self.assertLessEqual(roles["window"]["from_ms"], roles["window"]["to_ms"])
        self.assertLessEqual(roles["window"]["to_ms"], roles["holdout"]["from_ms"])
        self.assertLessEqual(roles["holdout"]["from_ms"], roles["holdout"]["to_ms"])
        self.assertLessEqual(roles["holdout"]["to_ms"], changed_to)

        # Hot swap: the server answers with the new version, no restart.
        deadline = time.time() + 30
        while time.time() < deadline:
            _, versions = self.send(self.fresh[:50], label=False)
            if versions == {job["challenger_version"]}:
                break
            time.sleep(0.1)
        self.assertEqual(versions, {job["challenger_version"]})

        # Recovery, on the same fresh rows of the new concept: the new
        # champion (served, labeled) against version 1 pinned (unlabeled, so
        # the log's labeled rows are the champion's only).
        new_probs, versions = self.send(self.fresh)
        self.assertEqual(versions, {job["challenger_version"]})
        pinned_probs, versions = self.send(self.fresh, label=False, ref="churn/1")
        self.assertEqual(versions, {"1"})
        y_fresh = [1 if y == "yes" else 0 for _, y in self.fresh]
        y_changed = [1 if y == "yes" else 0 for _, y in self.changed]
        auc_new = roc_auc_score(y_fresh, new_probs)
        auc_old_fresh = roc_auc_score(y_fresh, pinned_probs)
        auc_old = roc_auc_score(y_changed, old_probs)
        print(f"\nlive AUC of the new concept: old champion {auc_old:.3f} on the "
              f"{len(y_changed)} changed rows; on the same {len(y_fresh)} fresh rows, "
              f"version 1 (pinned) {auc_old_fresh:.3f} and the new champion (version "
              f"{job['challenger_version']}) {auc_new:.3f}; gate {job['gate']['champion']:.3f} -> "
              f"{job['gate']['challenger']:.3f} on {job['gate']['holdout_rows']} holdout rows, "
              f"trained on {roles['data']['rows']} base + {roles['window']['rows']} window rows",
              file=sys.stderr)
        self.assertLess(auc_old, 0.65)
        self.assertLess(auc_old_fresh, 0.65)
        self.assertGreater(auc_new, auc_old_fresh + 0.2)
        self.assertGreater(auc_new, auc_old + 0.2)

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
    """A deliberately bad forced promotion is rolled back by a 24-hour watch:
    version 2 is trained on the changed concept and forced to champion by
    hand; the server follows the alias; the clock moves 6 hours on (past
    what a 1-hour watch would cover, inside the 24 hours), and version 2
    scores 550 labeled rows of the old concept. The watch compares it with
    version 1 on those same rows and moves the alias back: champion is 1
    again, one job with trigger watch / status rolled_back / actor
    keel-watch ("champion" 2, "challenger" 1, version 1 more than 0.05 AUC
    better, at least gate.min_rows rows, finished at least 6 hours after
    the forced change by the server's clock), one critical watch_rollback
    alert, the alias history's keel-watch move 2 -> 1, and the server
    answers from version 1 again."""

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
watch: {{ duration: 24h, rollback_if: {{ metric: auc, drop_more_than: 0.05 }} }}
""")
        cls.start_server("--monitor-interval", "off", "--retrain-policies", policy,
                         "--retrain-watch-interval", "200ms")

    def test_a_bad_forced_promotion_is_rolled_back(self):
        self.assertEqual(self.policy_state()["watch_ms"], DAY_MS)
        run_keel(self.env, "models", "alias", "churn@champion", "2", "--reason", "forced")
        r = self.server.session.get(self.server.url + "/api/2.0/keel/registered-models/alias-history",
                                    params={"name": "churn", "alias": "champion"})
        forced = r.json()["changes"][0]
        self.assertEqual((forced["from_version"], forced["to_version"]), ("1", "2"))
        deadline = time.time() + 30
        while time.time() < deadline:  # the server follows the alias
            _, versions = predict_and_label(self.server, self.header, self.old[:50], label=False)
            if versions == {"2"}:
                break
            time.sleep(0.1)
        self.assertEqual(versions, {"2"})
        # Six hours later (server clock), the watch is still on: 550 labeled rows for v2.
        self.clock.set(6 * HOUR_MS)
        predict_and_label(self.server, self.header, self.old[50:])
        # The alias moves first, then the record and the alert are written.
        deadline = time.time() + 60
        while time.time() < deadline:
            jobs = self.jobs()
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
        self.assertGreaterEqual(job["finished_ms"] - forced["time"], 6 * HOUR_MS)
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
        print(f"\nwatch (24 h, acting 6 h after the forced promotion): auc "
              f"{job['gate']['challenger']:.3f} (version 1) vs {job['gate']['champion']:.3f} "
              f"(version 2) on {job['gate']['holdout_rows']} rows", file=sys.stderr)


class ShadowPhaseTest(StoreAndServer):
    """A job started over REST passes the gate and enters a 1-hour shadow
    phase. Checks: bad REST requests are named and queue nothing (404
    unknown model, 400 no model, 404 cancel with nothing to cancel); a
    trigger answers 202 queued; the first job's shadow phase (shadow alias
    on its version, finished_ms 0) is cancelled over REST, leaving no shadow
    alias and champion 1; the second job passes the gate and enters its
    phase (shadow alias, /api/2.0/keel/serving lists the shadow version,
    ends_ms 1 h after started_ms); version 1 answers all 400 live requests
    while version 2 scores them in shadow, and all of them are labeled; the
    phase is still open then (the hour has not passed on the server's
    clock); once the clock is moved past its end, the server compares the
    two on those requests and promotes: at least 300 requests shadowed (min_requests),
    no errors or non-finite outputs, all 400 live rows labeled, the
    challenger more than 0.05 AUC above the champion on them, decided after
    the hour, champion moved, shadow alias gone, answers from version 2,
    and the alias history says "shadow passed"."""

    @classmethod
    def setUpClass(cls):
        d, base, changed = cls.champion_on_base("keel-shadow-")
        cls.window, cls.live = changed[:600], changed[600:1000]
        policy = write_policy(d, f"""
model: churn
train: {{ data: {base}, target: churn, params: {{ n_estimators: 40 }} }}
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.05, max_regression: 1.0, min_rows: 150 }}
shadow: {{ duration: 1h, min_requests: 300 }}
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
        self.assertEqual(self.policy_state()["shadow_ms"], HOUR_MS)
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
        first = self.wait_job({"shadow"} | FINISHED, jobs=self.api_jobs)
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
            if job["id"] != first["id"] and job["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        self.assertEqual(job["status"], "shadow", job)
        self.assertTrue(job["gate"]["passed"])
        self.assertEqual(job["shadow"]["ends_ms"] - job["shadow"]["started_ms"], HOUR_MS)
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
        _, versions = predict_and_label(self.server, self.header, self.live)
        self.assertEqual(versions, {"1"})
        # The phase stays open: the watcher (every 200 ms) has run many times
        # while the traffic was sent, but the hour has not passed.
        self.assertEqual(self.api_jobs()[0]["status"], "shadow")
        self.assertEqual(self.alias("shadow"), job["challenger_version"])

        # The clock moves past the phase's end; the watcher decides.
        self.set_clock_to(job["shadow"]["ends_ms"] + 60_000)
        done = self.wait_job({"promoted", "rejected", "failed"}, timeout=60, jobs=self.api_jobs)
        self.assertEqual(done["id"], job["id"])
        self.assertEqual(done["status"], "promoted", done)
        self.assertGreaterEqual(done["finished_ms"], job["shadow"]["ends_ms"])
        shadow = done["shadow"]
        self.assertGreaterEqual(shadow["requests"], 300)
        self.assertEqual(shadow["errors"], 0)
        self.assertEqual(shadow["non_finite"], 0)
        self.assertEqual(shadow["labeled_rows"], len(self.live))
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
        print(f"\nshadow (1 h, decided after the clock passed it): {shadow['requests']} requests, "
              f"agreement {shadow['agreement']:.3f}; live auc {live['challenger']:.3f} "
              f"(challenger) vs {live['champion']:.3f} (champion) on {live['holdout_rows']} "
              f"labeled rows", file=sys.stderr)


class ContinuousModeTest(StoreAndServer):
    """Continuous mode in a server with an hourly cadence (continuous.every
    1h, min_rows 600), each cadence reached by moving the server's clock
    just past the time the scheduler reports for it (next_continuous_ms of
    GET /api/2.0/keel/retrain/policies, about an hour after the start).
    Checks: with 300 new labeled rows the cadence's update is skipped (the
    server prints "300 new labeled rows since the window's start, fewer
    than 600") and nothing is recorded; 400 more rows alone start nothing
    (the next cadence is an hour away); at that cadence the champion is
    updated on the 700 rows (XGBoost continued training: 30 new trees on
    top of version 1's; its run's keel.continue.* params say so), gated on
    the newest of them (window + holdout rows = 700, no base data) with
    more than +0.05 AUC, and promoted, the job starting at or after the
    cadence; the next update starts after the rows the new champion learnt
    from: 400 more rows are skipped at the next cadence ("400 new labeled
    rows since the champion's data") and by `keel retrain --continuous`
    on the same clock, with one job recorded in all."""

    @classmethod
    def setUpClass(cls):
        d, base, changed = cls.champion_on_base("keel-continuous-", "n_estimators=40",
                                                "max_depth=4")
        cls.first, cls.second = changed[:700], changed[700:1100]
        policy = cls.policy = write_policy(d, f"""
model: churn
train: {{ data: {base}, target: churn, params: {{ n_estimators: 40, max_depth: 4 }} }}
continuous: {{ every: 1h, min_rows: 600, rounds: 30, learning_rate: 0.3 }}
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.05, max_regression: 1.0, min_rows: 150 }}
""")
        cls.start_server("--monitor-interval", "off", "--retrain-policies", policy)

    def next_cadence(self):
        """When the scheduler will next ask for an update (server clock, ms)."""
        deadline = time.time() + 30
        while time.time() < deadline:  # set at the scheduler's first tick after the start
            due = self.policy_state()["next_continuous_ms"]
            if due > 0:
                return due
            time.sleep(0.1)
        self.fail("the scheduler reports no continuous cadence")

    def pass_cadence(self):
        """Moves the server's clock 30 s past the next cadence; returns the cadence."""
        due = self.next_cadence()
        self.set_clock_to(due + 30_000)
        return due

    def skips(self):
        return self.server.read_log().count("retrain: continuous update of churn skipped")

    def test_updates_on_new_rows_only(self):
        state = self.policy_state()
        self.assertEqual(state["continuous_every_ms"], HOUR_MS)
        due = self.next_cadence()
        self.assertGreater(due - self.clock.now_ms(), HOUR_MS - 60_000)  # an hour from the start
        self.assertLessEqual(due - self.clock.now_ms(), HOUR_MS)
        # 300 labeled rows: under min_rows, so the cadence runs nothing.
        predict_and_label(self.server, self.header, self.first[:300])
        self.assertEqual((self.skips(), self.jobs()), (0, []))  # not due yet
        self.assertEqual(self.pass_cadence(), due)
        self.wait_log("retrain: continuous update of churn skipped: 300 new labeled rows since "
                      "the window's start, fewer than 600 (continuous.min_rows)")
        self.assertEqual(self.jobs(), [])
        self.assertGreaterEqual(self.next_cadence(), due + HOUR_MS)  # the next one, an hour on

        # 400 more: 700 new rows, but nothing runs before the next cadence.
        predict_and_label(self.server, self.header, self.first[300:])
        self.assertEqual((self.skips(), self.jobs()), (1, []))
        due = self.pass_cadence()
        job = self.wait_job(FINISHED, timeout=120)
        jobs = self.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertEqual((job["trigger"], job["actor"]), ("continuous", "keel-scheduler"))
        self.assertEqual(job["status"], "promoted", job)
        self.assertGreaterEqual(job["started_ms"], due)
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

        # The rows version 2 learnt from do not count again: 400 more are under
        # min_rows at the next cadence.
        predict_and_label(self.server, self.header, self.second)
        self.pass_cadence()
        self.wait_log("retrain: continuous update of churn skipped: 400 new labeled rows since "
                      "the champion's data")
        self.assertEqual(self.skips(), 2)
        self.assertEqual(len(self.jobs()), 1)
        # The same on demand (on the server's clock): nothing runs, nothing is recorded, exit 0.
        p = run_keel(self.env, "retrain", "churn", "--policy", self.policy, "--continuous")
        self.assertIn("no update of churn: 400 new labeled rows since the champion's data",
                      p.stdout)
        self.assertIn("fewer than 600 (continuous.min_rows)", p.stdout)
        self.assertEqual(len(self.jobs()), 1)
        print(f"\ncontinuous (hourly, 3 cadences by clock): auc {job['gate']['champion']:.3f} "
              f"(version 1) -> {job['gate']['challenger']:.3f} (version "
              f"{job['challenger_version']}, updated on {roles['window']['rows']} rows) on "
              f"{job['gate']['holdout_rows']} holdout rows", file=sys.stderr)


class ScheduledJobTest(StoreAndServer):
    """A cron schedule in a named time zone fires in a real server whose clock
    is moved forward (KEEL_CLOCK_OFFSET_FILE, the clock seam's test hook) to
    just after the next Monday 03:00 in Paris; the job passes the gate and
    enters a 1-hour shadow phase, which ends when the clock is moved past
    it. No test step waits for time to pass: the clock is set."""

    @classmethod
    def setUpClass(cls):
        d, base, changed = cls.champion_on_base("keel-schedule-")
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
                         "--retrain-watch-interval", "200ms")

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
