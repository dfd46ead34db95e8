"""End-to-end tests of monitoring inside `keel server` and its alerts.

Part one: a churn model is trained on half of ../shared/data/mlc_churn.csv; the other
half, with a planted shift (total_day_minutes x 1.3), is scored by `keel
batch` into the prediction log and labelled. A real `keel server` then runs
monitoring passes every 300 ms with the default rules and posts new alerts to
a webhook receiver started here, which answers 503 to its first request.
Checks: the prediction-drift and performance-decay alerts arrive, signed with
HMAC-SHA256 of the body, the refused delivery retried; later passes fold into
the same alerts (their count grows, nothing is posted twice); `keel alerts
list` shows them; the window summaries are stored; a bad rules file stops the
server from starting with one line naming the file and rule.

Part two (ShiftHalfWayTest): real-time /predict traffic, labelled through
/labels, whose distribution shifts half-way; rules on 10-minute windows. The
window before the shift is evaluated (its report is stored with every label)
and raises nothing; the server's clock is then moved 10 minutes on
(KEEL_CLOCK_OFFSET_FILE), so the unshifted traffic leaves the window however
slowly it was sent; after the shift data drift, prediction drift and
performance decay fire, none of them dated before the shift.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_alerts.py
"""
import csv
import hashlib
import hmac
import http.server
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import (REPO, KeelServer, ServerClock, free_port,  # noqa: E402
                          keel_binary, parse_metrics, planted_churn_split,
                          predict_and_label, wait_for_monitor_passes)

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.join(SHARED, "data", "mlc_churn.csv")
SECRET = "s3cret-for-tests"


