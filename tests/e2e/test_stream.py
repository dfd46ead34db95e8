"""End-to-end tests of `keel stream`: scoring from a NATS JetStream durable consumer.

Trains two churn versions with `keel train` into a real store, starts a real
`nats-server -js` on a free loopback port with a temporary store directory,
and drives the real keel binary. NATS is spoken from Python by
tests/tools/nats_wire.py (the text protocol and the $JS.API JSON calls), an
implementation independent of the libnats client keel uses.

Checked: predictions (against python3-xgboost) with their Nats-Msg-Id and
provenance fields; dead letters with the error and the original payload;
max-deliver; at-least-once delivery with the scorer SIGKILLed over and over
while a producer publishes; two processes sharing one durable; per-key order
with --ordered-by across a graceful restart; alias moves followed mid-stream;
backpressure, lag and errors on /metrics; the prediction log; stream
creation; graceful shutdown; bad flags and unreachable NATS.

Run: KEEL_BINARY=build/keel KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_stream.py
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import requests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from keel_harness import KeelServer, free_port, keel_binary, parse_metrics  # noqa: E402
from nats_wire import JetStream, Nats, NatsError, NatsServer  # noqa: E402
from test_serving import download_package, records, set_alias, train  # noqa: E402

# Sanitizer builds run several times slower: fewer messages, same checks.
ASAN = "asan" in keel_binary()
SCALE = 0.3 if ASAN else 1.0


def n(count):
    return max(50, int(count * SCALE))


class Scorer:
    """One `keel stream` process against the test store and NATS server."""

    def __init__(self, case, *args, wait=True):
        self.case = case
        self.port = free_port()
        self.log_path = os.path.join(case.tmp, f"stream-{self.port}.log")
        cmd = [keel_binary(), "--store-uri", case.k.store_uri, "--artifact-root",
               case.k.artifact_root, "stream", *args, "--nats", case.nats.url,
               "--port", str(self.port), "--poll-ms", "50", "--log-flush-ms", "20"]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_healthy(self, timeout=60):
        """Until /health answers and the start-up banner is complete (it is printed
        after the HTTP server starts: its last line is the prediction log's)."""
        deadline = time.time() + timeout
        healthy = False
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"keel stream exited {self.proc.returncode}: "
                                     + self.read_log())
            try:
                healthy = healthy or requests.get(self.url + "/health",
                                                  timeout=1).status_code == 200
            except requests.ConnectionError:
                pass
            if healthy and "predictions log:" in self.read_log():
                return self
            time.sleep(0.02)
        raise AssertionError("keel stream did not become healthy: " + self.read_log())

    def metrics(self):
        r = requests.get(self.url + "/metrics", timeout=5)
        r.raise_for_status()
        return parse_metrics(r.text)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("keel stream did not stop: " + self.read_log())
        self.log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)


# One store (churn versions 1 and 2, champion -> 1) and one nats-server for
# the whole module; each test uses its own streams and durables.
SHARED = {}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="keel-stream-")
    k = KeelServer().start()
    SHARED.update(tmp=tmp, k=k)
    try:
        train(k, tmp, 20)
        train(k, tmp, 40)
        set_alias(k, "churn", "champion", 1)
        ref = {v: download_package(k, "churn", v, os.path.join(tmp, f"v{v}")) for v in (1, 2)}
    finally:
        k.stop()  # keel stream reads the store and artifact root directly
    SHARED.update(ref=ref, recs=records(5000), nats=NatsServer().start())


def tearDownModule():
    if "nats" in SHARED:
        SHARED["nats"].stop()
    if "k" in SHARED:
        shutil.rmtree(SHARED["k"].data_dir, ignore_errors=True)
    if "tmp" in SHARED:
        shutil.rmtree(SHARED["tmp"], ignore_errors=True)


class StreamCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for key in ("tmp", "k", "ref", "recs", "nats"):
            setattr(cls, key, SHARED[key])
        cls.nc = Nats(cls.nats.port)
        cls.js = JetStream(cls.nc)

    @classmethod
    def tearDownClass(cls):
        cls.nc.close()

    def setUp(self):
        self.scorers = []

    def tearDown(self):
        for s in self.scorers:
            if s.proc.poll() is None:
                s.kill()
        self.scorers = []

    def scorer(self, *args, wait=True):
        s = Scorer(self, *args, wait=wait)
        self.scorers.append(s)
        return s

    def streams(self, name, dead=True):
        """Input stream <name> on <name>.in; output stream <name>_OUT on <name>.out (+ .dead)."""
        low = name.lower()
        self.js.add_stream(name, [low + ".in"])
        self.js.add_stream(name + "_OUT", [low + ".out"] + ([low + ".out.dead"] if dead else []))
        return low + ".in", low + ".out"

    def rec(self, i):
        r = dict(self.recs[i % len(self.recs)])
        r["customer_id"] = i
        return r

    def publish(self, subject, bodies, msg_ids=None, conn=None):
        js = JetStream(conn) if conn else self.js
        items = []
        for i, b in enumerate(bodies):
            data = b if isinstance(b, bytes) else json.dumps(b).encode()
            items.append((subject, data, {"Nats-Msg-Id": msg_ids[i]} if msg_ids else None))
        return [a["seq"] for a in js.publish_many(items)]

    def consumer(self, stream, durable):
        try:
            return self.js.consumer_info(stream, durable)
        except NatsError:
            return None

    def wait_drained(self, stream, durable, total=None, timeout=60):
        """Until the durable has nothing pending and nothing unacknowledged."""
        deadline = time.time() + timeout
        info = None
        while time.time() < deadline:
            info = self.consumer(stream, durable)
            if (info and info["num_pending"] == 0 and info["num_ack_pending"] == 0
                    and (total is None or info["ack_floor"]["stream_seq"] >= total)):
                return info
            time.sleep(0.05)
        raise AssertionError(f"consumer {durable} not drained: {info}")

    def outputs(self, stream, subject):
        return self.js.read_stream(stream, subject)

    def assertClose(self, got, want, tol=1e-6):
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertLess(abs(g - w), tol, (got, want))


class ErrorsTest(StreamCase):

    def run_stream(self, *args, nats=None):
        cmd = [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
               self.k.artifact_root, "stream", *args, "--nats", nats or self.nats.url,
               "--port", "0"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def assertOneLine(self, p, *parts):
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("keel: error: "), p.stderr)
        for part in parts:
            self.assertIn(part, lines[0])

    def test_bad_flags_unreachable_nats_and_missing_streams(self):
        base = ["churn@champion", "--stream", "ERR", "--subject", "err.in",
                "--output-subject", "err.out"]
        dead_port = free_port()
        self.assertOneLine(self.run_stream(*base, nats=f"nats://127.0.0.1:{dead_port}"),
                           f"cannot connect to NATS at nats://127.0.0.1:{dead_port}")
        self.assertOneLine(self.run_stream(*base), "stream ERR does not exist", "--create-stream")
        self.assertOneLine(self.run_stream("churn", "--subject", "a", "--output-subject", "b"),
                           "--stream is required")
        self.assertOneLine(self.run_stream(*base, "--max-in-flight", "0"), "--max-in-flight")
        p = self.run_stream("churn", "--stream", "A.B", "--subject", "a", "--output-subject", "b")
        self.assertOneLine(p, "--stream")
        self.assertEqual(p.returncode, 2)
        self.assertOneLine(self.run_stream("churn", "--stream", "ERR", "--subject", "err.>",
                                           "--output-subject", "err.out"),
                           "would consume its own output")
        self.assertOneLine(self.run_stream("nosuchmodel", "--stream", "ERR", "--subject",
                                           "err.in", "--output-subject", "err.out"),
                           "nosuchmodel")
        # The input stream exists but nothing captures the output subjects.
        self.js.add_stream("ERR", ["err.in"])
        self.assertOneLine(self.run_stream(*base), "no JetStream stream captures err.out")
        # No stream was created by the failed runs, and no consumer.
        self.assertEqual(self.js.stream_info("ERR")["state"]["consumer_count"], 0)


