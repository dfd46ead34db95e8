"""End-to-end durability tests: kill -9 mid-stream, graceful SIGTERM, bad input on the socket.

Run: /usr/bin/python3 tests/e2e/test_durability.py
(KEEL_E2E_SEED=<n> replays a particular random kill moment.)
"""
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import unittest
import warnings
import uuid

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import API, KeelServer  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"
SEED = int(os.environ.get("KEEL_E2E_SEED", str(int(time.time() * 1000) % 1_000_000)))


def post(session, base, path, body, timeout=10):
    return session.post(base + API + path, data=json.dumps(body),
                        headers={"Content-Type": "application/json"}, timeout=timeout)


class Writer(threading.Thread):
    """Streams writes until told to stop or the server goes away.

    attempted/acked hold everything sent and everything answered 200.
    """

    def __init__(self, tid, base, exp_id, run_id, halt, rng_seed):
        super().__init__(daemon=True)
        self.tid = tid
        self.base = base
        self.exp_id = exp_id
        self.run_id = run_id
        self.halt = halt
        self.rng = random.Random(rng_seed)
        self.session = requests.Session()
        self.key = f"loss_t{tid}"
        self.metrics_attempted = set()   # (step, value)
        self.metrics_acked = set()
        self.runs_attempted = 0
        self.runs_acked = []             # run ids
        self.params_acked = {}           # run_id -> {key: value}
        self.artifacts_acked = {}        # path -> bytes
        self.artifacts_attempted = {}
        self.error = None

    def run(self):
        try:
            for i in range(1_000_000):  # bounded; halt or a dead server end it much sooner
                if self.halt.is_set():
                    return
                roll = self.rng.random()
                if roll < 0.10:
                    self.create_run(i)
                elif roll < 0.18:
                    self.put_artifact(i)
                else:
                    self.log_metric(i)
        except (requests.ConnectionError, requests.Timeout, ConnectionError):
            return  # the server was killed mid-request
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def log_metric(self, i):
        value = i + self.tid / 10.0 + 0.125
        self.metrics_attempted.add((i, value))
        r = post(self.session, self.base, "runs/log-metric",
                 {"run_id": self.run_id, "key": self.key, "value": value,
                  "timestamp": 1_700_000_000_000 + i, "step": i})
        if r.status_code != 200:
            raise AssertionError(f"log-metric -> {r.status_code} {r.text}")
        self.metrics_acked.add((i, value))

    def create_run(self, i):
        self.runs_attempted += 1
        r = post(self.session, self.base, "runs/create",
                 {"experiment_id": self.exp_id, "start_time": 1_700_000_000_000 + i,
                  "run_name": f"t{self.tid}-i{i}"})
        if r.status_code != 200:
            raise AssertionError(f"runs/create -> {r.status_code} {r.text}")
        rid = r.json()["run"]["info"]["run_id"]
        self.runs_acked.append(rid)
        r = post(self.session, self.base, "runs/log-parameter",
                 {"run_id": rid, "key": "origin", "value": f"t{self.tid}-i{i}"})
        if r.status_code != 200:
            raise AssertionError(f"log-parameter -> {r.status_code} {r.text}")
        self.params_acked[rid] = {"origin": f"t{self.tid}-i{i}"}

    def put_artifact(self, i):
        path = f"durable/t{self.tid}/a{i}.bin"
        data = hashlib.sha256(f"{self.tid}-{i}".encode()).digest() * (1 + i % 50)
        self.artifacts_attempted[path] = data
        r = self.session.put(self.base + ART + "/" + path, data=data, timeout=10)
        if r.status_code != 200:
            raise AssertionError(f"artifact PUT -> {r.status_code} {r.text}")
        self.artifacts_acked[path] = data


