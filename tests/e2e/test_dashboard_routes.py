"""End-to-end tests of the routes that serve the web dashboard (the bundle
embedded at build time) and /api/2.0/keel/whoami, without auth; with auth
they are in test_auth.py, keel serve's lack of them in test_serving.py, the
pages themselves in tests/browser/.

Run: /usr/bin/python3 tests/e2e/test_dashboard_routes.py
"""
import os
import re
import sys
import unittest

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import KeelTestCase  # noqa: E402


class DashboardRoutesTest(KeelTestCase):
    def test_index_and_every_file_it_names(self):
        r = requests.get(self.k.url + "/", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
        self.assertEqual(r.headers["Cache-Control"], "no-cache")
        files = re.findall(r'(?:src|href)="(/ui/[^"]+)"', r.text)
        self.assertIn("/ui/app.js", files)
        self.assertIn("/ui/app.css", files)
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
        for f in files:
            got = requests.get(self.k.url + f, timeout=10)
            self.assertEqual(got.status_code, 200, f)
            self.assertGreater(len(got.content), 100, f)
            self.assertEqual(got.headers["Content-Type"], types[os.path.splitext(f)[1]], f)

    def test_unknown_file_is_a_json_404(self):
        for path in ["/ui/nope.js", "/ui/%2E%2E%2Fkeel.db", "/ui/index.html/x"]:
            r = requests.get(self.k.url + path, timeout=10)
            self.assertEqual(r.status_code, 404, path)
            self.assertEqual(r.json()["error_code"], "RESOURCE_DOES_NOT_EXIST", path)
        r = requests.post(self.k.url + "/", timeout=10)
        self.assertEqual(r.status_code, 405, r.text)

    def test_retrain_policies_without_a_scheduler(self):
        r = requests.get(self.k.url + "/api/2.0/keel/retrain/policies", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {"scheduler": False, "leader": False, "policies": []})

    def test_whoami_without_auth(self):
        r = requests.get(self.k.url + "/api/2.0/keel/whoami", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {"auth": False, "name": "anonymous", "role": "write"})


if __name__ == "__main__":
    unittest.main()
