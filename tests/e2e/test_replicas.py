"""Replicas: several `keel server` processes on one store behave as one system.

Two servers share a store (one SQLite file here; a PostgreSQL database in the
e2e_pg_replicas run) and their artifact root, and serve the same churn model.
Checks:
  - an alias moved through one replica is followed by the other within a
    second (each polls the registry);
  - the monitoring passes run in exactly one of them (the store's "monitor"
    lease): the other counts no pass;
  - the retraining schedule is fired by exactly one of them (the "retrain-
    scheduler" lease): a slot both servers see as due gives one job;
  - the lease holder killed with SIGKILL: the survivor takes monitoring and
    the schedules over within the leases' time to live, and requests sent to
    it during and after the kill all succeed.

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
                          parse_metrics, predict_and_label)

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
        policy = os.path.join(d, "retrain.yaml")
        with open(policy, "w") as f:
            f.write(f"""
model: churn
train: {{ data: {CHURN}, target: churn, params: {{ n_estimators: 10 }} }}
schedule: "0 3 * * *"
missed: run_once
window: {{ recent: 1d }}
gate: {{ metric: auc, min_delta: 0.5, max_regression: 1.0, min_rows: 50 }}
""")
        cls.clock = ServerClock(d)
        args = ["--monitor-interval", "200ms", "--retrain-policies", policy, "--lease-ttl", "2s",
                "--poll-ms", "100", "--log-flush-ms", "20"]
        cls.servers = [cls.first] + [KeelServer(data_dir=cls.store_dir) for _ in range(1)]
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

    def test_replicas_share_one_system(self):
        a, b = self.servers
        # Traffic through both replicas lands in one prediction log.
        predict_and_label(a, self.header, self.traffic[:150])
        predict_and_label(b, self.header, self.traffic[150:])

        # An alias moved through one replica is followed by the other.
        self.assertEqual(self.served_version(b), "1")
        r = a.post("registered-models/alias", {"name": "churn", "alias": "champion",
                                               "version": "2"})
        self.assertEqual(r.status_code, 200, r.text)
        moved = time.time()
        self.wait("replica b serves version 2", lambda: self.served_version(b) == "2", timeout=5)
        self.assertLess(time.time() - moved, 1.0, "b followed the alias after more than 1 s")

        # Monitoring passes run in exactly one replica.
        self.wait("a monitoring leader", lambda: sum(
            self.metrics(s).get("keel_monitor_leader", 0) for s in self.servers) == 1)
        time.sleep(1.0)  # several intervals
        m = [self.metrics(s) for s in self.servers]
        leaders = [i for i in range(2) if m[i]["keel_monitor_leader"] == 1]
        self.assertEqual(len(leaders), 1, m)
        monitor_leader = leaders[0]
        self.assertGreater(m[monitor_leader]["keel_monitor_passes_total"], 2)
        self.assertEqual(m[1 - monitor_leader]["keel_monitor_passes_total"], 0, m)

        # The schedule is fired by one replica: a slot both see as due gives one job.
        self.wait("a scheduler leader",
                  lambda: sum(self.scheduler_leader(s) for s in self.servers) == 1)
        self.assertEqual(self.jobs(), [])
        self.clock.set(26 * 3_600_000)  # past the next 03:00 UTC slot, one day on
        self.wait("the scheduled job finished", lambda: any(
            j["status"] in ("rejected", "promoted", "failed") for j in self.jobs()), timeout=120)
        time.sleep(2.5)  # more ticks of both schedulers
        jobs = self.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertTrue(jobs[0]["trigger"].startswith("schedule"), jobs[0])

        # SIGKILL the monitoring leader while requests go to the survivor. (The
        # clock's jump above expired the leases: the leader is asked again.)
        self.wait("one monitoring leader after the jump", lambda: sum(
            self.metrics(s).get("keel_monitor_leader", 0) for s in self.servers) == 1)
        time.sleep(0.5)
        leaders = [s for s in self.servers if self.metrics(s)["keel_monitor_leader"] == 1]
        self.assertEqual(len(leaders), 1)
        victim = leaders[0]
        survivor = self.servers[1 - self.servers.index(victim)]
        self.assertEqual(self.metrics(survivor)["keel_monitor_leader"], 0)
        failures, sent = [], [0]
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    self.served_version(survivor)
                    sent[0] += 1
                except AssertionError as e:
                    failures.append(str(e))
                except Exception as e:  # noqa: BLE001 - any failed request counts
                    failures.append(repr(e))

        t = threading.Thread(target=load)
        t.start()
        try:
            time.sleep(0.3)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            killed = time.time()
            before = self.metrics(survivor)["keel_monitor_passes_total"]
            self.wait("the survivor takes monitoring over", lambda: self.metrics(survivor).get(
                "keel_monitor_leader", 0) == 1 and self.metrics(survivor)[
                "keel_monitor_passes_total"] > before, timeout=15)
            takeover = time.time() - killed
            self.wait("the survivor takes the schedules over",
                      lambda: self.scheduler_leader(survivor), timeout=15)
        finally:
            stop.set()
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(sent[0], 0)
        print(f"\nreplicas: monitoring taken over {takeover:.1f} s after SIGKILL; "
              f"{sent[0]} requests to the survivor meanwhile, none failed", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