class ScoringTest(StreamCase):

    def test_predictions_dead_letters_metrics_and_log(self):
        subject, out = self.streams("SCORE")
        good = [self.rec(i) for i in range(n(200))]
        missing = self.rec(7)
        del missing["total_day_minutes"]
        bad_type = self.rec(8)
        bad_type["account_length"] = "abc"
        bad = [b'{"state": "KS", "account_len', b"[1, 2]", json.dumps(bad_type).encode(),
               json.dumps(missing).encode(), b"", b"\xff\xfe{not utf-8", b"[]"]
        array = [self.rec(i) for i in range(3)]
        bodies = good[:50] + bad[:4] + [array] + good[50:] + bad[4:]
        ids = [f"in-{i}" for i in range(len(bodies))]
        seqs = self.publish(subject, bodies, ids)
        s = self.scorer("churn@champion", "--stream", "SCORE", "--subject", subject,
                        "--output-subject", out, "--durable", "score")
        self.wait_drained("SCORE", "score", len(bodies))

        got = self.outputs("SCORE_OUT", out)
        self.assertEqual(len(got), len(good) + 1)
        by_seq = {m.json()["input_seq"]: m for m in got}
        body_of_seq = dict(zip(seqs, bodies))
        id_of_seq = dict(zip(seqs, ids))
        values, want_recs = [], []
        for seq, m in by_seq.items():
            b = m.json()
            rid = f"SCORE:score:{seq}:{out}"
            self.assertEqual(m.headers["Nats-Msg-Id"], rid)
            self.assertEqual(b["request_id"], rid)
            self.assertEqual(b["input_stream"], "SCORE")
            self.assertEqual(b["input_msg_id"], id_of_seq[seq])
            self.assertEqual((b["model"], b["model_version"]), ("churn", "1"))
            src = body_of_seq[seq]
            if isinstance(src, list):
                self.assertEqual([p["request_id"] for p in b["predictions"]],
                                 [f"{rid}-{i}" for i in range(3)])
                self.assertClose([p["churn_probability"] for p in b["predictions"]],
                                 self.ref[1].predict(src))
                continue
            self.assertEqual(set(b), {"churn_probability", "model", "model_version", "request_id",
                                      "input_stream", "input_seq", "input_msg_id"})
            values.append(b["churn_probability"])
            want_recs.append(src)
        self.assertClose(values, self.ref[1].predict(want_recs))

        dead = self.outputs("SCORE_OUT", out + ".dead")
        self.assertEqual(len(dead), len(bad))
        errors = {}
        for m in dead:
            b = m.json()
            seq = b["input_seq"]
            self.assertEqual(m.headers["Nats-Msg-Id"], f"SCORE:score:{seq}:{out}.dead")
            self.assertEqual((b["input_stream"], b["input_subject"], b["deliveries"]),
                             ("SCORE", subject, 1))
            self.assertEqual(b["model"], "churn@champion")
            src = body_of_seq[seq]
            if "payload" in b:
                self.assertEqual(b["payload"].encode(), src)
            else:
                import base64
                self.assertEqual(base64.b64decode(b["payload_base64"]), src)
            errors[src] = b["error"]
        self.assertIn("malformed JSON", errors[bad[0]])
        self.assertIn("account_length", errors[bad[2]])
        self.assertIn("total_day_minutes", errors[bad[3]])
        self.assertIn("empty array", errors[bad[6]])

        m = s.metrics()
        total = len(bodies)
        self.assertEqual(m["keel_stream_messages_consumed_total"], total)
        self.assertEqual(m['keel_stream_messages_published_total{kind="prediction"}'],
                         len(good) + 1)
        self.assertEqual(m['keel_stream_messages_published_total{kind="dead_letter"}'], len(bad))
        self.assertEqual(m['keel_stream_input_acks_total{how="ack"}'], len(good) + 1)
        self.assertEqual(m['keel_stream_input_acks_total{how="term"}'], len(bad))
        self.assertEqual(m['keel_stream_errors_total{kind="invalid_input"}'], len(bad))
        self.assertEqual(m['keel_stream_predictions_total{model="churn",version="1"}'],
                         len(good) + 3)
        self.assertEqual(m["keel_stream_in_flight"], 0)
        self.assertEqual(m["keel_stream_connected"], 1)
        self.assertIn("keel_stream_consumer_pending", m)
        self.assertEqual(requests.get(s.url + "/health", timeout=5).text.split("\n")[0], "OK")
        self.assertEqual(s.stop(), 0, s.read_log())
        self.assertIn(f"keel stream stopped: {total} consumed, {len(good) + 1} predictions and "
                      f"{len(bad)} dead letters published", s.read_log())

        # The prediction log holds every scored row once, under the output's id.
        with sqlite3.connect(os.path.join(self.k.data_dir, "keel.db"), timeout=30) as db:
            rows = db.execute("SELECT request_id, model, version, input, output FROM predictions"
                              " WHERE endpoint = 'stream' AND request_id LIKE 'SCORE:%'"
                              ).fetchall()
        self.assertEqual(len(rows), len(good) + 3)
        logged = {r[0]: r for r in rows}
        for m in got:
            b = m.json()
            if "predictions" in b:
                for p in b["predictions"]:
                    self.assertIn(p["request_id"], logged)
                continue
            row = logged[b["request_id"]]
            self.assertEqual((row[1], row[2]), ("churn", "1"))
            self.assertLess(abs(float(row[4]) - b["churn_probability"]), 1e-6)
            self.assertEqual(json.loads(row[3]), body_of_seq[b["input_seq"]])

    def test_create_stream(self):
        s = self.scorer("churn", "--stream", "MADE", "--subject", "made.in",
                        "--output-subject", "made.out", "--create-stream",
                        "--output-stream", "MADE_OUT", "--no-prediction-log")
        self.assertIn("created:      MADE, MADE_OUT", s.read_log())
        self.publish("made.in", [self.rec(i) for i in range(10)])
        self.wait_drained("MADE", "keel-churn", 10)
        self.assertEqual(len(self.outputs("MADE_OUT", "made.out")), 10)
        self.assertEqual(self.js.stream_info("MADE_OUT")["config"]["subjects"],
                         ["made.out", "made.out.dead"])
        self.assertEqual(s.stop(), 0)
        # Started again, it finds both and creates nothing (wait_healthy waited
        # for the whole banner, so the line would be there).
        s = self.scorer("churn", "--stream", "MADE", "--subject", "made.in",
                        "--output-subject", "made.out", "--create-stream")
        self.assertIn("output:       made.out (stream MADE_OUT)", s.read_log())
        self.assertNotIn("created:", s.read_log())
        self.assertEqual(s.stop(), 0)

    def test_two_durables_one_output_and_an_oversized_prediction(self):
        """Champion and challenger durables read one stream into one subject: the ids
        carry the durable, so neither drops the other's outputs. A prediction larger
        than the server's max payload (1 MB) becomes a dead letter (its payload cut to
        64 KiB) instead of being retried forever, and the stream goes on."""
        subject, out = self.streams("DUO")
        huge = b"[" + b",".join([b"{}"] * 30000) + b"]"  # 90 KB in, ~2 MB of predictions
        bodies = [self.rec(i) for i in range(10)] + [huge] + [self.rec(i) for i in range(10, 15)]
        seqs = self.publish(subject, bodies)
        common = ["--stream", "DUO", "--subject", subject, "--output-subject", out,
                  "--lenient-inputs", "--no-prediction-log"]
        a = self.scorer("churn@champion", *common, "--durable", "champ")
        b = self.scorer("churn@champion", *common, "--durable", "chall")
        for durable in ("champ", "chall"):
            self.wait_drained("DUO", durable, len(bodies))
        got = [m.json() for m in self.outputs("DUO_OUT", out)]
        want = {(d, q) for d in ("champ", "chall") for q in seqs if q != seqs[10]}
        self.assertEqual({tuple(o["request_id"].split(":")[1:3]) for o in got},
                         {(d, str(q)) for d, q in want})
        self.assertEqual(len(got), len(want))
        dead = [m.json() for m in self.outputs("DUO_OUT", out + ".dead")]
        self.assertEqual(sorted(d["input_seq"] for d in dead), [seqs[10]] * 2)
        for d in dead:
            self.assertIn("max payload", d["error"])
            self.assertIs(d["payload_truncated"], True)
            self.assertEqual(d["payload_bytes"], len(huge))
            self.assertLessEqual(len(d["payload"]), 64 * 1024)
            self.assertTrue(huge.startswith(d["payload"].encode()))
        for s in (a, b):
            self.assertEqual(s.metrics()['keel_stream_errors_total{kind="too_large"}'], 1)
            self.assertEqual(s.stop(), 0, s.read_log())

    def test_max_deliver(self):
        subject, out = self.streams("REDO")
        self.js.add_durable("REDO", "redo", filter_subject=subject)
        seqs = self.publish(subject, [self.rec(1)])
        # The message is delivered twice and handed back (as by crashed scorers).
        for _ in range(2):
            msg = self.js.fetch_one("REDO", "redo")
            self.assertEqual(msg.js_meta()["stream_seq"], seqs[0])
            self.js.ack(msg, b"-NAK")
        seqs += self.publish(subject, [self.rec(2)])
        s = self.scorer("churn", "--stream", "REDO", "--subject", subject, "--output-subject",
                        out, "--durable", "redo", "--max-deliver", "2")
        self.wait_drained("REDO", "redo", 2)
        dead = [m.json() for m in self.outputs("REDO_OUT", out + ".dead")]
        self.assertEqual(len(dead), 1)
        self.assertEqual((dead[0]["input_seq"], dead[0]["deliveries"]), (seqs[0], 3))
        self.assertIn("delivered 3 times without being acknowledged", dead[0]["error"])
        outs = [m.json() for m in self.outputs("REDO_OUT", out)]
        self.assertEqual([o["input_seq"] for o in outs], [seqs[1]])
        self.assertEqual(s.metrics()['keel_stream_errors_total{kind="max_deliver"}'], 1)
        self.assertEqual(s.stop(), 0)


