"""Replicas: several `keel server` processes on one store behave as one system.

Three servers share a store (one SQLite file here; a PostgreSQL database in
the e2e_pg_replicas run) and their artifact root, and serve the same churn
model. Checks:
  - an alias moved through one replica is followed by the others within a
    second: on SQLite each polls the registry every 100 ms; on PostgreSQL
    they poll only every 30 s, so the second can only come from the change
    notification (LISTEN/NOTIFY) the move sends;
  - the request outcome counts of the three add up in the store;
  - the monitoring passes run in exactly one of them (the store's "monitor"
    lease): the other counts no pass;
  - the retraining schedule is fired by exactly one of them (the "retrain-
    scheduler" lease): a slot both servers see as due gives one job;
  - the monitoring lease holder killed with SIGKILL: another replica takes
    monitoring over within the lease's time to live, and requests sent to the
    survivors during and after the kill all succeed;
  - the scheduler's lease holder killed with SIGKILL in the middle of a job:
    a survivor takes the schedules over, marks the job interrupted and runs
    it again to its end, once.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_replicas.py
"""
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import (REPO, KeelServer, ServerClock, keel_binary,  # noqa: E402
                          on_postgres, parse_metrics, predict_and_label)

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")


class ReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-replicas-")
        d = cls.tmp.name
        cls.store_dir = os.path.join(d, "store")
        os.makedirs(cls.store_dir)
        # The first KeelServer object names the store (a PostgreSQL database
        # under KEEL_TEST_STORE=postgresql); the others reuse its directory.
        cls.first = KeelServer(data_dir=cls.store_dir)
        cls.env = dict(os.environ)
        cls.env["KEEL_STORE_URI"] = cls.first.store_uri
        cls.env["KEEL_ARTIFACT_ROOT"] = cls.first.artifact_root
        with open(CHURN, newline="") as f:
            rows = list(csv.reader(f))
        cls.header, body = rows[0], rows[1:]
        churn = cls.header.index("churn")
        cls.traffic = [(r, r[churn]) for r in body[:300]]
        for trees in ("20", "30"):
            cls.keel("train", "--data", CHURN, "--target", "churn", "--param",
                     f"n_estimators={trees}", "--experiment", "replicas", "--register", "churn")
        cls.keel("models", "alias", "churn@champion", "1")
        # "Training" takes 3 s and copies version 1's package (so a job can be
        # killed while it runs); the gate then rejects it.
        pkg = None
        for root, dirs, files in os.walk(cls.env["KEEL_ARTIFACT_ROOT"]):
            if "MLmodel" in files:
                pkg = root
                break
        assert pkg, "no model package under the artifact root"
        policy = os.path.join(d, "retrain.yaml")
        with open(policy, "w") as f:
            f.write(f"""
model: churn
train: {{ command: "sleep 3 && cp -r {pkg} {{output_dir}}/model", target: churn }}
schedule: "0 3 * * *"
missed: run_once
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.5, max_regression: 1.0, min_rows: 50 }}
""")
        cls.clock = ServerClock(d)
        args = ["--monitor-interval", "200ms", "--retrain-policies", policy, "--lease-ttl", "2s",
                "--poll-ms", "30000" if on_postgres() else "100", "--log-flush-ms", "20", "--counts-flush-ms", "100"]
        cls.servers = [cls.first] + [KeelServer(data_dir=cls.store_dir) for _ in range(2)]
        for s in cls.servers:
            s.extra_args = list(args)
            s.env = cls.clock.env(dict(os.environ))
            s.start()

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.session.close()
            s.stop()
        cls.first.drop_store()
        cls.tmp.cleanup()

    @classmethod
    def keel(cls, *args):
        p = subprocess.run([keel_binary(), *args], capture_output=True, text=True, env=cls.env,
                           timeout=300)
        if p.returncode != 0:
            raise AssertionError(f"keel {' '.join(args)} -> {p.returncode}\n{p.stderr}")
        return p

    def metrics(self, server):
        r = server.session.get(server.url + "/metrics", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return parse_metrics(r.text)

    def scheduler_leader(self, server):
        r = server.session.get(server.url + "/api/2.0/keel/retrain/policies", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["leader"]

    def wait(self, what, predicate, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        self.fail(f"not within {timeout} s: {what}")

    def jobs(self):
        return json.loads(self.keel("retrain", "history", "churn", "--json").stdout)["jobs"]

    def served_version(self, server):
        rec = {k: v for k, v in zip(self.header, self.traffic[0][0]) if k != "churn"}
        for k in list(rec):
            try:
                rec[k] = float(rec[k])
            except ValueError:
                pass
        r = server.session.post(server.url + "/predict/churn@champion", json=rec, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["model_version"]

    def leaders(self, is_leader):
        """The live servers for which is_leader(server) holds, once exactly one does."""
        live = [s for s in self.servers if s.proc is not None]
        self.wait("exactly one leader", lambda: sum(bool(is_leader(s)) for s in live) == 1)
        time.sleep(0.5)  # still the same after a few renewals
        found = [s for s in live if is_leader(s)]
        self.assertEqual(len(found), 1)
        return found[0]

    def monitor_leader(self, server):
        return self.metrics(server).get("keel_monitor_leader", 0) == 1

    def kill(self, victim, survivors, then):
        """SIGKILLs `victim` while requests go to `survivors`; runs `then()`;
        asserts no request to a survivor failed. Returns the request count."""
        failures, sent = [], [0]
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    self.served_version(survivors[i % len(survivors)])
                    sent[0] += 1
                except Exception as e:  # noqa: BLE001 - any failed request counts
                    failures.append(repr(e))

        t = threading.Thread(target=load)
        t.start()
        try:
            time.sleep(0.3)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            victim.proc = None
            then()
        finally:
            stop.set()
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(sent[0], 0)
        return sent[0]

    def test_replicas_share_one_system(self):
        a, b, c = self.servers
        # Traffic through every replica lands in one prediction log.
        predict_and_label(a, self.header, self.traffic[:100])
        predict_and_label(b, self.header, self.traffic[100:200])
        predict_and_label(c, self.header, self.traffic[200:])
        # Each replica answered 2 requests: the stored per-minute counts add up.
        def counted():
            r = a.session.get(a.url + "/api/2.0/keel/serving/requests",
                              params={"model": "churn"}, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            return sum(p["requests"] for p in r.json()["points"]) >= 6
        self.wait("the three replicas' request counts in the store", counted)

        # An alias moved through one replica is followed by the others.
        self.assertEqual(self.served_version(b), "1")
        r = a.post("registered-models/alias", {"name": "churn", "alias": "champion",
                                               "version": "2"})
        self.assertEqual(r.status_code, 200, r.text)
        moved = time.time()
        self.wait("b and c serve version 2", lambda: self.served_version(b) == "2" and
                  self.served_version(c) == "2", timeout=5)
        self.assertLess(time.time() - moved, 1.0, "the alias was followed after more than 1 s")

        # Monitoring passes run in exactly one replica.
        leader = self.leaders(self.monitor_leader)
        time.sleep(1.0)  # several intervals
        for s in self.servers:
            passes = self.metrics(s)["keel_monitor_passes_total"]
            if s is leader:
                self.assertGreater(passes, 2)
            else:
                self.assertEqual(passes, 0, "a standby ran a monitoring pass")

        # The schedule is fired by one replica: a slot all see as due gives one job.
        self.leaders(self.scheduler_leader)
        self.assertEqual(self.jobs(), [])
        self.clock.set(26 * 3_600_000)  # past the next 03:00 UTC slot, one day on
        self.wait("the scheduled job finished", lambda: any(
            j["status"] in ("rejected", "promoted", "failed") for j in self.jobs()), timeout=120)
        time.sleep(2.5)  # more ticks of every scheduler
        jobs = self.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertTrue(jobs[0]["trigger"].startswith("schedule"), jobs[0])
        self.assertEqual(jobs[0]["status"], "rejected", jobs[0])

        # SIGKILL the monitoring leader (the clock's jump expired the leases:
        # asked again); another replica takes monitoring over.
        victim = self.leaders(self.monitor_leader)
        survivors = [s for s in self.servers if s is not victim]
        before = {id(s): self.metrics(s)["keel_monitor_passes_total"] for s in survivors}
        took = {}

        def monitoring_taken_over():
            killed = time.time()
            self.wait("a survivor takes monitoring over", lambda: any(
                self.monitor_leader(s) and self.metrics(s)["keel_monitor_passes_total"] >
                before[id(s)] for s in survivors), timeout=15)
            took["monitor"] = time.time() - killed

        sent = self.kill(victim, survivors, monitoring_taken_over)

        # SIGKILL the scheduler's leader while its job runs; a survivor runs it again.
        leader = self.leaders(self.scheduler_leader)
        r = leader.session.post(leader.url + "/api/2.0/keel/retrain/jobs",
                                json={"model": "churn"}, timeout=10)
        self.assertEqual(r.status_code, 202, r.text)
        self.wait("the manual job runs", lambda: any(
            j["trigger"] == "manual" and j["status"] == "running" for j in self.jobs()))
        [killed_job] = [j for j in self.jobs() if j["trigger"] == "manual"]
        last = [s for s in self.servers if s.proc is not None and s is not leader]

        def job_taken_over():
            killed = time.time()
            self.wait("the job run again to its end", lambda: any(
                j["trigger"].startswith(f"takeover of job {killed_job['id']}") and
                j["status"] in ("rejected", "promoted", "failed") for j in self.jobs()),
                timeout=60)
            took["job"] = time.time() - killed

        sent += self.kill(leader, last, job_taken_over)
        jobs = {j["id"]: j for j in self.jobs()}
        self.assertEqual(jobs[killed_job["id"]]["status"], "failed")
        self.assertIn("stopped renewing", jobs[killed_job["id"]]["message"])
        again = [j for j in jobs.values() if j["trigger"].startswith("takeover")]
        self.assertEqual(len(again), 1, again)  # run again once
        self.assertEqual(again[0]["status"], "rejected", again[0])
        self.assertEqual(len(jobs), 3, jobs)  # the slot's, the killed one, its rerun
        print(f"\nreplicas: monitoring taken over {took['monitor']:.1f} s after SIGKILL; the "
              f"killed leader's job run again and ended {took['job']:.1f} s after its SIGKILL; "
              f"{sent} requests to the survivors meanwhile, none failed", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