class CrashDurabilityTest(unittest.TestCase):
    THREADS = 4

    def crash_round(self, sync, seed):
        rng = random.Random(seed)
        k = KeelServer(["--sync", sync, "--workers", "4"])
        k.start()
        try:
            exp_id = k.ok("POST", "experiments/create", {"name": "crash-" + sync})["experiment_id"]
            base_runs = [k.ok("POST", "runs/create", {"experiment_id": exp_id, "start_time": 1})
                         ["run"]["info"]["run_id"] for _ in range(self.THREADS)]
            halt = threading.Event()
            writers = [Writer(t, k.url, exp_id, base_runs[t], halt, seed * 31 + t)
                       for t in range(self.THREADS)]
            for w in writers:
                w.start()
            kill_after = rng.uniform(0.8, 2.5)
            time.sleep(kill_after)
            acked_before_kill = sum(len(w.metrics_acked) for w in writers)
            os.kill(k.proc.pid, signal.SIGKILL)
            k.proc.wait(10)
            halt.set()
            for w in writers:
                w.join(30)
                self.assertFalse(w.is_alive(), "writer thread hung")
                self.assertIsNone(w.error, f"writer {w.tid} failed before the kill: {w.error}")
            k.proc = None
            self.assertGreater(acked_before_kill, 20,
                               f"too few writes before the kill (seed {seed}); server too slow?")

            k.start()  # same data dir
            self.assertEqual(k.ok("GET", "experiments/get", {"experiment_id": exp_id})
                             ["experiment"]["name"], "crash-" + sync)
            total_acked = 0
            for w in writers:
                # Metric history: every acknowledged point, nothing that was never sent.
                hist = k.ok("GET", "metrics/get-history",
                            {"run_id": w.run_id, "metric_key": w.key}).get("metrics", [])
                got = [(m["step"], m["value"]) for m in hist]
                got_set = set(got)
                self.assertEqual(len(got), len(got_set), "duplicated metric points")
                missing = w.metrics_acked - got_set
                self.assertEqual(missing, set(),
                                 f"seed {seed} sync={sync}: {len(missing)} acknowledged points of "
                                 f"{w.key} lost, e.g. {sorted(missing)[:5]}")
                self.assertLessEqual(got_set, w.metrics_attempted, "points nobody sent")
                self.assertGreaterEqual(len(got), len(w.metrics_acked))
                self.assertLessEqual(len(got), len(w.metrics_acked) + 1)  # at most the in-flight one
                for m in hist:
                    self.assertEqual(m["key"], w.key)
                    self.assertEqual(m["timestamp"], 1_700_000_000_000 + m["step"])
                total_acked += len(w.metrics_acked)
                # Runs (and their params) that were acknowledged exist.
                for rid in w.runs_acked:
                    r = k.get("runs/get", {"run_id": rid})
                    self.assertEqual(r.status_code, 200, f"acked run {rid} lost: {r.text}")
                    run = r.json()["run"]
                    self.assertEqual(run["info"]["experiment_id"], exp_id)
                    if rid in w.params_acked:
                        params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
                        self.assertEqual(params, w.params_acked[rid])
                # Artifacts that were acknowledged are complete.
                for path, data in w.artifacts_acked.items():
                    r = k.session.get(k.url + ART + "/" + path, timeout=10)
                    self.assertEqual(r.status_code, 200, f"acked artifact {path} lost")
                    self.assertEqual(r.content, data, f"acked artifact {path} corrupted")
                # An upload cut by the kill is either absent or whole, never torn.
                for path, data in w.artifacts_attempted.items():
                    if path in w.artifacts_acked:
                        continue
                    full = os.path.join(k.artifact_root, path)
                    if os.path.exists(full):
                        with open(full, "rb") as f:
                            self.assertEqual(f.read(), data, f"torn artifact {path}")
            # Search sees every run too.
            r = k.ok("POST", "runs/search", {"experiment_ids": [exp_id], "max_results": 1000})
            found = {x["info"]["run_id"] for x in r.get("runs", [])}
            acked_runs = {rid for w in writers for rid in w.runs_acked} | set(base_runs)
            self.assertLessEqual(acked_runs, found)
            attempted_runs = sum(w.runs_attempted for w in writers) + len(base_runs)
            self.assertLessEqual(len(found), attempted_runs)
            self.assertGreater(total_acked, 0)
            # The restarted server takes writes again.
            k.ok("POST", "runs/log-metric", {"run_id": base_runs[0], "key": "after", "value": 1,
                                             "timestamp": 1, "step": 0})
            return total_acked
        finally:
            k.stop()
            shutil.rmtree(k.data_dir, ignore_errors=True)

    def test_kill9_mid_stream_sync_normal(self):
        n = self.crash_round("normal", SEED)
        sys.stderr.write(f" [seed {SEED}: {n} acked metric points survived] ")

    def test_kill9_mid_stream_sync_full(self):
        n = self.crash_round("full", SEED + 1)
        sys.stderr.write(f" [seed {SEED + 1}: {n} acked metric points survived] ")


