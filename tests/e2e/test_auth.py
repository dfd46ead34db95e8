"""End-to-end tests of keel's optional authentication (--auth-tokens FILE).

Run: /usr/bin/python3 tests/e2e/test_auth.py
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import warnings
import uuid

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import API, KeelServer, free_port, keel_binary  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"

WRITER, WRITER_SECRET = "alice", "s3cr3t-writer-Alice"
READER, READER_SECRET = "bob", "r3ad0nly-Bob"
INLINE, INLINE_SECRET = "dave", "dave-inline-comment-secret"
COMMENTED_SECRET = "carol-is-commented-out"

TOKENS = f"""# keel credentials: name role secret
{WRITER} write {WRITER_SECRET}

   {READER}   read   {READER_SECRET}
# carol write {COMMENTED_SECRET}
{INLINE} read {INLINE_SECRET}   # trailing comment
"""


def bearer(secret):
    return {"Authorization": "Bearer " + secret}


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="keel-e2e-auth-")
        cls.tokens = os.path.join(cls.tmp, "tokens.txt")
        with open(cls.tokens, "w") as f:
            f.write(TOKENS)
        cls.k = KeelServer(["--auth-tokens", cls.tokens]).start()
        r = requests.post(cls.k.url + API + "experiments/create", json={"name": "auth-base"},
                          headers=bearer(WRITER_SECRET), timeout=10)
        assert r.status_code == 200, r.text
        cls.exp_id = r.json()["experiment_id"]
        r = requests.put(cls.k.url + ART + "/seed/readme.txt", data=b"seed",
                         headers=bearer(WRITER_SECRET), timeout=10)
        assert r.status_code == 200, r.text

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # --- helpers ----------------------------------------------------------------------
    def read_call(self, headers):
        return requests.get(self.k.url + API + "experiments/get",
                            params={"experiment_id": self.exp_id}, headers=headers, timeout=10)

    def write_call(self, headers, name=None):
        return requests.post(self.k.url + API + "experiments/create",
                             data=json.dumps({"name": name or "x-" + uuid.uuid4().hex}),
                             headers={"Content-Type": "application/json", **headers}, timeout=10)

    def artifact_put(self, headers, path):
        return requests.put(self.k.url + ART + "/" + path, data=b"artifact bytes",
                            headers=headers, timeout=10)

    def assertExactError(self, r, status, code):
        self.assertEqual(r.status_code, status, r.text)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("application/json"), r.headers)
        body = r.json()
        self.assertEqual(set(body), {"error_code", "message"}, body)
        self.assertEqual(body["error_code"], code, body)
        self.assertIsInstance(body["message"], str)
        self.assertTrue(body["message"].strip(), body)
        return body

    def assertUnauthenticated(self, r):
        body = self.assertExactError(r, 401, "UNAUTHENTICATED")
        # RFC 7235: a 401 must say how to authenticate.
        self.assertIn("WWW-Authenticate", r.headers)
        self.assertIn("basic", r.headers["WWW-Authenticate"].lower())
        self.assertIn("bearer", r.headers["WWW-Authenticate"].lower())
        return body

    def experiment_exists(self, name):
        r = requests.get(self.k.url + API + "experiments/get-by-name",
                         params={"experiment_name": name}, headers=bearer(WRITER_SECRET), timeout=10)
        if r.status_code == 404:
            return False
        self.assertEqual(r.status_code, 200, r.text)
        return True

    def artifact_exists(self, path):
        return os.path.exists(os.path.join(self.k.artifact_root, path))

    # --- open endpoints -----------------------------------------------------------------
    def test_health_and_version_open(self):
        r = requests.get(self.k.url + "/health", timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.text, "OK")
        r = requests.get(self.k.url + "/version", timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.text.startswith("keel "), r.text)
        # Also with garbage credentials: open endpoints ignore them.
        r = requests.get(self.k.url + "/health", headers=bearer("nope"), timeout=10)
        self.assertEqual(r.status_code, 200)

    # --- missing / bad credentials ------------------------------------------------------------
    def test_whoami_names_the_role_and_the_dashboard_is_open(self):
        def whoami(headers):
            r = requests.get(self.k.url + "/api/2.0/keel/whoami", headers=headers, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            return r.json()

        self.assertEqual(whoami(bearer(WRITER_SECRET)),
                         {"auth": True, "name": WRITER, "role": "write"})
        self.assertEqual(whoami(basic(READER, READER_SECRET)),
                         {"auth": True, "name": READER, "role": "read"})
        self.assertEqual(whoami({}), {"auth": True, "name": None, "role": None})
        self.assertEqual(whoami(bearer("not-a-token")), {"auth": True, "name": None, "role": None})
        # The dashboard's files hold no data: open, so it can ask for a token.
        r = requests.get(self.k.url + "/", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertTrue(r.headers["Content-Type"].startswith("text/html"), r.headers)

    def test_missing_credentials(self):
        self.assertUnauthenticated(self.read_call({}))
        name = "noauth-" + uuid.uuid4().hex
        self.assertUnauthenticated(self.write_call({}, name))
        self.assertFalse(self.experiment_exists(name))
        self.assertUnauthenticated(self.artifact_put({}, "noauth/file.bin"))
        self.assertFalse(self.artifact_exists("noauth"))
        r = requests.get(self.k.url + ART + "/seed/readme.txt", timeout=10)
        self.assertUnauthenticated(r)
        self.assertNotIn(b"seed", r.content)
        r = requests.get(self.k.url + ART, params={"path": "seed"}, timeout=10)
        self.assertUnauthenticated(r)
        # The ajax-api alias of an endpoint is guarded the same way.
        r = requests.post(self.k.url + "/ajax-api/2.0/mlflow/experiments/create",
                          json={"name": name}, timeout=10)
        self.assertUnauthenticated(r)
        self.assertFalse(self.experiment_exists(name))

    def test_bad_bearer_token(self):
        for token in ["wrong", WRITER_SECRET + "x", WRITER_SECRET[:-1], WRITER, "",
                      COMMENTED_SECRET, "write", WRITER_SECRET.upper()]:
            with self.subTest(token=token):
                self.assertUnauthenticated(self.read_call(bearer(token)))
                self.assertUnauthenticated(self.write_call(bearer(token)))
                self.assertUnauthenticated(self.artifact_put(bearer(token), "badbearer/f.bin"))
        self.assertFalse(self.artifact_exists("badbearer"))

    def test_bad_basic_credentials(self):
        cases = [
            basic(WRITER, "wrong"),
            basic(WRITER, READER_SECRET),          # another user's secret
            basic(READER, WRITER_SECRET),
            basic("mallory", WRITER_SECRET),       # unknown user
            basic("", WRITER_SECRET),
            basic(WRITER, ""),
            basic("carol", COMMENTED_SECRET),      # commented-out line
            {"Authorization": "Basic !!!not-base64!!!"},
            {"Authorization": "Basic " + base64.b64encode(WRITER_SECRET.encode()).decode()},  # no colon
            {"Authorization": "Digest username=alice"},
            {"Authorization": WRITER_SECRET},
        ]
        for headers in cases:
            with self.subTest(headers=headers):
                self.assertUnauthenticated(self.read_call(headers))
                self.assertUnauthenticated(self.write_call(headers))
                self.assertUnauthenticated(self.artifact_put(headers, "badbasic/f.bin"))
        self.assertFalse(self.artifact_exists("badbasic"))

    # --- write role ------------------------------------------------------------------------
    def test_writer_bearer_and_basic(self):
        for label, headers in [("bearer", bearer(WRITER_SECRET)),
                               ("basic", basic(WRITER, WRITER_SECRET))]:
            with self.subTest(label):
                r = self.read_call(headers)
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(r.json()["experiment"]["name"], "auth-base")
                name = f"writer-{label}-" + uuid.uuid4().hex[:8]
                r = self.write_call(headers, name)
                self.assertEqual(r.status_code, 200, r.text)
                self.assertTrue(r.json()["experiment_id"])
                self.assertTrue(self.experiment_exists(name))
                r = self.artifact_put(headers, f"writer-{label}/f.bin")
                self.assertEqual(r.status_code, 200, r.text)
                with open(os.path.join(self.k.artifact_root, f"writer-{label}", "f.bin"), "rb") as f:
                    self.assertEqual(f.read(), b"artifact bytes")
                r = requests.get(self.k.url + ART + f"/writer-{label}/f.bin", headers=headers,
                                 timeout=10)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.content, b"artifact bytes")

    def test_writer_is_recorded_as_actor(self):
        # The authenticated name is recorded: model-version user_id and alias-change actor.
        h = basic(WRITER, WRITER_SECRET)
        name = "authmodel-" + uuid.uuid4().hex[:8]
        r = requests.post(self.k.url + API + "registered-models/create", json={"name": name},
                          headers=h, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        r = requests.post(self.k.url + API + "model-versions/create",
                          json={"name": name, "source": "mlflow-artifacts:/x/model"},
                          headers=h, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["model_version"]["user_id"], WRITER)
        r = requests.post(self.k.url + API + "registered-models/alias",
                          json={"name": name, "alias": "prod", "version": "1", "reason": "go"},
                          headers=bearer(WRITER_SECRET), timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        r = requests.get(self.k.url + "/api/2.0/keel/registered-models/alias-history",
                         params={"name": name}, headers=bearer(READER_SECRET), timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        changes = r.json()["changes"]
        self.assertEqual(len(changes), 1, changes)
        self.assertEqual(changes[0]["actor"], WRITER)
        self.assertEqual(changes[0]["reason"], "go")
        # A reader may not move the alias, and the refused attempt leaves no history.
        r = requests.post(self.k.url + API + "registered-models/alias",
                          json={"name": name, "alias": "prod", "version": "1"},
                          headers=bearer(READER_SECRET), timeout=10)
        self.assertExactError(r, 403, "PERMISSION_DENIED")
        r = requests.get(self.k.url + "/api/2.0/keel/registered-models/alias-history",
                         params={"name": name}, headers=bearer(READER_SECRET), timeout=10)
        self.assertEqual(len(r.json()["changes"]), 1)

    # --- read role ----------------------------------------------------------------------------
    def test_reader_can_read(self):
        for label, headers in [("bearer", bearer(READER_SECRET)),
                               ("basic", basic(READER, READER_SECRET)),
                               ("inline-comment", bearer(INLINE_SECRET)),
                               ("inline-comment-basic", basic(INLINE, INLINE_SECRET))]:
            with self.subTest(label):
                r = self.read_call(headers)
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(r.json()["experiment"]["experiment_id"], self.exp_id)
                r = requests.get(self.k.url + ART + "/seed/readme.txt", headers=headers, timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(r.content, b"seed")
                r = requests.get(self.k.url + ART, params={"path": "seed"}, headers=headers,
                                 timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(r.json(), {"files": [
                    {"path": "readme.txt", "is_dir": False, "file_size": 4}]})

    def test_reader_cannot_write(self):
        for label, headers in [("bearer", bearer(READER_SECRET)),
                               ("basic", basic(READER, READER_SECRET)),
                               ("inline-comment", bearer(INLINE_SECRET))]:
            with self.subTest(label):
                name = f"reader-{label}-" + uuid.uuid4().hex[:8]
                body = self.assertExactError(self.write_call(headers, name), 403,
                                             "PERMISSION_DENIED")
                self.assertFalse(self.experiment_exists(name))
                self.assertNotIn("WWW-Authenticate", self.write_call(headers).headers)
                self.assertIsInstance(body["message"], str)
                r = self.artifact_put(headers, f"reader-{label}/f.bin")
                self.assertExactError(r, 403, "PERMISSION_DENIED")
                self.assertFalse(self.artifact_exists(f"reader-{label}"))
                r = requests.delete(self.k.url + ART + "/seed/readme.txt", headers=headers,
                                    timeout=10)
                self.assertExactError(r, 403, "PERMISSION_DENIED")
                self.assertTrue(self.artifact_exists("seed/readme.txt"))
                r = requests.post(self.k.url + API + "experiments/delete",
                                  json={"experiment_id": self.exp_id}, headers=headers, timeout=10)
                self.assertExactError(r, 403, "PERMISSION_DENIED")
        r = self.read_call(bearer(WRITER_SECRET))
        self.assertEqual(r.json()["experiment"]["lifecycle_stage"], "active")


class MalformedTokensFileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-e2e-authbad-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_with(self, content, filename="tokens.txt"):
        path = os.path.join(self.tmp, filename)
        if content is not None:
            with open(path, "w") as f:
                f.write(content)
        data = os.path.join(self.tmp, "data")
        cmd = [keel_binary(), "server", "--port", str(free_port()),
               "--store-uri", "sqlite:///" + os.path.join(data, "keel.db").lstrip("/"),
               "--artifact-root", os.path.join(data, "artifacts"), "--auth-tokens", path]
        os.makedirs(data, exist_ok=True)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired as e:
            self.fail(f"server kept running with a malformed tokens file: {e.stdout} {e.stderr}")
        return path, p

    def assertRejected(self, content, line):
        path, p = self.start_with(content)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn(path, out)
        self.assertRegex(out, rf"(:{line}\b|line {line}\b)", out)
        self.assertNotIn("listening on", p.stdout)
        return out

    def test_too_few_fields(self):
        self.assertRejected(f"# header\n{WRITER} write {WRITER_SECRET}\n{READER} read\n", 3)

    def test_too_many_fields(self):
        self.assertRejected(f"{WRITER} write {WRITER_SECRET} extra\n", 1)

    def test_unknown_role(self):
        out = self.assertRejected(f"\n\n{WRITER} write {WRITER_SECRET}\n{READER} admin x\n", 4)
        self.assertIn("admin", out)

    def test_name_only(self):
        self.assertRejected(f"{WRITER} write {WRITER_SECRET}\n# c\n\n  lonely  \n", 4)

    def test_missing_file(self):
        path, p = self.start_with(None, "does-not-exist.txt")
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn(path, out)

    def test_no_credentials(self):
        path, p = self.start_with("# only a comment\n\n")
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn(path, out)


def setUpModule():
    # keel_harness keeps each server's log file open across stop/start; those
    # ResourceWarnings are harness noise, not findings.
    warnings.filterwarnings("ignore", category=ResourceWarning)


if __name__ == "__main__":
    unittest.main(verbosity=2)
