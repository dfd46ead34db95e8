"""Starts the real keel binary on a loopback port for end-to-end tests.

Run the tests with Debian's /usr/bin/python3 (python3-requests). The binary is
taken from $KEEL_BINARY (set by ctest) or build/keel.

With KEEL_TEST_STORE=postgresql a KeelServer keeps its state in a database of
its own on the PostgreSQL server $KEEL_TEST_POSTGRES_URI names (created with
the server's data directory, dropped with it): the store conformance runs of
the API suites (tests/CMakeLists.txt, e2e_pg_*).

    with KeelServer() as k:
        r = k.post("experiments/create", {"name": "x"})
        assert r.status_code == 200
"""
import atexit
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import unittest

import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API = "/api/2.0/mlflow/"


def keel_binary():
    return os.environ.get("KEEL_BINARY") or os.path.join(REPO, "build", "keel")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_postgres():
    return os.environ.get("KEEL_TEST_STORE") == "postgresql"


def postgres_admin(sql):
    """Runs one statement on the test PostgreSQL server (outside a transaction)."""
    admin = os.environ.get("KEEL_TEST_POSTGRES_URI")
    if not admin:
        raise RuntimeError("KEEL_TEST_STORE=postgresql needs KEEL_TEST_POSTGRES_URI")
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", sql], check=True,
                   capture_output=True, timeout=60)


_created_databases = []


@atexit.register
def _drop_created_databases():
    """Drops what this test process created and did not drop itself."""
    for name in _created_databases:
        try:
            postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def scratch_postgres_uri(name):
    """Creates database `name` on the test server and returns its URI (the
    database is dropped when this process exits, if not before)."""
    admin = os.environ["KEEL_TEST_POSTGRES_URI"]
    postgres_admin(f"CREATE DATABASE {name}")
    _created_databases.append(name)
    return admin[:admin.index("/", admin.index("://") + 3)] + "/" + name


class KeelServer:
    """A keel server in its own temporary data directory.

    Options: extra_args (list), data_dir (reuse a directory across restarts).
    """

    def __init__(self, extra_args=None, data_dir=None, env=None):
        self.extra_args = list(extra_args or [])
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="keel-e2e-")
        self.env = env
        self.proc = None
        self.port = None
        self.session = requests.Session()
        self.pg_name = None
        if on_postgres():
            marker = os.path.join(self.data_dir, "postgres-database")
            if os.path.exists(marker):  # a restart on the same data directory
                with open(marker) as f:
                    self.pg_name = f.read().strip()
            else:
                self.pg_name = "keel_e2e_" + os.urandom(6).hex()
                self.pg_uri = scratch_postgres_uri(self.pg_name)
                with open(marker, "w") as f:
                    f.write(self.pg_name)
            admin = os.environ["KEEL_TEST_POSTGRES_URI"]
            self.pg_uri = admin[:admin.index("/", admin.index("://") + 3)] + "/" + self.pg_name

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_uri(self):
        if self.pg_name:
            return self.pg_uri
        return "sqlite:///" + os.path.join(self.data_dir, "keel.db").lstrip("/")

    def drop_store(self):
        """Drops this server's PostgreSQL database (nothing on SQLite: the file
        goes with the data directory)."""
        if self.pg_name:
            postgres_admin(f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)")
            self.pg_name = None

    @property
    def artifact_root(self):
        return os.path.join(self.data_dir, "artifacts")

    def start(self):
        self.port = free_port()
        cmd = [keel_binary(), "server", "--port", str(self.port),
               "--store-uri", self.store_uri, "--artifact-root", self.artifact_root,
               *self.extra_args]
        self.log = open(os.path.join(self.data_dir, f"server-{self.port}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel exited with {self.proc.returncode}: {self.read_log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("keel did not become healthy: " + self.read_log())

    def read_log(self):
        with open(os.path.join(self.data_dir, f"server-{self.port}.log")) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.own_dir:
            self.drop_store()
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # MLflow REST helpers: path relative to /api/2.0/mlflow/.
    def post(self, path, body, **kw):
        return self.session.post(self.url + API + path, data=json.dumps(body),
                                 headers={"Content-Type": "application/json"}, **kw)

    def get(self, path, params=None, **kw):
        return self.session.get(self.url + API + path, params=params, **kw)

    def delete(self, path, body, **kw):
        return self.session.delete(self.url + API + path, data=json.dumps(body),
                                   headers={"Content-Type": "application/json"}, **kw)

    def patch(self, path, body, **kw):
        return self.session.patch(self.url + API + path, data=json.dumps(body),
                                  headers={"Content-Type": "application/json"}, **kw)

    def ok(self, method, path, body=None):
        """Calls and asserts 200; returns the JSON body."""
        fn = {"POST": self.post, "GET": self.get, "DELETE": self.delete, "PATCH": self.patch}[method]
        r = fn(path, body) if method != "GET" else fn(path, body)
        if r.status_code != 200:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    def cli(self, *args, remote=True, check=True, env=None):
        """Runs the keel CLI against this server (remote) or its store (embedded)."""
        cmd = [keel_binary()]
        if remote:
            cmd += ["--tracking-uri", self.url]
        else:
            cmd += ["--store-uri", self.store_uri, "--artifact-root", self.artifact_root]
        cmd += list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} -> {p.returncode}: {p.stderr}")
        return p


def parse_metrics(text):
    """Prometheus text -> {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def monitor_passes(server):
    """The monitoring passes `server` has run (keel_monitor_passes_total)."""
    r = server.session.get(server.url + "/metrics", timeout=10)
    r.raise_for_status()
    return parse_metrics(r.text).get("keel_monitor_passes_total", 0)


def wait_for_monitor_passes(server, more=2, timeout=60):
    """Returns once `server` has run `more` monitoring passes beyond now: with
    more=2, a pass that began after this call has ended and saw everything
    committed before it. Raises AssertionError after `timeout` seconds (a pass
    takes seconds under the sanitizers when other tests train beside it)."""
    target = monitor_passes(server) + more
    deadline = time.time() + timeout
    while time.time() < deadline:
        if monitor_passes(server) >= target:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server did not run {more} monitoring passes in {timeout} s")


class ServerClock:
    """A server's clock offset (KEEL_CLOCK_OFFSET_FILE, the clock seam's test
    hook): `env()` gives the environment a server reads it from; `set(ms)`
    moves that server's clock to real time + ms."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "clock-offset-ms")
        self.offset_ms = 0
        self.set(0)

    def env(self, base):
        env = dict(base)
        env["KEEL_CLOCK_OFFSET_FILE"] = self.path
        return env

    def set(self, ms):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(int(ms)))
        os.replace(tmp, self.path)
        self.offset_ms = int(ms)
        time.sleep(0.05)  # the clock re-reads the file at most every 20 ms

    def now_ms(self):
        """The server's time now."""
        return int(time.time() * 1000) + self.offset_ms