def run_keel(env, *args, check=True):
    p = subprocess.run([keel_binary(), *args], capture_output=True, text=True, env=env,
                       timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records every POST; answers 503 to the very first one."""

    received = []
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.lock:
            first = not Receiver.received
            Receiver.received.append((body, self.headers.get("X-Keel-Signature", "")))
        self.send_response(503 if first else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class AlertsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-alerts-")
        d = cls.tmp.name
        header, cur, ref_path, cur_path = planted_churn_split(CHURN, d)
        cls.store = os.path.join(d, "store")
        cls.env = dict(os.environ)
        cls.env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(cls.store, "keel.db")
        cls.env["KEEL_ARTIFACT_ROOT"] = os.path.join(cls.store, "artifacts")
        cls.run_keel("train", "--data", ref_path, "--target", "churn", "--param",
                     "n_estimators=40", "--experiment", "alerts", "--register", "churn")
        p = cls.run_keel("batch", "churn/1", "--input", cur_path, "--output",
                         os.path.join(d, "scores.csv"), "--monitor-sample", "1", "--no-track")
        prefix = re.search(r"\((batch-[0-9a-f]+-)\*\)", p.stdout + p.stderr).group(1)
        labels = os.path.join(d, "labels.csv")
        churn = header.index("churn")
        with open(labels, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "label"])
            for i, r in enumerate(cur):
                w.writerow([f"{prefix}{i + 2}", r[churn]])
        cls.run_keel("labels", "import", labels)

        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
        cls.hook_thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.hook_thread.start()
        hook = f"http://127.0.0.1:{cls.httpd.server_address[1]}/hooks/keel"
        cls.server = KeelServer(data_dir=cls.store, extra_args=[
            "--monitor-interval", "300ms", "--alert-webhook", hook,
            "--alert-webhook-secret", SECRET])
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.session.close()
        cls.server.stop()
        cls.httpd.shutdown()
        cls.httpd.server_close()
        cls.tmp.cleanup()

    @classmethod
    def run_keel(cls, *args, check=True):
        return run_keel(cls.env, *args, check=check)

    def delivered(self):
        """Alerts the receiver accepted (the first POST was refused), by rule."""
        with Receiver.lock:
            got = list(Receiver.received)
        return got, [json.loads(b)["rule"] for b, _ in got[1:]]

    def test_alerts_are_posted_signed_retried_and_folded(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            got, rules = self.delivered()
            if {"prediction_drift", "performance_decay"} <= set(rules):
                break
            time.sleep(0.1)
        got, rules = self.delivered()
        self.assertEqual(sorted(rules), ["performance_decay", "prediction_drift"], rules)
        # The refused first delivery was retried with the same body.
        self.assertIn(got[0][0], [b for b, _ in got[1:]])
        for body, signature in got:
            want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            self.assertEqual(signature, want)
        alert = json.loads([b for b, _ in got[1:] if b"performance_decay" in b][0])
        self.assertEqual(alert["model"], "churn")
        self.assertEqual(alert["version"], "1")
        self.assertEqual(alert["severity"], "critical")
        self.assertEqual(alert["metric"], "performance.auc.drop")
        self.assertGreater(alert["value"], 0.05)

        # More passes fold into the same alerts: counts grow, nothing new is posted.
        deadline = time.time() + 30
        while time.time() < deadline:
            listed = json.loads(self.run_keel("alerts", "list", "--json").stdout)["alerts"]
            if listed and min(a["count"] for a in listed) >= 3:
                break
            time.sleep(0.2)
        self.assertEqual(sorted(a["rule"] for a in listed), ["performance_decay", "prediction_drift"])
        self.assertTrue(all(a["count"] >= 3 for a in listed), listed)
        self.assertEqual(len(self.delivered()[0]), len(got))
        table = self.run_keel("alerts", "list", "--model", "churn").stdout
        self.assertIn("performance_decay", table)
        self.assertIn("critical", table)
        self.assertIn("no alerts", self.run_keel("alerts", "list", "--model", "fraud").stdout)

        # Window summaries are kept for history.
        db = sqlite3.connect(os.path.join(self.store, "keel.db"))
        try:
            n, = db.execute("SELECT COUNT(*) FROM monitor_windows WHERE model = 'churn'").fetchone()
            report, = db.execute("SELECT report FROM monitor_windows ORDER BY window_id DESC "
                                 "LIMIT 1").fetchone()
        finally:
            db.close()
        self.assertGreater(n, 2)
        self.assertEqual(json.loads(report)["keel_monitor_report"], 1)

    def test_monitor_history_report(self):
        html = os.path.join(self.tmp.name, "history.html")
        deadline = time.time() + 30
        while time.time() < deadline:  # the first pass stores the 1h window
            p = self.run_keel("monitor", "churn/1", "--window", "1h", "--history", "1d",
                              "--report", html)
            if "history: 0 " not in p.stdout:
                break
            time.sleep(0.2)
        self.assertRegex(p.stdout, r"history: [1-9][0-9]* stored 1h windows in the last 1d")
        with open(html) as f:
            page = f.read()
        self.assertIn("stored windows)", page)
        self.assertIn("Drift score: total_day_minutes", page)
        self.assertIn("Performance: auc", page)
        self.assertNotIn("<script", page)

    def test_read_endpoints(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            r = self.server.session.get(self.server.url + "/api/2.0/keel/alerts", timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            if len(r.json()["alerts"]) >= 2:
                break
            time.sleep(0.2)
        alerts = r.json()["alerts"]
        self.assertEqual(sorted(a["rule"] for a in alerts), ["performance_decay", "prediction_drift"])
        r = self.server.session.get(self.server.url + "/api/2.0/keel/alerts",
                                    params={"model": "fraud"}, timeout=10)
        self.assertEqual(r.json()["alerts"], [])

        r = self.server.session.get(self.server.url + "/api/2.0/keel/monitor/windows",
                                    params={"model": "churn", "limit": 2}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        windows = r.json()["windows"]
        self.assertTrue(1 <= len(windows) <= 2)
        w = windows[0]
        self.assertEqual(w["model"], "churn")
        self.assertGreater(w["rows"], 0)
        self.assertIn("share", w["dataset"])
        self.assertIn("total_day_minutes", [c["name"] for c in w["columns"]])
        self.assertNotIn("report", w)
        r = self.server.session.get(self.server.url + "/api/2.0/keel/monitor/windows",
                                    params={"model": "churn", "limit": 1, "full": "true"},
                                    timeout=10)
        self.assertEqual(r.json()["windows"][0]["report"]["keel_monitor_report"], 1)

        def windows(**params):
            r = self.server.session.get(self.server.url + "/api/2.0/keel/monitor/windows",
                                        params={"model": "churn", **params}, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            return r.json()["windows"]

        every = windows(limit=1000)
        lengths = {x["to_ms"] - x["from_ms"] for x in every}
        for length in lengths:  # one window length only
            got = windows(window_ms=length, limit=1000)
            self.assertEqual([x["id"] for x in got],
                             [x["id"] for x in every if x["to_ms"] - x["from_ms"] == length])
        # Paging back in time: each page ends where the next begins, nothing twice.
        pages, last = [], 0
        while True:
            page = windows(limit=2, **({"before_id": last} if last else {}))
            pages += page
            if len(page) < 2:
                break
            last = page[-1]["id"]
        self.assertEqual([x["id"] for x in pages], [x["id"] for x in every])
        newest = every[0]["computed_ms"]
        self.assertEqual([x["id"] for x in windows(until_ms=newest, limit=1000)],
                         [x["id"] for x in every if x["computed_ms"] < newest])
        # One window by id, in full; a summary of only some parts.
        [one] = windows(id=every[-1]["id"], full="true")
        self.assertEqual(one["id"], every[-1]["id"])
        self.assertIn("report", one)
        [ops] = windows(id=every[0]["id"], fields="operational")
        self.assertEqual(sorted(ops), ["computed_ms", "from_ms", "id", "model", "operational",
                                       "to_ms", "version"])
        for params, needle in [({}, "model"), ({"model": "churn", "limit": 5000}, "limit"),
                               ({"model": "churn", "fields": "rows,bogus"}, "bogus"),
                               ({"model": "churn", "window_ms": -1}, "negative")]:
            r = self.server.session.get(self.server.url + "/api/2.0/keel/monitor/windows",
                                        params=params, timeout=10)
            self.assertEqual(r.status_code, 400, r.text)
            self.assertIn(needle, r.json()["message"])

    def test_bad_rules_file_stops_the_server(self):
        rules = os.path.join(self.tmp.name, "bad.yaml")
        with open(rules, "w") as f:
            f.write("rules:\n  - name: drift\n    metric: drift.dataset\n    threshold: 1\n"
                    "    window: sometimes\n")
        p = subprocess.run([keel_binary(), "server", "--port", "0", "--alert-rules", rules],
                           capture_output=True, text=True, env=self.env, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("bad.yaml:2: rule 1 (drift): window", lines[0])
        p = subprocess.run([keel_binary(), "server", "--port", "0", "--alert-webhook",
                            "http://127.0.0.1:9/x"], capture_output=True, text=True,
                           env={k: v for k, v in self.env.items()
                                if k != "KEEL_ALERT_WEBHOOK_SECRET"}, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("signing secret", p.stderr)


# min_samples is the traffic of one phase (400 rows), so each rule judges only
# a whole phase: a pass that runs while a phase is half sent sees too few rows
# to judge (an AUC on 200 rows moves by more than 0.03 by chance alone).
RULES = """rules:
  - {name: data_drift, metric: drift.column.total_day_minutes, op: ">=", threshold: 1,
     window: 10m, min_samples: 400, cooldown: 1h}
  - {name: prediction_drift, metric: drift.prediction, op: ">=", threshold: 1,
     window: 10m, min_samples: 400, cooldown: 1h}
  - {name: performance_decay, metric: performance.auc.drop, threshold: 0.03,
     window: 10m, min_samples: 400, cooldown: 1h, severity: critical}
"""


class ShiftHalfWayTest(unittest.TestCase):
    """Real-time traffic whose distribution shifts half-way: the alerts fire on
    the windows after the shift, and not on the windows before it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="keel-shift-")
        d = cls.tmp.name
        header, shifted, ref_path, _ = planted_churn_split(CHURN, d)
        with open(CHURN, newline="") as f:
            body = list(csv.reader(f))[1:]
        cls.header = header
        cls.plain = body[len(body) // 2:][:400]  # the same rows before the shift
        cls.shifted = shifted[:400]
        cls.store = os.path.join(d, "store")
        cls.env = dict(os.environ)
        cls.env["KEEL_STORE_URI"] = "sqlite://" + os.path.join(cls.store, "keel.db")
        cls.env["KEEL_ARTIFACT_ROOT"] = os.path.join(cls.store, "artifacts")
        run_keel(cls.env, "train", "--data", ref_path, "--target", "churn", "--param",
                 "n_estimators=40", "--experiment", "shift", "--register", "churn")
        run_keel(cls.env, "models", "alias", "churn@champion", "1")
        rules = os.path.join(d, "rules.yaml")
        with open(rules, "w") as f:
            f.write(RULES)
        cls.clock = ServerClock(d)
        cls.server = KeelServer(data_dir=cls.store, env=cls.clock.env(cls.env), extra_args=[
            "--monitor-interval", "200ms", "--alert-rules", rules, "--log-flush-ms", "20"])
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.session.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def send(self, rows):
        """Scores rows in requests of 50 through /predict and posts their labels."""
        churn = self.header.index("churn")
        predict_and_label(self.server, self.header, [(r, r[churn]) for r in rows])

    def alerts(self):
        out = run_keel(self.env, "alerts", "list", "--json").stdout
        return json.loads(out)["alerts"]

    def metrics(self):
        r = self.server.session.get(self.server.url + "/metrics", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return parse_metrics(r.text)

    def test_alerts_fire_after_the_shift_and_not_before(self):
        t0 = self.clock.now_ms()
        self.send(self.plain)  # returns once every label is committed
        # A pass that began after the last label has ended: it saw every row.
        wait_for_monitor_passes(self.server)
        self.assertEqual(self.alerts(), [], "an alert fired before the shift")
        m = self.metrics()
        self.assertGreater(m['keel_monitor_windows_total{source="log"}'], 0, m)
        self.assertEqual(m["keel_monitor_pass_errors_total"], 0, m)
        self.assertGreaterEqual(m["keel_monitor_last_pass_timestamp_seconds"], t0 / 1000, m)
        # The window the passes judged, as `keel monitor` reads it.
        before = json.loads(run_keel(self.env, "monitor", "churn/1", "--window", "10m",
                                     "--json", "-", "--quiet").stdout)
        self.assertEqual(before["rows"], len(self.plain))
        self.assertEqual(before["performance"]["labelled"], len(self.plain))
        self.assertFalse(before["drift"]["prediction_drift"])

        self.clock.set(10 * 60_000 + 1_000)  # the unshifted traffic leaves the 10 min window
        t1 = self.clock.now_ms()
        self.send(self.shifted)
        deadline = time.time() + 60
        fired = []
        while time.time() < deadline:
            fired = self.alerts()
            if {a["rule"] for a in fired} >= {"data_drift", "prediction_drift", "performance_decay"}:
                break
            time.sleep(0.2)
        self.assertEqual(sorted(a["rule"] for a in fired),
                         ["data_drift", "performance_decay", "prediction_drift"])
        for a in fired:
            self.assertGreaterEqual(a["first_ms"], t1, a)
            self.assertEqual(a["version"], "1")
        decay = [a for a in fired if a["rule"] == "performance_decay"][0]
        self.assertEqual(decay["severity"], "critical")
        self.assertGreater(decay["value"], 0.03)


if __name__ == "__main__":
    unittest.main()
