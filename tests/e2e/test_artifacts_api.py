"""End-to-end tests of the mlflow-artifacts proxy API: round trips, path safety, streaming.

Run: /usr/bin/python3 tests/e2e/test_artifacts_api.py
"""
import hashlib
import http.client
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import unittest
import warnings
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import KeelServer, KeelTestCase  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"
MARK = "keelpwn"  # every file a traversal attempt tries to create carries this in its name


class RecordingConnection(http.client.HTTPConnection):
    """An HTTPConnection that keeps the bytes it sent, to prove what went on the wire."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = b""

    def send(self, data):
        if isinstance(data, (bytes, bytearray)) and len(self.sent) < 65536:
            self.sent += bytes(data[:4096])
        super().send(data)


class RawResponse:
    def __init__(self, status, headers, body, request_line):
        self.status_code = status
        self.headers = headers
        self.content = body
        self.request_line = request_line

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def raw_request(port, method, raw_target, body=b""):
    """Sends raw_target verbatim (no normalisation, no re-encoding) and checks it was."""
    conn = RecordingConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, raw_target, skip_host=False, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Connection", "close")
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        line = conn.sent.split(b"\r\n", 1)[0].decode("latin-1")
        expected = f"{method} {raw_target} HTTP/1.1"
        if line != expected:
            raise AssertionError(f"request line on the wire was {line!r}, wanted {expected!r}")
        return RawResponse(resp.status, dict(resp.getheaders()), data, line)
    finally:
        conn.close()


class SandboxedCase(KeelTestCase):
    """A server whose data dir sits in a private sandbox, so anything written
    outside the artifact root can be found."""

    @classmethod
    def setUpClass(cls):
        cls.sandbox = tempfile.mkdtemp(prefix="keel-e2e-art-")
        cls.data_dir = os.path.join(cls.sandbox, "data")
        os.makedirs(cls.data_dir)
        cls.outside = os.path.join(cls.sandbox, "outside")
        os.makedirs(cls.outside)
        with open(os.path.join(cls.outside, "secret.txt"), "wb") as f:
            f.write(b"TOP SECRET outside the root\n")
        with open(os.path.join(cls.data_dir, "victim.txt"), "wb") as f:
            f.write(b"victim in the data dir\n")
        cls.k = KeelServer(data_dir=cls.data_dir).start()
        cls.root = cls.k.artifact_root

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.sandbox, ignore_errors=True)

    # --- outside-the-root bookkeeping -------------------------------------------------
    def snapshot_outside(self):
        """Every path under the sandbox except the artifact root, with file contents' hash."""
        snap = {}
        for dirpath, dirnames, filenames in os.walk(self.sandbox):
            if os.path.abspath(dirpath) == os.path.abspath(self.root):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                if os.path.abspath(full) == os.path.abspath(self.root):
                    continue
                if name.startswith("server-") and name.endswith(".log"):
                    continue
                if name.startswith("keel.db"):
                    continue
                if os.path.isfile(full) and not os.path.islink(full):
                    with open(full, "rb") as f:
                        snap[full] = hashlib.sha256(f.read()).hexdigest()
                else:
                    snap[full] = os.path.islink(full) and os.readlink(full)
        return snap

    def setUp(self):
        self.before = self.snapshot_outside()

    def assertNothingOutside(self):
        after = self.snapshot_outside()
        self.assertEqual(after, self.before, "files outside the artifact root changed")
        for d in (self.sandbox, self.data_dir, os.path.dirname(self.sandbox), "/tmp", "/"):
            strays = [n for n in os.listdir(d) if MARK in n]
            self.assertEqual(strays, [], f"stray files in {d}")
        with open(os.path.join(self.outside, "secret.txt"), "rb") as f:
            self.assertEqual(f.read(), b"TOP SECRET outside the root\n")
        with open(os.path.join(self.data_dir, "victim.txt"), "rb") as f:
            self.assertEqual(f.read(), b"victim in the data dir\n")

    def assertRefused(self, resp, what=""):
        self.assertEqual(resp.status_code, 400, f"{what}: {resp.status_code} {resp.text}")
        try:
            body = resp.json()
        except ValueError:
            self.fail(f"{what}: non-JSON error body {resp.text!r}")
        self.assertEqual(body.get("error_code"), "INVALID_PARAMETER_VALUE", f"{what}: {body}")
        self.assertIsInstance(body.get("message"), str)
        self.assertTrue(body["message"], what)
        self.assertNotIn(b"TOP SECRET", resp.content)
        self.assertNotIn(b"victim in the data dir", resp.content)

    def put_raw(self, raw_path, body=b"payload"):
        return raw_request(self.k.port, "PUT", ART + "/" + raw_path, body)

    def get_raw(self, raw_path):
        return raw_request(self.k.port, "GET", ART + "/" + raw_path)

    def delete_raw(self, raw_path):
        return raw_request(self.k.port, "DELETE", ART + "/" + raw_path)

    def list_raw(self, raw_query_path):
        return raw_request(self.k.port, "GET", ART + "?path=" + raw_query_path)

    def check_cases(self, cases):
        """cases: list of (method, raw path/query). Each must be refused with 400."""
        for method, raw in cases:
            with self.subTest(method=method, raw=raw):
                if method == "PUT":
                    r = self.put_raw(raw, b"evil bytes " + MARK.encode())
                elif method == "GET":
                    r = self.get_raw(raw)
                elif method == "DELETE":
                    r = self.delete_raw(raw)
                elif method == "LIST":
                    r = self.list_raw(raw)
                else:
                    raise ValueError(method)
                self.assertRefused(r, f"{method} {raw}")
        self.assertNothingOutside()
        # The server is still healthy afterwards.
        self.assertEqual(self.k.session.get(self.k.url + "/health", timeout=5).status_code, 200)