class KeelTestCase(unittest.TestCase):
    """One server for the whole test class."""

    server_args = []

    @classmethod
    def setUpClass(cls):
        cls.k = KeelServer(cls.server_args).start()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        if cls.k.own_dir:
            cls.k.drop_store()
            shutil.rmtree(cls.k.data_dir, ignore_errors=True)

    def assertError(self, response, status, error_code, message_part=None):
        self.assertEqual(response.status_code, status, response.text)
        body = response.json()
        self.assertEqual(body.get("error_code"), error_code, body)
        self.assertIn("message", body)
        if message_part is not None:
            self.assertIn(message_part, body["message"])
        return body


def planted_churn_split(churn_csv, directory, factor=1.3):
    """Splits mlc_churn.csv into a reference half and a current half whose
    total_day_minutes is multiplied by `factor` (a planted drift), written as
    reference.csv and current.csv in `directory`.

    Returns (header, current rows as lists, reference path, current path)."""
    with open(churn_csv, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    half = len(body) // 2
    minutes = header.index("total_day_minutes")
    cur = [list(r) for r in body[half:]]
    for r in cur:
        r[minutes] = repr(round(float(r[minutes]) * factor, 2))
    ref_path = os.path.join(directory, "reference.csv")
    cur_path = os.path.join(directory, "current.csv")
    for path, data in ((ref_path, body[:half]), (cur_path, cur)):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(data)
    return header, cur, ref_path, cur_path


def concept_change_split(churn_csv, directory):
    """The first half of mlc_churn.csv as base.csv in `directory` (the old
    concept), and the second half with a planted concept change: its label
    becomes "total_eve_minutes above its median" (inputs unchanged).

    Returns (header, base path, second-half rows, their new labels)."""
    with open(churn_csv, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    half = len(body) // 2
    eve = header.index("total_eve_minutes")
    base = os.path.join(directory, "base.csv")
    with open(base, "w", newline="") as f:
        csv.writer(f).writerows([header] + body[:half])
    later = [list(r) for r in body[half:]]
    median = statistics.median(float(r[eve]) for r in later)
    return header, base, later, ["yes" if float(r[eve]) > median else "no" for r in later]


def predict_and_label(server, header, pairs, target="churn", label=True, ref="churn@champion"):
    """Scores (row, label) pairs through `server`'s /predict/<ref> (default
    churn@champion; e.g. churn/1 for a pinned version) in requests of 50
    (numbers sent as numbers, the target column left out), then posts their
    labels in one request, retrying until the prediction log has committed
    them.

    Returns (probabilities, set of model versions that answered)."""
    labels, probs, versions = [], [], set()
    for start in range(0, len(pairs), 50):
        chunk = pairs[start:start + 50]
        recs = []
        for r, _ in chunk:
            rec = {}
            for k, v in zip(header, r):
                if k == target:
                    continue
                try:
                    rec[k] = float(v)
                except ValueError:
                    rec[k] = v
            recs.append(rec)
        resp = server.session.post(server.url + "/predict/" + ref, json=recs, timeout=30)
        if resp.status_code != 200:
            raise AssertionError(resp.text)
        body = resp.json()
        versions.add(body.get("model_version"))
        probs += [p[target + "_probability"] for p in body["predictions"]]
        rid = body["request_id"]
        labels += [{"request_id": f"{rid}-{i}", "label": y} for i, (_, y) in enumerate(chunk)]
    if label:
        deadline = time.time() + 10
        while True:  # the prediction log commits within its flush interval
            resp = server.session.post(server.url + "/labels", json={"labels": labels}, timeout=30)
            if resp.status_code != 200:
                raise AssertionError(resp.text)
            if resp.json().get("matched") == len(labels) or time.time() > deadline:
                break
            time.sleep(0.05)
        if resp.json().get("matched") != len(labels):
            raise AssertionError(f"labels not matched: {resp.text}")
    return probs, versions
