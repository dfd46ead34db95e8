"""End-to-end tests of keel's model registry: the MLflow REST 2.0 registry API
(registered-models/*, model-versions/*, aliases) and keel's alias history and
rollback extensions under /api/2.0/keel/.

Expected behaviour is MLflow 2.17.2's (/work/shared/contracts/mlflow-rest.md),
except where keel deliberately differs: version numbers are never reused, not
even after the model is deleted and created again.

Run: /usr/bin/python3 tests/e2e/test_registry_api.py
"""
import json
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from keel_harness import API, KeelTestCase  # noqa: E402

KEEL_API = "/api/2.0/keel/"
T0 = 1_700_000_000_000


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class RegistryTestCase(KeelTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s, url = cls.k.session, cls.k.url + API
        eid = s.post(url + "experiments/create", json={"name": uniq("reg")}).json()["experiment_id"]
        run = s.post(url + "runs/create", json={"experiment_id": eid, "start_time": T0}).json()
        cls.run_id = run["run"]["info"]["run_id"]
        cls.source = run["run"]["info"]["artifact_uri"] + "/model"
        run2 = s.post(url + "runs/create", json={"experiment_id": eid, "start_time": T0}).json()
        cls.run_id2 = run2["run"]["info"]["run_id"]
        cls.source2 = run2["run"]["info"]["artifact_uri"] + "/model"

    def request(self, method, path, body=None, base=API):
        k = self.k
        if method == "GET":
            return k.session.get(k.url + base + path, params=body)
        return k.session.request(method, k.url + base + path, data=json.dumps(body or {}),
                                 headers={"Content-Type": "application/json"})

    def call(self, method, path, body=None, base=API):
        r = self.request(method, path, body, base)
        self.assertEqual(r.status_code, 200, f"{method} {path} {body!r:.300} -> {r.text[:500]}")
        out = r.json()
        self.assertIsInstance(out, dict)
        return out

    def error(self, method, path, body, status, code, message_part=None, base=API):
        return self.assertError(self.request(method, path, body, base), status, code, message_part)

    def model(self, prefix="model", **extra):
        name = uniq(prefix)
        m = self.call("POST", "registered-models/create", {"name": name, **extra})
        self.assertEqual(m["registered_model"]["name"], name)
        return name

    def version(self, name, source=None, run_id=None, **extra):
        body = {"name": name, "source": source or self.source, "run_id": run_id or self.run_id,
                **extra}
        return self.call("POST", "model-versions/create", body)["model_version"]

    def get_version(self, name, version):
        return self.call("GET", "model-versions/get",
                         {"name": name, "version": version})["model_version"]

    def get_model(self, name):
        return self.call("GET", "registered-models/get", {"name": name})["registered_model"]

    def transition(self, name, version, stage, archive=False):
        return self.call("POST", "model-versions/transition-stage",
                         {"name": name, "version": version, "stage": stage,
                          "archive_existing_versions": archive})["model_version"]

    def set_alias(self, name, alias, version, **extra):
        self.assertEqual(self.call("POST", "registered-models/alias",
                                   {"name": name, "alias": alias, "version": version, **extra}),
                         {})

    def by_alias(self, name, alias):
        return self.call("GET", "registered-models/alias",
                         {"name": name, "alias": alias})["model_version"]

    @staticmethod
    def as_map(items):
        return {x["key"]: x["value"] for x in items or []}

    def health(self):
        self.assertEqual(self.k.session.get(self.k.url + "/health").status_code, 200)


class RegisteredModelsTest(RegistryTestCase):
    def test_create_and_get(self):
        name = uniq("create")
        created = self.call("POST", "registered-models/create",
                            {"name": name, "description": "first model",
                             "tags": [{"key": "team", "value": "ml"}]})["registered_model"]
        self.assertEqual(created["name"], name)
        self.assertIsInstance(created["creation_timestamp"], int)
        self.assertEqual(created["last_updated_timestamp"], created["creation_timestamp"])
        self.assertEqual(created["description"], "first model")
        self.assertEqual(self.as_map(created["tags"]), {"team": "ml"})
        got = self.get_model(name)
        self.assertEqual(got["name"], name)
        self.assertEqual(got["creation_timestamp"], created["creation_timestamp"])
        self.assertEqual(got["description"], "first model")
        self.assertEqual(self.as_map(got["tags"]), {"team": "ml"})
        self.assertNotIn("latest_versions", got)
        self.assertNotIn("aliases", got)

    def test_duplicate_and_unknown(self):
        name = self.model("dup")
        self.error("POST", "registered-models/create", {"name": name}, 400,
                   "RESOURCE_ALREADY_EXISTS")
        missing = uniq("missing")
        self.error("GET", "registered-models/get", {"name": missing}, 404,
                   "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={missing} not found")
        self.error("POST", "model-versions/create", {"name": missing, "source": self.source},
                   404, "RESOURCE_DOES_NOT_EXIST")

    def test_search(self):
        prefix = uniq("srch")
        names = [f"{prefix}-{c}" for c in "dbeac"]
        for n in names:
            self.call("POST", "registered-models/create", {"name": n})
        self.model("unrelated")
        r = self.call("GET", "registered-models/search",
                      {"filter": f"name LIKE '{prefix}-%'", "max_results": 100})
        self.assertEqual([m["name"] for m in r["registered_models"]], sorted(names))
        self.assertNotIn("next_page_token", r)
        # pages of 2, default order name ASC, each model exactly once
        seen, token, pages = [], None, 0
        while True:
            q = {"filter": f"name LIKE '{prefix}-%'", "max_results": 2}
            if token:
                q["page_token"] = token
            page = self.call("GET", "registered-models/search", q)
            pages += 1
            got = [m["name"] for m in page.get("registered_models", [])]
            self.assertLessEqual(len(got), 2)
            seen += got
            token = page.get("next_page_token")
            if not token:
                break
            self.assertLess(pages, 10, "pagination does not end")
        self.assertEqual(seen, sorted(names))
        self.assertEqual(pages, 3)
        r = self.call("GET", "registered-models/search",
                      {"filter": f"name = '{names[0]}'"})
        self.assertEqual([m["name"] for m in r["registered_models"]], [names[0]])
        r = self.call("GET", "registered-models/search",
                      {"filter": f"name LIKE '{prefix.upper()}-%'"})
        self.assertNotIn("registered_models", r, "LIKE is case-sensitive")
        r = self.call("GET", "registered-models/search",
                      {"filter": f"name ILIKE '{prefix.upper()}-%'"})
        self.assertEqual(len(r["registered_models"]), len(names))
        r = self.call("GET", "registered-models/search",
                      {"filter": f"name LIKE '{prefix}-%'", "order_by": ["name DESC"]})
        self.assertEqual([m["name"] for m in r["registered_models"]], sorted(names)[::-1])
        self.assertEqual(self.call("GET", "registered-models/search",
                                   {"filter": "name = 'no-such-model-anywhere'"}), {})

    def test_invalid_search_filters(self):
        for path in ("registered-models/search", "model-versions/search"):
            for flt in ("name LIKE", "name = 'x' OR name = 'y'", "foo = 'x'", "name > 'a'",
                        "name = 'x' garbage", "(name = 'x')"):
                with self.subTest(path=path, filter=flt):
                    self.error("GET", path, {"filter": flt}, 400, "INVALID_PARAMETER_VALUE")
        self.health()

    def test_update_description(self):
        name = self.model("upd")
        before = self.get_model(name)
        out = self.call("PATCH", "registered-models/update",
                        {"name": name, "description": "new words"})["registered_model"]
        self.assertEqual(out["name"], name)
        self.assertEqual(out["description"], "new words")
        self.assertGreaterEqual(out["last_updated_timestamp"], before["last_updated_timestamp"])
        self.assertEqual(self.get_model(name)["description"], "new words")

    def test_rename(self):
        name = self.model("old")
        self.version(name)
        self.version(name)
        self.set_alias(name, "champion", "2")
        new = uniq("new")
        out = self.call("POST", "registered-models/rename",
                        {"name": name, "new_name": new})["registered_model"]
        self.assertEqual(out["name"], new)
        self.error("GET", "registered-models/get", {"name": name}, 404, "RESOURCE_DOES_NOT_EXIST")
        got = self.get_model(new)
        self.assertEqual({v["name"] for v in got["latest_versions"]}, {new})
        self.assertEqual(self.get_version(new, "2")["name"], new)
        self.assertEqual(self.by_alias(new, "champion")["version"], "2")
        self.assertEqual(self.version(new)["version"], "3")
        other = self.model("taken")
        self.error("POST", "registered-models/rename", {"name": new, "new_name": other}, 400,
                   "RESOURCE_ALREADY_EXISTS")

    def test_delete(self):
        name = self.model("del")
        self.version(name)
        self.assertEqual(self.call("DELETE", "registered-models/delete", {"name": name}), {})
        self.error("GET", "registered-models/get", {"name": name}, 404, "RESOURCE_DOES_NOT_EXIST")
        self.error("GET", "model-versions/get", {"name": name, "version": "1"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        self.assertNotIn("model_versions", self.call("GET", "model-versions/search",
                                                     {"filter": f"name = '{name}'"}))
        self.error("DELETE", "registered-models/delete", {"name": name}, 404,
                   "RESOURCE_DOES_NOT_EXIST")

    def test_tags(self):
        name = self.model("tags")
        self.assertEqual(self.call("POST", "registered-models/set-tag",
                                   {"name": name, "key": "owner", "value": "ann"}), {})
        self.call("POST", "registered-models/set-tag", {"name": name, "key": "tier", "value": "1"})
        self.call("POST", "registered-models/set-tag", {"name": name, "key": "owner",
                                                        "value": "bob"})
        self.assertEqual(self.as_map(self.get_model(name)["tags"]), {"owner": "bob", "tier": "1"})
        self.assertEqual(self.call("DELETE", "registered-models/delete-tag",
                                   {"name": name, "key": "owner"}), {})
        self.assertEqual(self.as_map(self.get_model(name).get("tags")), {"tier": "1"})
        r = self.call("GET", "registered-models/search", {"filter": "tags.tier = '1'"})
        self.assertIn(name, [m["name"] for m in r["registered_models"]])

    def test_get_latest_versions(self):
        name = self.model("latest")
        for _ in range(5):
            self.version(name)
        self.transition(name, "1", "Production")
        self.transition(name, "2", "Production")
        self.transition(name, "3", "Staging")
        self.transition(name, "4", "Archived")

        def latest(stages=None):
            body = {"name": name}
            if stages is not None:
                body["stages"] = stages
            vs = self.call("POST", "registered-models/get-latest-versions",
                           body).get("model_versions", [])
            return {v["current_stage"]: v["version"] for v in vs}

        everything = {"Production": "2", "Staging": "3", "Archived": "4", "None": "5"}
        self.assertEqual(latest(), everything)
        self.assertEqual(latest(["Production"]), {"Production": "2"})
        self.assertEqual(latest(["production", "STAGING"]), {"Production": "2", "Staging": "3"})
        self.assertEqual(latest(["None"]), {"None": "5"})
        got = self.get_model(name)["latest_versions"]
        self.assertEqual({v["current_stage"]: v["version"] for v in got}, everything)
        self.assertEqual(len(got), 4)
        self.error("POST", "registered-models/get-latest-versions",
                   {"name": name, "stages": ["Bogus"]}, 400, "INVALID_PARAMETER_VALUE")
        self.error("POST", "registered-models/get-latest-versions", {"name": uniq("none")},
                   404, "RESOURCE_DOES_NOT_EXIST")


class ModelVersionsTest(RegistryTestCase):
    def test_create_and_get(self):
        name = self.model("mv")
        v = self.version(name, description="v one", tags=[{"key": "k", "value": "v"}])
        self.assertEqual(v["name"], name)
        self.assertEqual(v["version"], "1")
        self.assertEqual(v["status"], "READY")
        self.assertEqual(v["current_stage"], "None")
        self.assertEqual(v["description"], "v one")
        self.assertEqual(v["source"], self.source)
        self.assertEqual(v["run_id"], self.run_id)
        self.assertEqual(v["run_link"], "")
        self.assertEqual(self.as_map(v["tags"]), {"k": "v"})
        self.assertIsInstance(v["creation_timestamp"], int)
        self.assertEqual(v["last_updated_timestamp"], v["creation_timestamp"])
        self.assertNotIn("aliases", v)
        got = self.get_version(name, "1")
        self.assertEqual(got, v)
        model = self.get_model(name)
        self.assertGreaterEqual(model["last_updated_timestamp"], v["creation_timestamp"])
        self.assertEqual([x["version"] for x in model["latest_versions"]], ["1"])
        v2 = self.version(name)
        self.assertEqual(v2["version"], "2")
        self.assertEqual(v2["description"], "")

    def test_unknown_and_bad_versions(self):
        name = self.model("badver")
        self.version(name)
        self.error("GET", "model-versions/get", {"name": name, "version": "999"}, 404,
                   "RESOURCE_DOES_NOT_EXIST",
                   f"Model Version (name={name}, version=999) not found")
        for bad in ("abc", "1.5", "", "-"):
            with self.subTest(version=bad):
                r = self.request("GET", "model-versions/get", {"name": name, "version": bad})
                self.assertError(r, 400, "INVALID_PARAMETER_VALUE")
        for method, path, extra in (
                ("PATCH", "model-versions/update", {"description": "x"}),
                ("DELETE", "model-versions/delete", {}),
                ("POST", "model-versions/transition-stage", {"stage": "Staging"}),
                ("POST", "registered-models/alias", {"alias": "a"}),
                ("POST", "model-versions/set-tag", {"key": "k", "value": "v"})):
            with self.subTest(path=path):
                r = self.request(method, path, {"name": name, "version": "abc", **extra})
                self.assertError(r, 400, "INVALID_PARAMETER_VALUE")
        # A version number too big for int64 is not a server error.
        for method, path, extra in (
                ("GET", "model-versions/get", {}),
                ("PATCH", "model-versions/update", {"description": "x"}),
                ("POST", "model-versions/transition-stage", {"stage": "Staging"}),
                ("POST", "registered-models/alias", {"alias": "a"})):
            with self.subTest(path=path, version="huge"):
                r = self.request(method, path,
                                 {"name": name, "version": "99999999999999999999", **extra})
                self.assertIn(r.status_code, (400, 404), r.text)
                self.assertIn(r.json()["error_code"],
                              ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"))
        self.health()

    def test_update_description(self):
        name = self.model("mvupd")
        v = self.version(name)
        out = self.call("PATCH", "model-versions/update",
                        {"name": name, "version": "1", "description": "better"})["model_version"]
        self.assertEqual(out["description"], "better")
        self.assertEqual(out["version"], "1")
        self.assertGreaterEqual(out["last_updated_timestamp"], v["last_updated_timestamp"])
        self.assertEqual(self.get_version(name, "1")["description"], "better")

    def test_tags(self):
        name = self.model("mvtags")
        self.version(name)
        self.assertEqual(self.call("POST", "model-versions/set-tag",
                                   {"name": name, "version": "1", "key": "a", "value": "1"}), {})
        self.call("POST", "model-versions/set-tag",
                  {"name": name, "version": "1", "key": "b", "value": "2"})
        self.assertEqual(self.as_map(self.get_version(name, "1")["tags"]), {"a": "1", "b": "2"})
        self.assertEqual(self.call("DELETE", "model-versions/delete-tag",
                                   {"name": name, "version": "1", "key": "a"}), {})
        self.assertEqual(self.as_map(self.get_version(name, "1").get("tags")), {"b": "2"})

    def test_search(self):
        name = self.model("mvsearch")
        self.version(name)
        self.version(name, source=self.source2, run_id=self.run_id2)
        self.version(name)
        r = self.call("GET", "model-versions/search", {"filter": f"name = '{name}'"})
        self.assertEqual(sorted(v["version"] for v in r["model_versions"]), ["1", "2", "3"])
        for v in r["model_versions"]:
            self.assertEqual(v["name"], name)
        r = self.call("GET", "model-versions/search",
                      {"filter": f"name = '{name}' AND run_id = '{self.run_id2}'"})
        self.assertEqual([v["version"] for v in r["model_versions"]], ["2"])
        r = self.call("GET", "model-versions/search", {"filter": f"run_id = '{self.run_id2}'"})
        self.assertIn(("2", name), [(v["version"], v["name"]) for v in r["model_versions"]])
        r = self.call("GET", "model-versions/search",
                      {"filter": f"name = '{name}' AND source_path = '{self.source2}'"})
        self.assertEqual([v["version"] for v in r["model_versions"]], ["2"])
        seen, token, pages = [], None, 0
        while True:
            q = {"filter": f"name = '{name}'", "max_results": 2}
            if token:
                q["page_token"] = token
            page = self.call("GET", "model-versions/search", q)
            pages += 1
            self.assertLessEqual(len(page.get("model_versions", [])), 2)
            seen += [v["version"] for v in page.get("model_versions", [])]
            token = page.get("next_page_token")
            if not token:
                break
            self.assertLess(pages, 10, "pagination does not end")
        self.assertEqual(sorted(seen), ["1", "2", "3"])
        self.assertEqual(pages, 2)
        self.assertEqual(self.call("GET", "model-versions/search",
                                   {"filter": "name = 'no-such-model-anywhere'"}), {})

    def test_get_download_uri(self):
        name = self.model("uri")
        self.version(name)
        self.version(name, source=self.source2, run_id=self.run_id2)
        self.assertEqual(self.call("GET", "model-versions/get-download-uri",
                                   {"name": name, "version": "2"}),
                         {"artifact_uri": self.source2})
        self.error("GET", "model-versions/get-download-uri", {"name": name, "version": "9"},
                   404, "RESOURCE_DOES_NOT_EXIST")

    def test_transition_stage(self):
        name = self.model("stage")
        for _ in range(3):
            self.version(name)
        v = self.transition(name, "1", "staging")
        self.assertEqual(v["current_stage"], "Staging")
        self.assertEqual(self.transition(name, "1", "PRODUCTION")["current_stage"], "Production")
        self.assertEqual(self.transition(name, "2", "Production")["current_stage"], "Production")
        # without archive_existing_versions both stay in Production
        self.assertEqual(self.get_version(name, "1")["current_stage"], "Production")
        self.transition(name, "3", "Staging")
        v = self.transition(name, "2", "production", archive=False)
        self.assertEqual(self.get_version(name, "1")["current_stage"], "Production")
        # with it, the other Production versions are archived; Staging is left alone
        before = self.get_version(name, "1")["last_updated_timestamp"]
        self.transition(name, "2", "Production", archive=True)
        v1 = self.get_version(name, "1")
        self.assertEqual(v1["current_stage"], "Archived")
        self.assertGreaterEqual(v1["last_updated_timestamp"], before)
        self.assertEqual(self.get_version(name, "2")["current_stage"], "Production")
        self.assertEqual(self.get_version(name, "3")["current_stage"], "Staging")
        self.assertEqual(self.transition(name, "3", "none")["current_stage"], "None")
        self.assertEqual(self.transition(name, "3", "archived")["current_stage"], "Archived")
        self.error("POST", "model-versions/transition-stage",
                   {"name": name, "version": "3", "stage": "Bogus",
                    "archive_existing_versions": False}, 400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(self.get_version(name, "3")["current_stage"], "Archived")

    def test_delete_version(self):
        name = self.model("mvdel")
        for _ in range(3):
            self.version(name)
        self.assertEqual(self.call("DELETE", "model-versions/delete",
                                   {"name": name, "version": "2"}), {})
        self.error("GET", "model-versions/get", {"name": name, "version": "2"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        r = self.call("GET", "model-versions/search", {"filter": f"name = '{name}'"})
        self.assertEqual(sorted(v["version"] for v in r["model_versions"]), ["1", "3"])
        self.error("DELETE", "model-versions/delete", {"name": name, "version": "2"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        self.error("POST", "model-versions/transition-stage",
                   {"name": name, "version": "2", "stage": "Staging"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        self.assertEqual([v["version"] for v in self.get_model(name)["latest_versions"]], ["3"])
        self.call("DELETE", "model-versions/delete", {"name": name, "version": "3"})
        self.assertEqual([v["version"] for v in self.get_model(name)["latest_versions"]], ["1"])

    def test_version_numbers_are_never_reused(self):
        name = self.model("nums")
        self.assertEqual([self.version(name)["version"] for _ in range(3)], ["1", "2", "3"])
        self.call("DELETE", "model-versions/delete", {"name": name, "version": "2"})
        self.assertEqual(self.version(name)["version"], "4")
        # deleting the newest version does not free its number either
        self.call("DELETE", "model-versions/delete", {"name": name, "version": "4"})
        self.assertEqual(self.version(name)["version"], "5")
        r = self.call("GET", "model-versions/search", {"filter": f"name = '{name}'"})
        self.assertEqual(sorted(int(v["version"]) for v in r["model_versions"]), [1, 3, 5])
        # keel: deleting the model and creating it again continues the numbering
        self.call("DELETE", "registered-models/delete", {"name": name})
        self.call("POST", "registered-models/create", {"name": name})
        self.assertEqual(self.version(name)["version"], "6")
        self.error("GET", "model-versions/get", {"name": name, "version": "1"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        # numbering is per model
        other = self.model("nums-other")
        self.assertEqual(self.version(other)["version"], "1")


class AliasesTest(RegistryTestCase):
    def test_set_get_delete(self):
        name = self.model("alias")
        self.version(name)
        self.version(name)
        self.set_alias(name, "champion", "1")
        v = self.by_alias(name, "champion")
        self.assertEqual((v["name"], v["version"], v["aliases"]), (name, "1", ["champion"]))
        self.assertEqual(v, self.get_version(name, "1"))
        self.assertEqual(self.get_model(name)["aliases"], [{"alias": "champion", "version": "1"}])
        self.set_alias(name, "challenger", "2")
        self.set_alias(name, "champion", "2")  # moves
        self.assertEqual(self.by_alias(name, "champion")["version"], "2")
        self.assertNotIn("aliases", self.get_version(name, "1"))
        self.assertEqual(sorted(self.get_version(name, "2")["aliases"]), ["challenger", "champion"])
        self.assertEqual(sorted((a["alias"], a["version"]) for a in self.get_model(name)["aliases"]),
                         [("challenger", "2"), ("champion", "2")])
        self.assertEqual(self.call("DELETE", "registered-models/alias",
                                   {"name": name, "alias": "champion"}), {})
        self.assertEqual(self.get_model(name)["aliases"], [{"alias": "challenger", "version": "2"}])
        self.assertEqual(self.get_version(name, "2")["aliases"], ["challenger"])
        # deleting an alias that is not set succeeds (MLflow)
        self.assertEqual(self.call("DELETE", "registered-models/alias",
                                   {"name": name, "alias": "champion"}), {})
        # MLflow's quirk, which clients rely on: an unknown alias is 400, not 404
        body = self.error("GET", "registered-models/alias", {"name": name, "alias": "champion"},
                          400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(body["message"], "Registered model alias champion not found.")

    def test_unknown_alias_is_400(self):
        name = self.model("noalias")
        self.version(name)
        r = self.request("GET", "registered-models/alias", {"name": name, "alias": "nope"})
        body = self.assertError(r, 400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(body["message"], "Registered model alias nope not found.")

    def test_alias_errors(self):
        name = self.model("aliaserr")
        self.version(name)
        self.error("POST", "registered-models/alias", {"name": name, "alias": "a", "version": "7"},
                   404, "RESOURCE_DOES_NOT_EXIST")
        self.error("POST", "registered-models/alias",
                   {"name": uniq("none"), "alias": "a", "version": "1"},
                   404, "RESOURCE_DOES_NOT_EXIST")
        for bad in ("latest", "LATEST", "v1", "V12", "has space", "semi;colon"):
            with self.subTest(alias=bad):
                self.error("POST", "registered-models/alias",
                           {"name": name, "alias": bad, "version": "1"},
                           400, "INVALID_PARAMETER_VALUE")
        self.assertNotIn("aliases", self.get_model(name))

    def test_deleting_a_version_drops_its_aliases(self):
        name = self.model("aliasdel")
        self.version(name)
        self.version(name)
        self.set_alias(name, "prod", "1")
        self.set_alias(name, "next", "2")
        self.call("DELETE", "model-versions/delete", {"name": name, "version": "1"})
        self.assertEqual(self.get_model(name)["aliases"], [{"alias": "next", "version": "2"}])
        self.assertEqual(self.by_alias(name, "next")["version"], "2")
        self.error("GET", "registered-models/alias", {"name": name, "alias": "prod"}, 400,
                   "INVALID_PARAMETER_VALUE", "Registered model alias prod not found.")


class AliasHistoryTest(RegistryTestCase):
    """keel extensions: /api/2.0/keel/registered-models/alias-history and /rollback."""

    def history(self, name, alias):
        r = self.call("GET", "registered-models/alias-history", {"name": name, "alias": alias},
                      base=KEEL_API)
        self.assertIsInstance(r.get("changes"), list, r)
        for c in r["changes"]:
            self.assertEqual((c["name"], c["alias"]), (name, alias))
            self.assertIsInstance(c["actor"], str)
            self.assertIsInstance(c["reason"], str)
            self.assertIsInstance(c["time"], int)
        times = [c["time"] for c in r["changes"]]
        self.assertEqual(times, sorted(times, reverse=True), "newest first")
        return r["changes"]

    @staticmethod
    def moves(changes):
        return [(c.get("from_version"), c.get("to_version")) for c in changes]

    def test_history_and_rollback(self):
        name = self.model("hist")
        for _ in range(3):
            self.version(name)
        self.assertEqual(self.history(name, "champion"), [])
        self.set_alias(name, "champion", "1", reason="first release")
        self.set_alias(name, "champion", "2", reason="better auc")
        self.set_alias(name, "other", "3")
        changes = self.history(name, "champion")
        self.assertEqual(self.moves(changes), [("1", "2"), (None, "1")])
        self.assertEqual([c["reason"] for c in changes], ["better auc", "first release"])

        r = self.call("POST", "registered-models/rollback",
                      {"name": name, "alias": "champion", "reason": "regression in v2"},
                      base=KEEL_API)
        self.assertIsInstance(r, dict)
        self.assertEqual(self.by_alias(name, "champion")["version"], "1")
        self.assertEqual(self.get_version(name, "1")["aliases"], ["champion"])
        changes = self.history(name, "champion")
        self.assertEqual(len(changes), 3)
        self.assertEqual(self.moves(changes)[0], ("2", "1"))
        self.assertEqual(changes[0]["reason"], "regression in v2")
        # other aliases are untouched
        self.assertEqual(self.by_alias(name, "other")["version"], "3")
        self.assertEqual(self.moves(self.history(name, "other")), [(None, "3")])

    def test_delete_is_recorded(self):
        name = self.model("histdel")
        self.version(name)
        self.set_alias(name, "prod", "1")
        self.call("DELETE", "registered-models/alias", {"name": name, "alias": "prod"})
        self.assertEqual(self.moves(self.history(name, "prod")), [("1", None), (None, "1")])

    def test_setting_the_same_version_again_is_not_a_change(self):
        name = self.model("histsame")
        self.version(name)
        self.set_alias(name, "prod", "1")
        self.set_alias(name, "prod", "1")
        self.assertEqual(self.moves(self.history(name, "prod")), [(None, "1")])

    def test_rollback_without_previous_version_is_409(self):
        name = self.model("noprev")
        self.version(name)
        self.set_alias(name, "prod", "1")
        r = self.request("POST", "registered-models/rollback",
                         {"name": name, "alias": "prod", "reason": "x"}, base=KEEL_API)
        self.assertEqual(r.status_code, 409, r.text)
        body = r.json()
        self.assertTrue(body.get("error_code"))
        self.assertTrue(body.get("message"))
        self.assertEqual(self.by_alias(name, "prod")["version"], "1")
        self.assertEqual(len(self.history(name, "prod")), 1)
        self.health()

    def test_unknown_model(self):
        missing = uniq("missing")
        self.error("GET", "registered-models/alias-history", {"name": missing, "alias": "a"},
                   404, "RESOURCE_DOES_NOT_EXIST", base=KEEL_API)
        self.error("POST", "registered-models/rollback", {"name": missing, "alias": "a"},
                   404, "RESOURCE_DOES_NOT_EXIST", base=KEEL_API)
        self.error("GET", "registered-models/alias-history", {"alias": "a"}, 400,
                   "INVALID_PARAMETER_VALUE", "'name'", base=KEEL_API)


class RetrainWithoutPoliciesTest(RegistryTestCase):
    def test_jobs_cannot_be_started_here(self):
        """A server run without --retrain-policies lists jobs but refuses to
        start one, naming the flag (409, as every failed precondition). It
        takes cancels (they reach jobs of every process on the store): with
        nothing to cancel, 404 naming the model."""
        self.assertEqual(self.call("GET", "retrain/jobs", base=KEEL_API), {"jobs": []})
        self.error("POST", "retrain/jobs", {"model": "churn"}, 409, "INVALID_STATE",
                   "start it with --retrain-policies FILE", base=KEEL_API)
        self.error("POST", "retrain/jobs/cancel", {"model": "churn"}, 404,
                   "RESOURCE_DOES_NOT_EXIST",
                   "no retraining job of model 'churn' is queued, running or in its shadow "
                   "phase", base=KEEL_API)
        for path in ("retrain/jobs", "retrain/jobs/cancel"):
            self.error("POST", path, {}, 400, "INVALID_PARAMETER_VALUE", "'model'",
                       base=KEEL_API)


if __name__ == "__main__":
    unittest.main()