def read_response(sock, timeout=30):
    """Reads one HTTP response (Content-Length framed) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while b"\r\n\r\n" not in data:
        if time.time() > deadline:
            raise AssertionError("timed out waiting for response headers")
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        if time.time() > deadline:
            raise AssertionError("timed out waiting for the response body")
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


class GracefulShutdownTest(unittest.TestCase):
    def test_sigterm_finishes_in_flight_requests(self):
        k = KeelServer()
        k.start()
        try:
            exp_id = k.ok("POST", "experiments/create", {"name": "graceful"})["experiment_id"]
            run_id = k.ok("POST", "runs/create", {"experiment_id": exp_id,
                                                  "start_time": 1})["run"]["info"]["run_id"]
            # A large log-batch (at the 1000-entity limit) whose body arrives slowly.
            batch = {"run_id": run_id,
                     "metrics": [{"key": "acc", "value": i / 1000.0, "timestamp": 1000 + i,
                                  "step": i} for i in range(900)],
                     "params": [{"key": f"p{i}", "value": "v" * 200} for i in range(90)],
                     "tags": [{"key": f"t{i}", "value": "x" * 100} for i in range(10)]}
            batch_body = json.dumps(batch).encode()
            # A large artifact upload that arrives slowly.
            art_size = 24 << 20
            block = os.urandom(1 << 20)
            art_hash = hashlib.sha256()
            results = {}
            started = {"batch": threading.Event(), "upload": threading.Event()}

            def slow_batch():
                try:
                    s = socket.create_connection(("127.0.0.1", k.port), timeout=30)
                    s.sendall(b"POST " + API.encode() + b"runs/log-batch HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Type: application/json\r\nContent-Length: "
                              + str(len(batch_body)).encode() + b"\r\n\r\n")
                    half = len(batch_body) // 2
                    s.sendall(batch_body[:half])
                    started["batch"].set()
                    time.sleep(1.5)
                    s.sendall(batch_body[half:])
                    results["batch"] = read_response(s)
                    s.close()
                except Exception as e:  # noqa: BLE001
                    results["batch"] = e
                    started["batch"].set()

            def slow_upload():
                try:
                    s = socket.create_connection(("127.0.0.1", k.port), timeout=60)
                    s.sendall(b"PUT " + ART.encode() + b"/graceful/big.bin HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Length: " + str(art_size).encode() + b"\r\n\r\n")
                    for i in range(art_size >> 20):
                        chunk = struct.pack("<Q", i) + block[8:]
                        art_hash.update(chunk)
                        s.sendall(chunk)
                        if i == 2:
                            started["upload"].set()
                        time.sleep(0.06)
                    results["upload"] = read_response(s, 60)
                    s.close()
                except Exception as e:  # noqa: BLE001
                    results["upload"] = e
                    started["upload"].set()

            threads = [threading.Thread(target=slow_batch, daemon=True),
                       threading.Thread(target=slow_upload, daemon=True)]
            for t in threads:
                t.start()
            for ev in started.values():
                self.assertTrue(ev.wait(20))
            # An idle keep-alive connection must not hold the shutdown up.
            idle = socket.create_connection(("127.0.0.1", k.port), timeout=5)
            time.sleep(0.3)
            t_term = time.time()
            k.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertIsNone(k.proc.poll(), "server exited with requests still in flight")
            for t in threads:
                t.join(60)
                self.assertFalse(t.is_alive())
            for name in ("batch", "upload"):
                res = results.get(name)
                self.assertNotIsInstance(res, Exception, f"{name}: {res!r}")
                status, _, body = res
                self.assertEqual(status, 200, f"{name}: {body!r}")
                self.assertEqual(json.loads(body), {})
            try:
                rc = k.proc.wait(timeout=20)
            except Exception:  # noqa: BLE001
                self.fail("server did not exit within 20s of finishing its in-flight requests")
            idle.close()
            self.assertEqual(rc, 0, k.read_log())
            self.assertIn("keel server stopped", k.read_log())
            sys.stderr.write(f" [exit {time.time() - t_term:.1f}s after SIGTERM] ")
            k.proc = None

            k.start()
            hist = k.ok("GET", "metrics/get-history",
                        {"run_id": run_id, "metric_key": "acc"}).get("metrics", [])
            self.assertEqual(len(hist), 900)
            self.assertEqual(sorted((m["step"], m["value"]) for m in hist),
                             [(i, i / 1000.0) for i in range(900)])
            run = k.ok("GET", "runs/get", {"run_id": run_id})["run"]
            self.assertEqual(len(run["data"]["params"]), 90)
            self.assertEqual(len(run["data"]["tags"]) >= 10, True)
            got = hashlib.sha256()
            with k.session.get(k.url + ART + "/graceful/big.bin", stream=True, timeout=60) as r:
                self.assertEqual(r.status_code, 200)
                for chunk in r.iter_content(1 << 20):
                    got.update(chunk)
            self.assertEqual(got.hexdigest(), art_hash.hexdigest())
        finally:
            k.stop()
            shutil.rmtree(k.data_dir, ignore_errors=True)

    def test_sigterm_idle_server_exits_zero(self):
        k = KeelServer()
        k.start()
        try:
            k.ok("POST", "experiments/create", {"name": "idle-term"})
            k.proc.send_signal(signal.SIGTERM)
            rc = k.proc.wait(timeout=15)
            self.assertEqual(rc, 0, k.read_log())
            k.proc = None
            k.start()
            self.assertEqual(k.get("experiments/get-by-name",
                                   {"experiment_name": "idle-term"}).status_code, 200)
        finally:
            k.stop()
            shutil.rmtree(k.data_dir, ignore_errors=True)


class BadInputTest(unittest.TestCase):
    """Raw garbage on the socket never takes the server down."""

    @classmethod
    def setUpClass(cls):
        cls.k = KeelServer(["--max-body-mb", "1"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)

    def tearDown(self):
        self.assertAlive()

    def assertAlive(self):
        self.assertIsNone(self.k.proc.poll(), "server died: " + self.k.read_log()[-2000:])
        r = requests.get(self.k.url + "/health", timeout=5)
        self.assertEqual(r.status_code, 200)
        name = "alive-" + uuid.uuid4().hex[:8]
        r = requests.post(self.k.url + API + "experiments/create", json={"name": name}, timeout=5)
        self.assertEqual(r.status_code, 200, r.text)

    def exchange(self, data, wait=3.0, close_write=False):
        """Sends data, returns everything the server sends back before closing (or wait)."""
        s = socket.create_connection(("127.0.0.1", self.k.port), timeout=5)
        try:
            try:
                s.sendall(data)
                if close_write:
                    s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the server may answer and close before it has read everything
            s.settimeout(wait)
            out = b""
            deadline = time.time() + wait
            while time.time() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def assertStatus(self, out, status, code=None):
        self.assertTrue(out.startswith(f"HTTP/1.1 {status} ".encode()), out[:300])
        if code is not None:
            body = out.split(b"\r\n\r\n", 1)[1]
            self.assertEqual(json.loads(body)["error_code"], code, body)

    def exp_exists(self, name):
        r = requests.get(self.k.url + API + "experiments/get-by-name",
                         params={"experiment_name": name}, timeout=5)
        return r.status_code == 200

    def test_garbage_bytes(self):
        for junk in [b"\x00\xff\xfe garbage \x01\x02\r\n\r\n", os.urandom(4096) + b"\r\n\r\n",
                     b"\r\n\r\n", b"HELLO\r\n\r\n", b"GET\r\n\r\n",
                     b"GET / HTTP/9.9\r\n\r\n", b"GET /h\x00ealth HTTP/1.1\r\nHost: x\r\n\r\n"]:
            with self.subTest(junk=junk[:20]):
                out = self.exchange(junk)
                self.assertStatus(out, 400)
                self.assertAlive()
        # Pure noise with no header terminator, then close.
        self.exchange(os.urandom(100_000), wait=1.0, close_write=True)

    def test_truncated_requests(self):
        name = "truncated-" + uuid.uuid4().hex[:8]
        body = json.dumps({"name": name}).encode()
        head = (b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\n\r\n")
        for cut in [5, len(head) // 2, len(head) - 2, len(head), len(head) + len(body) // 2,
                    len(head) + len(body) - 1]:
            with self.subTest(cut=cut):
                out = self.exchange((head + body)[:cut], wait=0.5, close_write=True)
                # A request cut short is never executed.
                self.assertFalse(out.startswith(b"HTTP/1.1 200"), out[:200])
                self.assertFalse(self.exp_exists(name), f"truncated request created {name}")
        # A truncated artifact upload leaves no file and no spool litter.
        up = (b"PUT " + ART.encode() + b"/trunc/file.bin HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 100000\r\n\r\n" + b"z" * 5000)
        self.exchange(up, wait=0.5, close_write=True)
        time.sleep(0.3)
        self.assertFalse(os.path.exists(os.path.join(self.k.artifact_root, "trunc", "file.bin")))
        spool = os.path.join(self.k.artifact_root, ".keel-spool")
        self.assertEqual(os.listdir(spool) if os.path.isdir(spool) else [], [])

    def test_bogus_content_length(self):
        for cl in [b"abc", b"-5", b"99999999999999999999999999", b"1 2", b"0x10", b"5, 7",
                   b"+12", b""]:
            with self.subTest(cl=cl):
                req = (b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: " + cl + b"\r\n\r\n"
                       b'{"name": "bogus-cl"}')
                out = self.exchange(req)
                self.assertStatus(out, 400)
                self.assertFalse(self.exp_exists("bogus-cl"))
        # Two different Content-Lengths, and Content-Length with chunked (smuggling).
        for extra in [b"Content-Length: 5\r\nContent-Length: 20\r\n",
                      b"Content-Length: 20\r\nTransfer-Encoding: chunked\r\n"]:
            with self.subTest(extra=extra):
                req = (b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n" + extra + b"\r\n"
                       b'{"name": "bogus-cl"}')
                out = self.exchange(req)
                self.assertStatus(out, 400)
                self.assertFalse(self.exp_exists("bogus-cl"))

    def test_content_length_larger_than_body(self):
        # Declares more than it sends, then goes quiet: the server must not hang for others.
        socks = []
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", self.k.port), timeout=5)
            s.sendall(b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"na")
            socks.append(s)
        try:
            self.assertAlive()
        finally:
            for s in socks:
                s.close()

    def test_bad_chunked_encoding(self):
        req = (b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"zz\r\nabc\r\n0\r\n\r\n")
        out = self.exchange(req)
        self.assertFalse(out.startswith(b"HTTP/1.1 200"), out[:200])

    def test_oversized_headers(self):
        out = self.exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
                            + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 4"), out[:200])

    def test_many_idle_connections(self):
        socks = [socket.create_connection(("127.0.0.1", self.k.port), timeout=5)
                 for _ in range(64)]
        try:
            self.assertAlive()
        finally:
            for s in socks:
                s.close()

    def test_declared_body_over_limit_rejected_413(self):
        # --max-body-mb 1: a JSON request declaring 10 GiB is refused with 413 at once,
        # without the server waiting for (or buffering) the body.
        req = (b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n")
        out = self.exchange(req, wait=5.0)
        self.assertStatus(out, 413, "RESOURCE_LIMIT_EXCEEDED")

    def test_actual_body_over_limit_rejected_413(self):
        # --max-body-mb 1: a 3 MiB JSON body is refused with 413 and not processed.
        name = "toobig-" + uuid.uuid4().hex[:8]
        body = json.dumps({"name": name, "pad": "x" * (3 << 20)}).encode()
        r = requests.post(self.k.url + API + "experiments/create", data=body,
                          headers={"Content-Type": "application/json"}, timeout=30)
        self.assertEqual(r.status_code, 413, r.text[:300])
        self.assertEqual(r.json()["error_code"], "RESOURCE_LIMIT_EXCEEDED")
        self.assertFalse(self.exp_exists(name))

    def test_invalid_json_and_bad_percent_encoding(self):
        junk = b"\xff\xfe{[}\x00\x01\""
        for req in [
            b"POST " + API.encode() + b"experiments/create HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(junk)).encode()
            + b"\r\nConnection: close\r\n\r\n" + junk,
            b"GET " + API.encode() + b"experiments/get?experiment_id=%zz HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n",
            b"GET " + ART.encode() + b"/%zz%2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]:
            with self.subTest(req=req[:60]):
                out = self.exchange(req)
                self.assertStatus(out, 400)


def setUpModule():
    # keel_harness keeps each server's log file open across stop/start; those
    # ResourceWarnings are harness noise, not findings.
    warnings.filterwarnings("ignore", category=ResourceWarning)


if __name__ == "__main__":
    unittest.main(verbosity=2)