class DeliveryTest(StreamCase):

    def test_sigkill_loop_loses_nothing(self):
        """Kill -9 the scorer again and again while a producer publishes; every input
        gets its output, and repeats carry the same Nats-Msg-Id."""
        subject, out = self.streams("KILL")
        total = n(3000)
        bodies = [self.rec(i) for i in range(total)]
        preload = total // 4
        self.publish(subject, bodies[:preload])
        done = threading.Event()
        errors = []

        def produce():
            try:
                conn = Nats(self.nats.port)
                rest = bodies[preload:]
                chunk = 50
                pause = 4.0 / max(1, len(rest) // chunk)
                for i in range(0, len(rest), chunk):
                    self.publish(subject, rest[i:i + chunk], conn=conn)
                    time.sleep(pause)
                conn.close()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            finally:
                done.set()

        producer = threading.Thread(target=produce)
        producer.start()
        args = ["churn", "--stream", "KILL", "--subject", subject, "--output-subject", out,
                "--durable", "kill", "--ack-wait-ms", "1000", "--max-in-flight", "64",
                "--max-deliver", "1000", "--no-prediction-log"]
        rng = random.Random(7)
        kills = 0
        while not done.is_set() or kills < 4:
            s = self.scorer(*args, wait=False)
            before = self.consumer("KILL", "kill")
            before_seq = before["delivered"]["consumer_seq"] if before else 0
            if kills % 2 == 0:
                # Right after this process took deliveries (messages are in flight).
                target = before_seq + rng.randint(1, 40)
                deadline = time.time() + 3
                while time.time() < deadline and s.proc.poll() is None:
                    info = self.consumer("KILL", "kill")
                    if info and info["delivered"]["consumer_seq"] >= target:
                        break
                    time.sleep(0.003)
            else:
                time.sleep(rng.uniform(0.05, 0.6))  # any point, start-up included
            self.assertIsNone(s.proc.poll(), s.read_log())
            s.kill()
            kills += 1
        producer.join()
        self.assertEqual(errors, [])
        s = self.scorer(*args)
        info = self.wait_drained("KILL", "kill", total)
        self.assertEqual(s.stop(), 0, s.read_log())
        # Some messages were delivered more than once: kills landed mid-work.
        self.assertGreater(info["delivered"]["consumer_seq"], total, info)
        print(f"\n  {kills} kills; {info['delivered']['consumer_seq']} deliveries for {total} "
              "messages", file=sys.stderr)

        got = self.outputs("KILL_OUT", out)
        ids = {}
        for m in got:
            b = m.json()
            self.assertEqual(m.headers["Nats-Msg-Id"], b["request_id"])
            self.assertEqual(b["request_id"], f"KILL:kill:{b['input_seq']}:{out}")
            ids.setdefault(b["input_seq"], []).append(b["churn_probability"])
        self.assertEqual(set(ids), set(range(1, total + 1)))
        # The output stream dropped the repeats inside its duplicate window:
        # one stored output per input.
        self.assertEqual(len(got), total)
        self.assertEqual(self.outputs("KILL_OUT", out + ".dead"), [])
        sample = sorted(ids)[:: max(1, total // 200)]
        self.assertClose([ids[q][0] for q in sample],
                         self.ref[1].predict([bodies[q - 1] for q in sample]))

    def test_two_processes_share_the_durable(self):
        subject, out = self.streams("PAIR")
        args = ["churn", "--stream", "PAIR", "--subject", subject, "--output-subject", out,
                "--durable", "pair", "--max-in-flight", "16", "--no-prediction-log"]
        a = self.scorer(*args)
        b = self.scorer(*args)
        total = n(2000)
        self.publish(subject, [self.rec(i) for i in range(total)])
        self.wait_drained("PAIR", "pair", total)
        ma, mb = a.metrics(), b.metrics()
        ca, cb = ma["keel_stream_messages_consumed_total"], mb["keel_stream_messages_consumed_total"]
        self.assertGreater(ca, 0)
        self.assertGreater(cb, 0)
        self.assertEqual(ca + cb, total)
        got = self.outputs("PAIR_OUT", out)
        self.assertEqual(sorted(m.json()["input_seq"] for m in got), list(range(1, total + 1)))
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    def test_three_processes_with_kills_lose_nothing(self):
        """Scale-out under load: three scorers share one durable while a producer
        publishes; every 0.4 s one of them, at random, is SIGKILLed and replaced.
        Every input has exactly one stored output and no dead letter."""
        subject, out = self.streams("TRIO")
        total = n(6000)
        bodies = [self.rec(i) for i in range(total)]
        done = threading.Event()
        errors = []

        def produce():
            try:
                conn = Nats(self.nats.port)
                for i in range(0, total, 100):
                    self.publish(subject, bodies[i:i + 100], conn=conn)
                    time.sleep(0.05)
                conn.close()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            finally:
                done.set()

        args = ["churn", "--stream", "TRIO", "--subject", subject, "--output-subject", out,
                "--durable", "trio", "--ack-wait-ms", "1000", "--max-in-flight", "64",
                "--max-deliver", "1000", "--no-prediction-log"]
        live = [self.scorer(*args) for _ in range(3)]
        start = time.time()
        producer = threading.Thread(target=produce)
        producer.start()
        rng = random.Random(3)
        kills = 0
        while not done.is_set() or kills < 4:
            time.sleep(0.4)
            victim = live.pop(rng.randrange(len(live)))
            self.assertIsNone(victim.proc.poll(), victim.read_log())
            victim.kill()
            kills += 1
            live.append(self.scorer(*args, wait=False))
        producer.join()
        self.assertEqual(errors, [])
        for s in live:
            s.wait_healthy()
        info = self.wait_drained("TRIO", "trio", total, timeout=120)
        seconds = time.time() - start
        for s in live:
            self.assertEqual(s.stop(), 0, s.read_log())
        got = self.outputs("TRIO_OUT", out)
        seqs = sorted(m.json()["input_seq"] for m in got)
        self.assertEqual(seqs, list(range(1, total + 1)))
        self.assertEqual(self.outputs("TRIO_OUT", out + ".dead"), [])
        print(f"\n  3 scorers, {kills} SIGKILLs: {total} messages in {seconds:.1f} s "
              f"({total / seconds:.0f} msgs/s including the producer's pace); "
              f"{info['delivered']['consumer_seq']} deliveries", file=sys.stderr)

    def test_sigterm_finishes_in_flight_messages(self):
        subject, out = self.streams("TERM")
        total = n(3000)
        self.publish(subject, [self.rec(i) for i in range(total)])
        args = ["churn", "--stream", "TERM", "--subject", subject, "--output-subject", out,
                "--durable", "term", "--max-in-flight", "64", "--no-prediction-log"]
        s = self.scorer(*args)
        deadline = time.time() + 30
        while time.time() < deadline:
            info = self.consumer("TERM", "term")
            if info and info["ack_floor"]["stream_seq"] > 0:
                break
            time.sleep(0.002)
        self.assertEqual(s.stop(), 0, s.read_log())
        info = self.consumer("TERM", "term")
        # Nothing the process took was left unacknowledged...
        self.assertEqual(info["num_ack_pending"], 0, info)
        delivered = info["delivered"]["stream_seq"]
        # ...and everything acknowledged has its output.
        got = sorted(m.json()["input_seq"] for m in self.outputs("TERM_OUT", out))
        self.assertEqual(got, list(range(1, delivered + 1)))
        s = self.scorer(*args)
        self.wait_drained("TERM", "term", total)
        self.assertEqual(s.stop(), 0)
        got = sorted(m.json()["input_seq"] for m in self.outputs("TERM_OUT", out))
        self.assertEqual(got, list(range(1, total + 1)))


class OrderingTest(StreamCase):

    def test_ordered_by_key_across_a_restart(self):
        subject, out = self.streams("ORD")
        total = n(1500)
        rng = random.Random(3)
        keys = [f"k{rng.randrange(12)}" for _ in range(total)]
        bodies = []
        for i, key in enumerate(keys):
            r = self.rec(i)
            r["customer_key"] = key
            bodies.append(r)
        args = ["churn", "--stream", "ORD", "--subject", subject, "--output-subject", out,
                "--durable", "ord", "--ordered-by", "customer_key", "--workers", "3",
                "--max-in-flight", "48", "--no-prediction-log"]
        s = self.scorer(*args)
        self.assertIn("ordering:     by customer_key (3 lanes)", s.read_log())
        half = total // 2
        self.publish(subject, bodies[:half])
        self.assertEqual(s.stop(), 0, s.read_log())
        s = self.scorer(*args)
        self.publish(subject, bodies[half:])
        self.wait_drained("ORD", "ord", total)
        self.assertEqual(s.stop(), 0)
        got = self.outputs("ORD_OUT", out)
        self.assertEqual(len(got), total)
        last = {}
        for m in got:  # in the order JetStream stored them
            seq = m.json()["input_seq"]
            key = keys[seq - 1]
            self.assertGreater(seq, last.get(key, 0), f"key {key}: {seq} after {last.get(key)}")
            last[key] = seq


class AliasTest(StreamCase):

    def test_alias_move_is_followed_between_messages(self):
        subject, out = self.streams("SWAP")
        set_alias_cli = [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
                         self.k.artifact_root, "models", "alias", "churn@streamtest"]
        subprocess.run(set_alias_cli + ["1"], check=True, capture_output=True, timeout=60)
        s = self.scorer("churn@streamtest", "--stream", "SWAP", "--subject", subject,
                        "--output-subject", out, "--durable", "swap")
        first = [self.rec(i) for i in range(100)]
        self.publish(subject, first)
        self.wait_drained("SWAP", "swap", 100)
        got = self.outputs("SWAP_OUT", out)
        self.assertEqual({m.json()["model_version"] for m in got}, {"1"})
        subprocess.run(set_alias_cli + ["2"], check=True, capture_output=True, timeout=60)
        # Keep publishing until an output carries version 2.
        published = 100
        deadline = time.time() + 30
        while True:
            self.publish(subject, [self.rec(published + i) for i in range(10)])
            published += 10
            self.wait_drained("SWAP", "swap", published)
            got = self.outputs("SWAP_OUT", out)
            if any(m.json()["model_version"] == "2" for m in got):
                break
            self.assertLess(time.time(), deadline, "the alias move was not followed")
        # Everything published after that is scored by version 2.
        later = [self.rec(1000 + i) for i in range(50)]
        seqs = self.publish(subject, later)
        self.wait_drained("SWAP", "swap", published + 50)
        by_seq = {m.json()["input_seq"]: m.json() for m in self.outputs("SWAP_OUT", out)}
        self.assertEqual({by_seq[q]["model_version"] for q in seqs}, {"2"})
        self.assertClose([by_seq[q]["churn_probability"] for q in seqs],
                         self.ref[2].predict(later))
        m = s.metrics()
        self.assertGreater(m['keel_stream_predictions_total{model="churn",version="2"}'], 0)
        self.assertEqual(s.stop(), 0)


class BackpressureTest(StreamCase):

    def test_in_flight_bound_lag_and_publish_errors_then_recovery(self):
        subject, out = "bp.in", "bp.out"
        self.js.add_stream("BP", [subject])
        # An output stream that refuses new messages after 5: publishes fail and are retried.
        self.js.add_stream("BP_OUT", [out, out + ".dead"], max_msgs=5, discard="new")
        total = 200
        self.publish(subject, [self.rec(i) for i in range(total)])
        s = self.scorer("churn", "--stream", "BP", "--subject", subject, "--output-subject", out,
                        "--durable", "bp", "--max-in-flight", "16", "--no-prediction-log")
        deadline = time.time() + 30
        while True:
            m = s.metrics()
            if (m["keel_stream_consumer_pending"] == total - 5 - 16
                    and m['keel_stream_errors_total{kind="publish"}'] > 0):
                break
            self.assertLess(time.time(), deadline,
                            {k: v for k, v in m.items() if k.startswith("keel_stream_")})
            time.sleep(0.1)
        self.assertEqual(m["keel_stream_in_flight"], 16)  # bounded
        self.assertEqual(m['keel_stream_messages_published_total{kind="prediction"}'], 5)
        info = self.consumer("BP", "bp")
        self.assertEqual((info["num_ack_pending"], info["num_pending"]), (16, total - 21))
        # Room again: the held messages go out and the rest follow.
        self.js.update_stream("BP_OUT", [out, out + ".dead"], max_msgs=-1, discard="new")
        self.wait_drained("BP", "bp", total)
        got = sorted(m.json()["input_seq"] for m in self.outputs("BP_OUT", out))
        self.assertEqual(got, list(range(1, total + 1)))
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