class ArtifactRoundTripTest(SandboxedCase):
    def url(self, path):
        return self.k.url + ART + "/" + path

    def put(self, path, data):
        r = self.k.session.put(self.url(path), data=data, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {})
        return r

    def listing(self, path=None):
        params = {} if path is None else {"path": path}
        r = self.k.session.get(self.k.url + ART, params=params, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()

    def test_binary_round_trip(self):
        data = bytes(range(256)) * 64 + os.urandom(100_003) + b"\x00\r\n\xff" * 17
        self.put("bin/blob.bin", data)
        r = self.k.session.get(self.url("bin/blob.bin"), timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, data)
        self.assertEqual(int(r.headers["Content-Length"]), len(data))
        with open(os.path.join(self.root, "bin", "blob.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertNothingOutside()

    def test_empty_file_round_trip(self):
        self.put("empty/zero.dat", b"")
        r = self.k.session.get(self.url("empty/zero.dat"), timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, b"")
        self.assertEqual(self.listing("empty"),
                         {"files": [{"path": "zero.dat", "is_dir": False, "file_size": 0}]})

    def test_overwrite_replaces_content(self):
        self.put("ow/f.txt", b"first version, rather long")
        self.put("ow/f.txt", b"second")
        r = self.k.session.get(self.url("ow/f.txt"), timeout=30)
        self.assertEqual(r.content, b"second")
        self.assertEqual(self.listing("ow"),
                         {"files": [{"path": "f.txt", "is_dir": False, "file_size": 6}]})

    def test_nested_dirs_and_listing(self):
        self.put("n1/n2/n3/deep.bin", b"\x01\x02\x03")
        self.put("n1/top.txt", b"hello")
        self.put("n1/n2/mid.json", b'{"a": 1}')
        # Names are relative to the listed directory; dirs have no file_size.
        self.assertEqual(self.listing("n1"), {"files": [
            {"path": "n2", "is_dir": True},
            {"path": "top.txt", "is_dir": False, "file_size": 5},
        ]})
        self.assertEqual(self.listing("n1/n2"), {"files": [
            {"path": "mid.json", "is_dir": False, "file_size": 8},
            {"path": "n3", "is_dir": True},
        ]})
        self.assertEqual(self.listing("n1/n2/n3"), {"files": [
            {"path": "deep.bin", "is_dir": False, "file_size": 3},
        ]})
        # Trailing slash lists the same directory.
        self.assertEqual(self.listing("n1/n2/n3/"), self.listing("n1/n2/n3"))
        r = self.k.session.get(self.url("n1/n2/n3/deep.bin"), timeout=30)
        self.assertEqual(r.content, b"\x01\x02\x03")
        r = self.k.session.get(self.url("n1/n2/mid.json"), timeout=30)
        self.assertEqual(r.json(), {"a": 1})
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"), r.headers)

    def test_root_listing_hides_spool(self):
        self.put("rootlist/x.txt", b"x")
        files = self.listing().get("files", [])
        names = [f["path"] for f in files]
        self.assertIn("rootlist", names)
        self.assertFalse([n for n in names if n.startswith(".keel")], names)
        for f in files:
            self.assertNotIn("/", f["path"])
            if f["is_dir"]:
                self.assertNotIn("file_size", f)
            else:
                self.assertIn("file_size", f)

    def test_empty_listing_is_empty_object(self):
        # A directory that does not exist.
        r = self.k.session.get(self.k.url + ART, params={"path": "no/such/dir"}, timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.text.strip(), "{}")
        # A directory that exists but is empty.
        self.put("emptied/only.txt", b"1")
        r = self.k.session.delete(self.url("emptied/only.txt"), timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertTrue(os.path.isdir(os.path.join(self.root, "emptied")))
        self.assertEqual(self.listing("emptied"), {})

    def test_delete_file_and_directory(self):
        self.put("del/a/1.txt", b"1")
        self.put("del/a/2.txt", b"22")
        self.put("del/keep.txt", b"keep")
        r = self.k.session.delete(self.url("del/a/1.txt"), timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {})
        r = self.k.session.get(self.url("del/a/1.txt"), timeout=30)
        self.assertError(r, 404, "RESOURCE_DOES_NOT_EXIST")
        self.assertEqual(self.listing("del/a"),
                         {"files": [{"path": "2.txt", "is_dir": False, "file_size": 2}]})
        # Deleting a directory removes it with its contents.
        r = self.k.session.delete(self.url("del/a"), timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertFalse(os.path.exists(os.path.join(self.root, "del", "a")))
        self.assertEqual(self.listing("del"),
                         {"files": [{"path": "keep.txt", "is_dir": False, "file_size": 4}]})
        # Deleting something missing is a 404.
        r = self.k.session.delete(self.url("del/a"), timeout=30)
        self.assertError(r, 404, "RESOURCE_DOES_NOT_EXIST")
        self.assertNothingOutside()

    def test_download_missing_and_directory(self):
        r = self.k.session.get(self.url("missing/nothing.bin"), timeout=30)
        self.assertError(r, 404, "RESOURCE_DOES_NOT_EXIST")
        self.put("isdir/f.txt", b"f")
        r = self.k.session.get(self.url("isdir"), timeout=30)
        self.assertEqual(r.status_code, 404, r.text)

    def test_upload_onto_directory_refused(self):
        self.put("dirclash/inner/f.txt", b"f")
        r = self.k.session.put(self.url("dirclash/inner"), data=b"x", timeout=30)
        self.assertError(r, 400, "INVALID_PARAMETER_VALUE")
        self.assertTrue(os.path.isfile(os.path.join(self.root, "dirclash", "inner", "f.txt")))

    def test_run_artifact_listing(self):
        exp = self.k.ok("POST", "experiments/create", {"name": "art-" + uuid.uuid4().hex[:8]})
        run = self.k.ok("POST", "runs/create", {"experiment_id": exp["experiment_id"],
                                                "start_time": 1})["run"]
        run_id = run["info"]["run_id"]
        uri = run["info"]["artifact_uri"]
        self.assertTrue(uri.startswith("mlflow-artifacts:"), uri)
        rel = uri[len("mlflow-artifacts:"):].lstrip("/")
        self.put(rel + "/model/MLmodel", b"flavors: {}\n")
        self.put(rel + "/model/data/weights.bin", b"\x00" * 10)
        self.put(rel + "/metrics.csv", b"a,b\n")
        r = self.k.get("artifacts/list", {"run_id": run_id})
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(body.get("root_uri"), uri)
        self.assertEqual(body["files"], [
            {"path": "metrics.csv", "is_dir": False, "file_size": 4},
            {"path": "model", "is_dir": True},
        ])
        r = self.k.get("artifacts/list", {"run_id": run_id, "path": "model"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["files"], [
            {"path": "model/MLmodel", "is_dir": False, "file_size": 12},
            {"path": "model/data", "is_dir": True},
        ])
        r = self.k.get("artifacts/list", {"run_id": run_id, "path": "../.."})
        self.assertError(r, 400, "INVALID_PARAMETER_VALUE")
        r = self.k.get("artifacts/list", {"run_id": "0" * 32})
        self.assertError(r, 404, "RESOURCE_DOES_NOT_EXIST")


class PathSafetyTest(SandboxedCase):
    """Every traversal trick is refused with 400 INVALID_PARAMETER_VALUE and writes nothing."""

    def setUp(self):
        super().setUp()
        # A legitimate file so traversal has something inside the root to start from.
        r = self.k.session.put(self.k.url + ART + "/a/b/inside.txt", data=b"inside", timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.before = self.snapshot_outside()

    def m(self):
        return f"{MARK}-{uuid.uuid4().hex[:8]}"

    def test_dotdot_segments(self):
        m = self.m()
        self.check_cases([
            ("PUT", f"../{m}"),
            ("PUT", f"../../{m}"),
            ("PUT", f"../../../{m}"),
            ("PUT", f"a/../../{m}"),
            ("PUT", f"a/b/../../../../{m}"),
            ("PUT", f"a/../{m}"),  # stays inside after normalising, still has '..'
            ("PUT", f"./../{m}"),
            ("GET", "../victim.txt"),
            ("GET", "a/b/../../../victim.txt"),
            ("GET", "../../outside/secret.txt"),
            ("DELETE", "../victim.txt"),
            ("DELETE", "a/.."),  # would be the root itself
            ("DELETE", "../../outside"),
            ("LIST", ".."),
            ("LIST", "../.."),
            ("LIST", "a/../../../outside"),
        ])
        self.assertTrue(os.path.isfile(os.path.join(self.root, "a", "b", "inside.txt")))

    def test_absolute_paths(self):
        m = self.m()
        self.check_cases([
            ("PUT", f"/tmp/{m}"),
            ("PUT", "/" + os.path.join(self.sandbox, m).lstrip("/")),
            ("PUT", f"%2Ftmp%2F{m}"),
            ("GET", "/etc/passwd"),
            ("GET", "/" + os.path.join(self.outside, "secret.txt").lstrip("/")),
            ("GET", "%2Fetc%2Fpasswd"),
            ("DELETE", "/" + os.path.join(self.data_dir, "victim.txt").lstrip("/")),
            ("LIST", "/etc"),
            ("LIST", "%2F" + self.outside.lstrip("/")),
        ])
        for method, raw in [("GET", "/etc/passwd"), ("GET", "%2Fetc%2Fpasswd")]:
            r = raw_request(self.k.port, method, ART + "/" + raw)
            self.assertNotIn(b"root:", r.content)
        self.assertFalse(os.path.exists(f"/tmp/{m}"))

    def test_percent_encoded_traversal(self):
        m = self.m()
        self.check_cases([
            ("PUT", f"%2e%2e%2f{m}"),
            ("PUT", f"%2E%2E%2F%2E%2E%2F{m}"),
            ("PUT", f"a/%2e%2e/%2e%2e/%2e%2e/{m}"),
            ("PUT", f"..%2f..%2f{m}"),
            ("PUT", f".%2e/.%2e/{m}"),
            ("PUT", f"a%2f%2e%2e%2f%2e%2e%2f{m}"),
            ("GET", "%2e%2e%2fvictim.txt"),
            ("GET", "%2e%2e/%2e%2e/outside/secret.txt"),
            ("DELETE", "%2e%2e%2fvictim.txt"),
            ("LIST", "%2e%2e"),
            ("LIST", "%2e%2e%2f%2e%2e%2foutside"),
        ])

    def test_double_encoded_traversal(self):
        m = self.m()
        self.check_cases([
            ("PUT", f"%252e%252e%252f{m}"),
            ("PUT", f"%252e%252e/%252e%252e/{m}"),
            ("PUT", f"a/%252E%252E/%252E%252E/%252E%252E/{m}"),
            ("PUT", f"%252e%252e%252f%252e%252e%252f{m}"),
            ("GET", "%252e%252e%252fvictim.txt"),
            ("GET", "%252e%252e/%252e%252e/outside/secret.txt"),
            ("DELETE", "%252e%252e%252fvictim.txt"),
            ("LIST", "%25252e%25252e"),  # query is decoded once, leaving %252e%252e
            ("LIST", "%252e%252e"),
        ])
        # Nothing with a literal '%' name was created inside the root either.
        strays = [os.path.join(d, n) for d, ds, fs in os.walk(self.root) for n in ds + fs
                  if "%" in n or MARK in n]
        self.assertEqual(strays, [])

    def test_nul_bytes(self):
        m = self.m()
        self.check_cases([
            ("PUT", f"a%00{m}"),
            ("PUT", f"{m}.txt%00.png"),
            ("PUT", f"a/b/%00/{m}"),
            ("PUT", f"a%2500{m}"),  # double-encoded NUL
            ("GET", "a/b/inside.txt%00"),
            ("GET", "a/b/inside.txt%00.png"),
            ("DELETE", "a/b/inside.txt%00"),
            ("LIST", "a%2500"),
        ])
        self.assertTrue(os.path.isfile(os.path.join(self.root, "a", "b", "inside.txt")))
        strays = [n for d, ds, fs in os.walk(self.root) for n in ds + fs if MARK in n]
        self.assertEqual(strays, [])

    def test_backslashes(self):
        m = self.m()
        self.check_cases([
            ("PUT", f"a\\{m}"),
            ("PUT", f"..\\..\\{m}"),
            ("PUT", f"a%5c{m}"),
            ("PUT", f"..%5c..%5c{m}"),
            ("PUT", f"a%255c{m}"),
            ("GET", "..\\victim.txt"),
            ("GET", "a%5cb%5cinside.txt"),
            ("DELETE", "a\\b"),
            ("LIST", "a%5cb"),
        ])
        self.assertTrue(os.path.isfile(os.path.join(self.root, "a", "b", "inside.txt")))
        strays = [n for d, ds, fs in os.walk(self.root) for n in ds + fs if MARK in n or "\\" in n]
        self.assertEqual(strays, [])


class SymlinkTest(SandboxedCase):
    """Symlinks planted inside the root that point outside: neither read nor write through."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.symlink(cls.outside, os.path.join(cls.root, "linkdir"))
        os.symlink(os.path.join(cls.outside, "secret.txt"), os.path.join(cls.root, "linkfile"))
        os.symlink("..", os.path.join(cls.root, "up"))  # relative, to the data dir
        os.makedirs(os.path.join(cls.root, "sub"))
        os.symlink("../../../outside", os.path.join(cls.root, "sub", "rel"))

    def test_read_through_symlink_refused(self):
        self.check_cases([
            ("GET", "linkdir/secret.txt"),
            ("GET", "linkfile"),
            ("GET", "up/victim.txt"),
            ("GET", "sub/rel/secret.txt"),
            ("LIST", "linkdir"),
            ("LIST", "up"),
            ("LIST", "sub/rel"),
        ])

    def test_write_through_symlink_refused(self):
        m = f"{MARK}-{uuid.uuid4().hex[:8]}"
        self.check_cases([
            ("PUT", f"linkdir/{m}"),
            ("PUT", f"linkdir/newsub/{m}"),
            ("PUT", "linkdir/secret.txt"),
            ("PUT", "linkfile"),
            ("PUT", f"up/{m}"),
            ("PUT", "up/victim.txt"),
            ("PUT", f"sub/rel/{m}"),
        ])
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret.txt"])

    def test_delete_through_symlink_refused(self):
        self.check_cases([
            ("DELETE", "linkdir/secret.txt"),
            ("DELETE", "up/victim.txt"),
            ("DELETE", "sub/rel/secret.txt"),
        ])

    def test_symlinks_not_listed(self):
        r = self.k.session.get(self.k.url + ART, timeout=30)
        self.assertEqual(r.status_code, 200)
        names = [f["path"] for f in r.json().get("files", [])]
        for link in ("linkdir", "linkfile", "up"):
            self.assertNotIn(link, names)

    def test_dangling_symlink_to_outside_dir_refused(self):
        # A link to a directory outside that does not exist (yet): writing under it must be
        # refused as a path-safety violation, and must not create the target.
        target = os.path.join(self.outside, "not-yet")
        link = os.path.join(self.root, "dangling")
        os.symlink(target, link)
        try:
            m = f"{MARK}-{uuid.uuid4().hex[:8]}"
            r = self.put_raw(f"dangling/{m}")
            self.assertFalse(os.path.exists(target))
            self.assertRefused(r, "PUT through a dangling symlink to outside")
        finally:
            os.unlink(link)
        self.assertNothingOutside()


class SpoolProtectionTest(SandboxedCase):
    """The upload spool lives inside the artifact root; clients must not be able to touch it."""

    def test_spool_not_addressable_and_uploads_keep_working(self):
        spool = os.path.join(self.root, ".keel-spool")
        self.assertTrue(os.path.isdir(spool))
        r_del = raw_request(self.k.port, "DELETE", ART + "/.keel-spool")
        r_put = raw_request(self.k.port, "PUT", ART + "/.keel-spool/planted", b"planted")
        # Whatever the answers, a client's request must not break everyone's uploads.
        r = self.k.session.put(self.k.url + ART + "/after/spool-attack.txt", data=b"still works",
                               timeout=30)
        self.assertEqual(r.status_code, 200, f"uploads broken after DELETE .keel-spool "
                         f"(that DELETE answered {r_del.status_code} {r_del.text}): {r.text}")
        self.assertTrue(os.path.isdir(spool), "DELETE removed the upload spool")
        self.assertNotEqual(r_del.status_code, 200, r_del.text)
        self.assertNotEqual(r_put.status_code, 200, r_put.text)
        self.assertFalse(os.path.exists(os.path.join(spool, "planted")))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            self.halt.wait(0.02)

    def stop(self):
        self.halt.set()
        self.join(5)


class LargeStreamingUploadTest(unittest.TestCase):
    SIZE_MIB = 1024
    LIMIT_MIB = 200

    @classmethod
    def setUpClass(cls):
        cls.k = KeelServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()
        shutil.rmtree(cls.k.data_dir, ignore_errors=True)

    def test_one_gib_streamed_upload_and_download(self):
        pid = self.k.proc.pid
        block = os.urandom(1 << 20)
        sent_hash = hashlib.sha256()
        sent = [0]

        def body():
            for i in range(self.SIZE_MIB):
                chunk = struct.pack("<Q", i) + block[8:]  # every MiB differs
                sent_hash.update(chunk)
                sent[0] += len(chunk)
                yield chunk

        # Warm the server up so the baseline includes its steady-state footprint.
        r = self.k.session.put(self.k.url + ART + "/big/warm.bin", data=b"w" * 4096, timeout=30)
        self.assertEqual(r.status_code, 200)
        baseline = rss_kib(pid)
        sampler = RssSampler(pid)
        sampler.start()
        t0 = time.time()
        try:
            r = self.k.session.put(self.k.url + ART + "/big/one_gib.bin", data=body(), timeout=120)
        finally:
            sampler.stop()
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(sent[0], self.SIZE_MIB << 20)
        growth_mib = (sampler.peak - baseline) / 1024
        self.assertGreater(sampler.samples, 5)
        self.assertLess(growth_mib, self.LIMIT_MIB,
                        f"server RSS grew by {growth_mib:.0f} MiB during a {self.SIZE_MIB} MiB upload")
        upload_secs = time.time() - t0
        upload_growth = growth_mib

        path = os.path.join(self.k.artifact_root, "big", "one_gib.bin")
        self.assertEqual(os.path.getsize(path), self.SIZE_MIB << 20)
        spool = os.path.join(self.k.artifact_root, ".keel-spool")
        self.assertEqual(os.listdir(spool) if os.path.isdir(spool) else [], [])

        r = self.k.session.get(self.k.url + ART, params={"path": "big"}, timeout=30)
        self.assertIn({"path": "one_gib.bin", "is_dir": False, "file_size": self.SIZE_MIB << 20},
                      r.json()["files"])

        baseline = rss_kib(pid)
        sampler = RssSampler(pid)
        sampler.start()
        got_hash = hashlib.sha256()
        got = 0
        try:
            with self.k.session.get(self.k.url + ART + "/big/one_gib.bin", stream=True,
                                    timeout=120) as r:
                self.assertEqual(r.status_code, 200)
                self.assertEqual(int(r.headers["Content-Length"]), self.SIZE_MIB << 20)
                for chunk in r.iter_content(1 << 20):
                    got_hash.update(chunk)
                    got += len(chunk)
        finally:
            sampler.stop()
        self.assertEqual(got, self.SIZE_MIB << 20)
        self.assertEqual(got_hash.hexdigest(), sent_hash.hexdigest())
        growth_mib = (sampler.peak - baseline) / 1024
        self.assertLess(growth_mib, self.LIMIT_MIB,
                        f"server RSS grew by {growth_mib:.0f} MiB during a {self.SIZE_MIB} MiB download")
        os.unlink(path)
        sys.stderr.write(f"\n  [{self.SIZE_MIB} MiB upload took {upload_secs:.1f}s; server RSS "
                         f"growth: upload {upload_growth:.0f} MiB, download {growth_mib:.0f} MiB]\n")


def setUpModule():
    # keel_harness keeps each server's log file open across stop/start; those
    # ResourceWarnings are harness noise, not findings.
    warnings.filterwarnings("ignore", category=ResourceWarning)


if __name__ == "__main__":
    unittest.main(verbosity=2)
