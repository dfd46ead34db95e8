"""End-to-end tests of keel's MLflow tracking API (REST 2.0), against a real server.

Expected behaviour is MLflow 2.17.2's, as /work/shared/contracts/mlflow-rest.md
describes it (and keel's own choices where the brief fixes them: error messages
of invalid filters name a "position", bodies over 64 MiB answer 413).

Run: /usr/bin/python3 tests/e2e/test_tracking_api.py
"""
import json
import os
import re
import socket
import sys
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import requests  # noqa: E402
from keel_harness import API, KeelTestCase, on_postgres  # noqa: E402

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
RUN_NAME_RE = re.compile(r"^[a-z]+-[a-z]+-\d+$")
MAX_DOUBLE = 1.7976931348623157e308
T0 = 1_700_000_000_000  # client-chosen timestamps (ms)


def strict_json(text):
    """json.loads that refuses bare NaN/Infinity tokens (the mlflow client can't read them)."""
    def bad(token):
        raise ValueError(f"bare {token} in JSON (must be the string \"{token}\")")
    return json.loads(text, parse_constant=bad)


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class ApiTestCase(KeelTestCase):
    """Helpers shared by the test classes below."""

    def call(self, method, path, body=None, status=200, params=None):
        """Calls /api/2.0/mlflow/<path>; asserts the status; returns the (strict) JSON body."""
        k = self.k
        if method == "GET":
            r = k.session.get(k.url + API + path, params=body if params is None else params)
        else:
            r = k.session.request(method, k.url + API + path, data=json.dumps(body),
                                  headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, status, f"{method} {path} {body!r:.300} -> {r.text[:500]}")
        if status == 200:
            self.assertTrue(r.headers.get("Content-Type", "").startswith("application/json"),
                            r.headers.get("Content-Type"))
        out = strict_json(r.text)
        self.assertIsInstance(out, dict, r.text[:300])
        return out

    def error(self, method, path, body, status, code, message_part=None):
        k = self.k
        if method == "GET":
            r = k.session.get(k.url + API + path, params=body)
        else:
            r = k.session.request(method, k.url + API + path,
                                  data=body if isinstance(body, (str, bytes)) else json.dumps(body),
                                  headers={"Content-Type": "application/json"})
        return self.assertError(r, status, code, message_part)

    def health(self):
        r = self.k.session.get(self.k.url + "/health", timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.text.strip(), "OK")

    def experiment(self, prefix="exp", **extra):
        body = {"name": uniq(prefix), **extra}
        eid = self.call("POST", "experiments/create", body)["experiment_id"]
        self.assertRegex(eid, r"^[1-9][0-9]*$")
        return eid

    def new_run(self, experiment_id, **fields):
        body = {"experiment_id": experiment_id, "start_time": fields.pop("start_time", T0),
                "user_id": fields.pop("user_id", "tester"), **fields}
        return self.call("POST", "runs/create", body)["run"]

    def get_run(self, run_id):
        return self.call("GET", "runs/get", {"run_id": run_id})["run"]

    @staticmethod
    def as_map(items):
        return {x["key"]: x["value"] for x in items or []}

    def metric(self, run_id, key, value, step=0, timestamp=T0):
        self.call("POST", "runs/log-metric", {"run_id": run_id, "run_uuid": run_id, "key": key,
                                               "value": value, "step": step,
                                               "timestamp": timestamp})

    def history(self, run_id, key, **extra):
        return self.call("GET", "metrics/get-history",
                         {"run_id": run_id, "run_uuid": run_id, "metric_key": key, **extra})


class ExperimentsTest(ApiTestCase):
    def test_default_experiment_exists(self):
        e = self.call("GET", "experiments/get", {"experiment_id": "0"})["experiment"]
        self.assertEqual(e["experiment_id"], "0")
        self.assertEqual(e["name"], "Default")
        self.assertEqual(e["lifecycle_stage"], "active")
        self.assertIsInstance(e["artifact_location"], str)
        self.assertTrue(e["artifact_location"])
        by_name = self.call("GET", "experiments/get-by-name", {"experiment_name": "Default"})
        self.assertEqual(by_name["experiment"]["experiment_id"], "0")

    def test_create_get_and_get_by_name(self):
        name = uniq("create")
        created = self.call("POST", "experiments/create",
                            {"name": name, "tags": [{"key": "team", "value": "ml"}]})
        self.assertEqual(list(created), ["experiment_id"])
        eid = created["experiment_id"]
        self.assertRegex(eid, r"^[1-9][0-9]*$")
        e = self.call("GET", "experiments/get", {"experiment_id": eid})["experiment"]
        self.assertEqual(e["experiment_id"], eid)
        self.assertEqual(e["name"], name)
        self.assertEqual(e["lifecycle_stage"], "active")
        self.assertEqual(e["artifact_location"], f"mlflow-artifacts:/{eid}")
        self.assertIsInstance(e["creation_time"], int)
        self.assertIsInstance(e["last_update_time"], int)
        self.assertGreaterEqual(e["last_update_time"], e["creation_time"])
        self.assertEqual(self.as_map(e.get("tags")), {"team": "ml"})
        self.assertEqual(
            self.call("GET", "experiments/get-by-name", {"experiment_name": name})["experiment"],
            e)

    def test_unknown_experiment(self):
        self.error("GET", "experiments/get-by-name", {"experiment_name": uniq("nope")}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        self.error("GET", "experiments/get", {"experiment_id": "987654321"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")

    def test_duplicate_name(self):
        name = uniq("dup")
        self.call("POST", "experiments/create", {"name": name})
        self.error("POST", "experiments/create", {"name": name}, 400, "RESOURCE_ALREADY_EXISTS")

    def test_duplicate_name_of_deleted_experiment(self):
        name = uniq("dupdel")
        eid = self.call("POST", "experiments/create", {"name": name})["experiment_id"]
        self.call("POST", "experiments/delete", {"experiment_id": eid})
        self.error("POST", "experiments/create", {"name": name}, 400, "RESOURCE_ALREADY_EXISTS")

    def test_rename(self):
        eid = self.experiment("rename")
        new = uniq("renamed")
        self.assertEqual(self.call("POST", "experiments/update",
                                   {"experiment_id": eid, "new_name": new}), {})
        self.assertEqual(self.call("GET", "experiments/get",
                                   {"experiment_id": eid})["experiment"]["name"], new)
        self.assertEqual(self.call("GET", "experiments/get-by-name",
                                   {"experiment_name": new})["experiment"]["experiment_id"], eid)

    def test_delete_and_restore(self):
        eid = self.experiment("delres")
        name = self.call("GET", "experiments/get", {"experiment_id": eid})["experiment"]["name"]
        self.assertEqual(self.call("POST", "experiments/delete", {"experiment_id": eid}), {})
        e = self.call("GET", "experiments/get", {"experiment_id": eid})["experiment"]
        self.assertEqual(e["lifecycle_stage"], "deleted")
        by_name = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
        self.assertEqual(by_name["experiment"]["lifecycle_stage"], "deleted")
        flt = {"filter": f"name = '{name}'", "max_results": 10}
        self.assertNotIn("experiments", self.call("POST", "experiments/search",
                                                  {**flt, "view_type": "ACTIVE_ONLY"}))
        deleted = self.call("POST", "experiments/search", {**flt, "view_type": "DELETED_ONLY"})
        self.assertEqual([x["experiment_id"] for x in deleted["experiments"]], [eid])
        every = self.call("POST", "experiments/search", {**flt, "view_type": "ALL"})
        self.assertEqual([x["experiment_id"] for x in every["experiments"]], [eid])
        self.assertEqual(self.call("POST", "experiments/restore", {"experiment_id": eid}), {})
        e = self.call("GET", "experiments/get", {"experiment_id": eid})["experiment"]
        self.assertEqual(e["lifecycle_stage"], "active")

    def test_deleting_an_experiment_deletes_its_runs(self):
        eid = self.experiment("cascade")
        rid = self.new_run(eid)["info"]["run_id"]
        self.call("POST", "experiments/delete", {"experiment_id": eid})
        self.assertEqual(self.get_run(rid)["info"]["lifecycle_stage"], "deleted")
        self.assertNotIn("runs", self.call("POST", "runs/search", {"experiment_ids": [eid]}))
        self.call("POST", "experiments/restore", {"experiment_id": eid})
        self.assertEqual(self.get_run(rid)["info"]["lifecycle_stage"], "active")
        found = self.call("POST", "runs/search", {"experiment_ids": [eid]})
        self.assertEqual([r["info"]["run_id"] for r in found["runs"]], [rid])

    def test_artifact_location_and_search_by_tag(self):
        eid = self.experiment("loc", artifact_location="mlflow-artifacts:/custom/place",
                              tags=[{"key": "proj", "value": "loc-test"}])
        e = self.call("GET", "experiments/get", {"experiment_id": eid})["experiment"]
        self.assertEqual(e["artifact_location"], "mlflow-artifacts:/custom/place")
        rid = self.new_run(eid)["info"]["run_id"]
        self.assertEqual(self.get_run(rid)["info"]["artifact_uri"],
                         f"mlflow-artifacts:/custom/place/{rid}/artifacts")
        r = self.call("POST", "experiments/search", {"filter": "tags.proj = 'loc-test'"})
        self.assertEqual([x["experiment_id"] for x in r["experiments"]], [eid])

    def test_set_experiment_tag(self):
        eid = self.experiment("tag")
        self.assertEqual(self.call("POST", "experiments/set-experiment-tag",
                                   {"experiment_id": eid, "key": "owner", "value": "ann"}), {})
        self.call("POST", "experiments/set-experiment-tag",
                  {"experiment_id": eid, "key": "stage", "value": "dev"})
        self.call("POST", "experiments/set-experiment-tag",
                  {"experiment_id": eid, "key": "owner", "value": "bob"})  # overwrite
        e = self.call("GET", "experiments/get", {"experiment_id": eid})["experiment"]
        self.assertEqual(self.as_map(e["tags"]), {"owner": "bob", "stage": "dev"})

    def test_search_filter_order_and_pages(self):
        prefix = uniq("pg")
        names = [f"{prefix}-{c}" for c in "cadgebf"]
        ids = {n: self.call("POST", "experiments/create", {"name": n})["experiment_id"]
               for n in names}
        self.experiment("other")  # must not match
        flt = f"name LIKE '{prefix}-%'"
        for order, expect in (("name ASC", sorted(names)), ("name DESC", sorted(names)[::-1])):
            seen, token, pages = [], None, 0
            while True:
                body = {"filter": flt, "max_results": 3, "order_by": [order],
                        "view_type": "ACTIVE_ONLY"}
                if token:
                    body["page_token"] = token
                page = self.call("POST", "experiments/search", body)
                pages += 1
                got = [e["name"] for e in page.get("experiments", [])]
                self.assertLessEqual(len(got), 3)
                seen += got
                token = page.get("next_page_token")
                if not token:
                    break
                self.assertLess(pages, 10, "pagination does not end")
            self.assertEqual(seen, expect, order)
            self.assertEqual(pages, 3)
        # GET form, and name LIKE with a single-character wildcard.
        r = self.call("GET", "experiments/search",
                      {"filter": f"name LIKE '{prefix}-_'", "max_results": 100})
        self.assertEqual(sorted(e["experiment_id"] for e in r["experiments"]),
                         sorted(ids.values()))
        # LIKE is case-sensitive, ILIKE is not.
        upper = flt.replace(prefix, prefix.upper())
        self.assertNotIn("experiments", self.call("POST", "experiments/search",
                                                  {"filter": upper, "max_results": 100}))
        r = self.call("POST", "experiments/search",
                      {"filter": upper.replace("LIKE", "ILIKE"), "max_results": 100})
        self.assertEqual(len(r["experiments"]), len(names))

    def test_names_survive_the_query_string(self):
        for name in ("a b+c&d=e%f/g?h#i", "ünï ☃ 名前", "tab\there"):
            with self.subTest(name=name):
                eid = self.call("POST", "experiments/create", {"name": name})["experiment_id"]
                e = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
                self.assertEqual((e["experiment"]["experiment_id"], e["experiment"]["name"]),
                                 (eid, name))

    def test_search_max_results_limit(self):
        self.error("POST", "experiments/search", {"max_results": 50001}, 400,
                   "INVALID_PARAMETER_VALUE")

    def test_search_all_experiments_includes_default(self):
        seen, token = [], None
        while True:
            body = {"max_results": 2}
            if token:
                body["page_token"] = token
            page = self.call("POST", "experiments/search", body)
            seen += [e["experiment_id"] for e in page.get("experiments", [])]
            token = page.get("next_page_token")
            if not token:
                break
        self.assertIn("0", seen)
        self.assertEqual(len(seen), len(set(seen)), "an experiment appeared on two pages")


class RunsTest(ApiTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.k.session.post(cls.k.url + API + "experiments/create",
                               json={"name": uniq("runs")})
        cls.eid = r.json()["experiment_id"]

    def test_create_and_get(self):
        tags = [{"key": "mlflow.user", "value": "root"},
                {"key": "mlflow.source.type", "value": "LOCAL"}]
        run = self.new_run(self.eid, start_time=T0 + 5, user_id="root", tags=tags)
        info = run["info"]
        self.assertRegex(info["run_id"], RUN_ID_RE)
        self.assertEqual(info["run_uuid"], info["run_id"])
        self.assertEqual(info["experiment_id"], self.eid)
        self.assertEqual(info["status"], "RUNNING")
        self.assertEqual(info["lifecycle_stage"], "active")
        self.assertEqual(info["user_id"], "root")
        self.assertEqual(info["start_time"], T0 + 5)
        self.assertRegex(info["run_name"], RUN_NAME_RE)
        self.assertEqual(info["artifact_uri"],
                         f"mlflow-artifacts:/{self.eid}/{info['run_id']}/artifacts")
        self.assertNotIn("end_time", info)
        self.assertEqual(self.as_map(run["data"]["tags"]),
                         {"mlflow.user": "root", "mlflow.source.type": "LOCAL",
                          "mlflow.runName": info["run_name"]})
        got = self.get_run(info["run_id"])
        self.assertEqual(got["info"], info)
        self.assertEqual(got["inputs"], {})
        self.assertNotIn("metrics", got["data"])
        self.assertNotIn("params", got["data"])
        # run_uuid alone also works (deprecated alias)
        r = self.call("GET", "runs/get", {"run_uuid": info["run_id"]})
        self.assertEqual(r["run"]["info"]["run_id"], info["run_id"])

    def test_run_name_from_argument_and_from_tag(self):
        run = self.new_run(self.eid, run_name="my-run")
        self.assertEqual(run["info"]["run_name"], "my-run")
        self.assertEqual(self.as_map(run["data"]["tags"])["mlflow.runName"], "my-run")
        run = self.new_run(self.eid, tags=[{"key": "mlflow.runName", "value": "from-tag"}])
        self.assertEqual(run["info"]["run_name"], "from-tag")
        self.error("POST", "runs/create",
                   {"experiment_id": self.eid, "start_time": T0, "run_name": "a",
                    "tags": [{"key": "mlflow.runName", "value": "b"}]},
                   400, "INVALID_PARAMETER_VALUE")

    def test_start_time_as_string(self):
        run = self.call("POST", "runs/create", {"experiment_id": self.eid,
                                                "start_time": str(T0 + 42)})["run"]
        self.assertEqual(run["info"]["start_time"], T0 + 42)

    def test_create_in_unknown_experiment(self):
        self.error("POST", "runs/create", {"experiment_id": "987654321", "start_time": T0},
                   404, "RESOURCE_DOES_NOT_EXIST")

    def test_unknown_run(self):
        rid = "0" * 32
        self.error("GET", "runs/get", {"run_id": rid}, 404, "RESOURCE_DOES_NOT_EXIST",
                   f"Run with id={rid} not found")
        self.error("POST", "runs/update", {"run_id": rid, "status": "FINISHED"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")
        self.error("POST", "runs/log-metric",
                   {"run_id": rid, "key": "m", "value": 1, "timestamp": T0}, 404,
                   "RESOURCE_DOES_NOT_EXIST")

    def test_update(self):
        run = self.new_run(self.eid)
        rid = run["info"]["run_id"]
        out = self.call("POST", "runs/update", {"run_id": rid, "run_uuid": rid,
                                                "status": "FINISHED", "end_time": T0 + 99})
        info = out["run_info"]
        self.assertEqual(info["status"], "FINISHED")
        self.assertEqual(info["end_time"], T0 + 99)
        self.assertEqual(info["run_id"], rid)
        self.assertEqual(info["run_uuid"], rid)
        self.assertEqual(info["start_time"], T0)
        self.assertEqual(self.get_run(rid)["info"], info)
        # renaming through update also renames the mlflow.runName tag
        out = self.call("POST", "runs/update", {"run_id": rid, "run_name": "renamed-run"})
        self.assertEqual(out["run_info"]["run_name"], "renamed-run")
        got = self.get_run(rid)
        self.assertEqual(got["info"]["run_name"], "renamed-run")
        self.assertEqual(self.as_map(got["data"]["tags"])["mlflow.runName"], "renamed-run")
        self.assertEqual(got["info"]["status"], "FINISHED")  # untouched
        # start_run(run_id=...) resumes with status RUNNING
        out = self.call("POST", "runs/update", {"run_id": rid, "status": "RUNNING"})
        self.assertEqual(out["run_info"]["status"], "RUNNING")

    def test_set_tag_run_name_renames_run(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.call("POST", "runs/set-tag", {"run_id": rid, "key": "mlflow.runName",
                                           "value": "tag-renamed"})
        self.assertEqual(self.get_run(rid)["info"]["run_name"], "tag-renamed")

    def test_delete_and_restore(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.assertEqual(self.call("POST", "runs/delete", {"run_id": rid}), {})
        self.assertEqual(self.get_run(rid)["info"]["lifecycle_stage"], "deleted")
        flt = f"attributes.run_id = '{rid}'"
        active = self.call("POST", "runs/search", {"experiment_ids": [self.eid], "filter": flt})
        self.assertNotIn("runs", active)
        every = self.call("POST", "runs/search", {"experiment_ids": [self.eid], "filter": flt,
                                                  "run_view_type": "ALL"})
        self.assertEqual([r["info"]["run_id"] for r in every["runs"]], [rid])
        self.assertEqual(self.call("POST", "runs/restore", {"run_id": rid}), {})
        self.assertEqual(self.get_run(rid)["info"]["lifecycle_stage"], "active")

    def test_tags(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.assertEqual(self.call("POST", "runs/set-tag", {"run_id": rid, "run_uuid": rid,
                                                            "key": "k1", "value": "v1"}), {})
        self.call("POST", "runs/set-tag", {"run_id": rid, "key": "k2", "value": "v2"})
        self.call("POST", "runs/set-tag", {"run_id": rid, "key": "k1", "value": "v1b"})
        self.call("POST", "runs/set-tag", {"run_id": rid, "key": "empty", "value": ""})
        tags = self.as_map(self.get_run(rid)["data"]["tags"])
        self.assertEqual(tags["k1"], "v1b")
        self.assertEqual(tags["k2"], "v2")
        self.assertEqual(tags["empty"], "")
        self.assertEqual(self.call("POST", "runs/delete-tag", {"run_id": rid, "key": "k2"}), {})
        tags = self.as_map(self.get_run(rid)["data"]["tags"])
        self.assertNotIn("k2", tags)
        self.assertIn("k1", tags)
        self.error("POST", "runs/delete-tag", {"run_id": rid, "key": "k2"}, 404,
                   "RESOURCE_DOES_NOT_EXIST")

    def test_params_are_immutable(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.assertEqual(self.call("POST", "runs/log-parameter",
                                   {"run_id": rid, "run_uuid": rid, "key": "lr",
                                    "value": "0.1"}), {})
        self.call("POST", "runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"})
        self.error("POST", "runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.2"},
                   400, "INVALID_PARAMETER_VALUE")
        self.call("POST", "runs/log-batch",
                  {"run_id": rid, "params": [{"key": "lr", "value": "0.1"}]})
        self.error("POST", "runs/log-batch",
                   {"run_id": rid, "params": [{"key": "lr", "value": "0.3"}]},
                   400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(self.as_map(self.get_run(rid)["data"]["params"]), {"lr": "0.1"})

    def test_log_batch_duplicate_param_keys(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.error("POST", "runs/log-batch",
                   {"run_id": rid, "params": [{"key": "a", "value": "1"},
                                              {"key": "a", "value": "2"}]},
                   400, "INVALID_PARAMETER_VALUE")
        self.assertNotIn("params", self.get_run(rid)["data"])

    def test_log_batch(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        body = {"run_id": rid,
                "metrics": [{"key": "m", "value": 1.5, "timestamp": T0, "step": 0},
                            {"key": "m", "value": 2.5, "timestamp": T0 + 1, "step": 1},
                            {"key": "n", "value": -3, "timestamp": T0}],
                "params": [{"key": "p1", "value": "a"}, {"key": "p2", "value": "b"}],
                "tags": [{"key": "t1", "value": "x"}]}
        self.assertEqual(self.call("POST", "runs/log-batch", body), {})
        data = self.get_run(rid)["data"]
        metrics = {m["key"]: m for m in data["metrics"]}
        self.assertEqual(metrics["m"], {"key": "m", "value": 2.5, "timestamp": T0 + 1, "step": 1})
        self.assertEqual(metrics["n"], {"key": "n", "value": -3, "timestamp": T0, "step": 0})
        self.assertEqual(self.as_map(data["params"]), {"p1": "a", "p2": "b"})
        self.assertEqual(self.as_map(data["tags"])["t1"], "x")
        self.assertEqual(len(self.history(rid, "m")["metrics"]), 2)
        # an empty batch is fine
        self.assertEqual(self.call("POST", "runs/log-batch", {"run_id": rid}), {})

    def test_latest_metric_is_max_step_timestamp_value(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.metric(rid, "a", 1.0, step=5, timestamp=T0 + 100)
        self.metric(rid, "a", 0.5, step=5, timestamp=T0 + 200)   # same step, later -> wins
        self.metric(rid, "a", 9.0, step=3, timestamp=T0 + 300)   # lower step, even if later
        self.metric(rid, "b", 2.0, step=7, timestamp=T0 + 50)
        self.metric(rid, "b", 3.0, step=7, timestamp=T0 + 50)    # tie -> max value
        self.metric(rid, "b", 1.0, step=7, timestamp=T0 + 50)
        metrics = {m["key"]: m for m in self.get_run(rid)["data"]["metrics"]}
        self.assertEqual(metrics["a"], {"key": "a", "value": 0.5, "timestamp": T0 + 200, "step": 5})
        self.assertEqual(metrics["b"], {"key": "b", "value": 3.0, "timestamp": T0 + 50, "step": 7})
        self.assertEqual(len(self.history(rid, "a")["metrics"]), 3)
        self.assertEqual(len(self.history(rid, "b")["metrics"]), 3)

    def test_nan_and_infinity(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.metric(rid, "nan", "NaN")
        self.metric(rid, "inf", "Infinity")
        self.metric(rid, "ninf", "-Infinity")
        self.call("POST", "runs/log-batch", {"run_id": rid, "metrics": [
            {"key": "bnan", "value": "NaN", "timestamp": T0, "step": 0}]})
        metrics = {m["key"]: m["value"] for m in self.get_run(rid)["data"]["metrics"]}
        self.assertEqual(metrics["nan"], "NaN")
        self.assertEqual(metrics["bnan"], "NaN")
        # MLflow's sqlite store clamps infinities to the largest double on read-back.
        self.assertIn(metrics["inf"], ("Infinity", MAX_DOUBLE))
        self.assertIn(metrics["ninf"], ("-Infinity", -MAX_DOUBLE))
        self.assertEqual(self.history(rid, "nan")["metrics"][0]["value"], "NaN")

    def test_metric_values_round_trip(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        values = [0.1 + 0.2, 1e-300, 5e-324, MAX_DOUBLE, -MAX_DOUBLE, 2.0 ** 53, 1 / 3,
                  123456789.12345679, -42, 0]
        big_ts = 2 ** 63 - 1
        self.call("POST", "runs/log-batch", {"run_id": rid, "metrics": [
            {"key": f"v{i}", "value": v, "timestamp": big_ts, "step": -5}
            for i, v in enumerate(values)]})
        got = {m["key"]: m for m in self.get_run(rid)["data"]["metrics"]}
        for i, v in enumerate(values):
            with self.subTest(value=v):
                m = got[f"v{i}"]
                self.assertEqual(m["value"], v)
                self.assertEqual((m["timestamp"], m["step"]), (big_ts, -5))

    def test_strings_round_trip(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        for i, value in enumerate(("名前 🚀", "nul\x00inside",
                                   'line\nbreak\t"quoted" back\\slash', "\u2028\u00e9")):
            with self.subTest(value=value):
                if "\x00" in value and on_postgres():
                    # PostgreSQL text cannot hold U+0000: refused, never cut short.
                    r = self.k.post("runs/set-tag", {"run_id": rid, "key": f"t{i}", "value": value})
                    self.assertEqual(r.status_code, 400, r.text)
                    self.assertIn("NUL", r.json()["message"])
                    continue
                self.call("POST", "runs/set-tag", {"run_id": rid, "key": f"t{i}", "value": value})
                self.call("POST", "runs/log-parameter",
                          {"run_id": rid, "key": f"p{i}", "value": value})
                data = self.get_run(rid)["data"]
                self.assertEqual(self.as_map(data["tags"])[f"t{i}"], value)
                self.assertEqual(self.as_map(data["params"])[f"p{i}"], value)

    def test_concurrent_logging(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        errors = []

        def worker(t):
            with requests.Session() as s:
                for i in range(25):
                    r = s.post(self.k.url + API + "runs/log-metric",
                               json={"run_id": rid, "key": "conc", "value": t * 100 + i,
                                     "timestamp": T0 + t * 100 + i, "step": t * 100 + i})
                    if r.status_code != 200:
                        errors.append(r.text)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        hist = self.history(rid, "conc")["metrics"]
        self.assertEqual(sorted(m["step"] for m in hist),
                         sorted(t * 100 + i for t in range(8) for i in range(25)))
        latest = {m["key"]: m for m in self.get_run(rid)["data"]["metrics"]}["conc"]
        self.assertEqual(latest["step"], 724)

    def test_int64_as_string(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.call("POST", "runs/log-metric", {"run_id": rid, "key": "s", "value": 0.25,
                                              "timestamp": str(T0 + 7), "step": "3"})
        self.call("POST", "runs/log-batch", {"run_id": rid, "metrics": [
            {"key": "s", "value": 0.5, "timestamp": str(T0 + 8), "step": "4"}]})
        hist = self.history(rid, "s")["metrics"]
        self.assertEqual(hist, [{"key": "s", "value": 0.25, "timestamp": T0 + 7, "step": 3},
                                {"key": "s", "value": 0.5, "timestamp": T0 + 8, "step": 4}])

    def test_metric_history_pagination(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        points = [{"key": "loss", "value": 1.0 / (i + 1), "timestamp": T0 + i, "step": i}
                  for i in range(25)]
        self.call("POST", "runs/log-batch", {"run_id": rid, "metrics": points})
        full = self.history(rid, "loss", max_results=25000)
        self.assertEqual(full["metrics"], points)
        self.assertNotIn("next_page_token", full)
        seen, token, pages = [], None, 0
        while True:
            extra = {"max_results": 10}
            if token:
                extra["page_token"] = token
            page = self.history(rid, "loss", **extra)
            pages += 1
            self.assertLessEqual(len(page["metrics"]), 10)
            seen += page["metrics"]
            token = page.get("next_page_token")
            if not token:
                break
            self.assertLess(pages, 10, "pagination does not end")
        self.assertEqual(pages, 3)
        self.assertEqual(seen, points)
        self.assertEqual(self.history(rid, "no-such-metric"), {})

    def test_get_history_bulk_interval(self):
        runs = [self.new_run(self.eid)["info"]["run_id"] for _ in range(2)]
        for n, rid in enumerate(runs):
            self.call("POST", "runs/log-batch", {"run_id": rid, "metrics": [
                {"key": "acc", "value": n + i / 10, "timestamp": T0 + i, "step": i}
                for i in range(10)]})

        def bulk(**q):
            return self.call("GET", "metrics/get-history-bulk-interval",
                             params={"run_ids": runs, "metric_key": "acc", **q})

        def by_run(resp):
            out = {}
            for m in resp.get("metrics", []):
                self.assertEqual(m["key"], "acc")
                out.setdefault(m["run_id"], []).append((m["step"], m["value"], m["timestamp"]))
            return out

        got = by_run(bulk(max_results=100))
        self.assertEqual(set(got), set(runs))
        for n, rid in enumerate(runs):
            self.assertEqual(got[rid], [(i, n + i / 10, T0 + i) for i in range(10)])
        got = by_run(bulk(start_step=2, end_step=5, max_results=100))
        for n, rid in enumerate(runs):
            self.assertEqual([s for s, _, _ in got[rid]], [2, 3, 4, 5])
        got = by_run(bulk(max_results=4))
        for rid in runs:
            steps = [s for s, _, _ in got[rid]]
            self.assertEqual(steps, sorted(set(steps)))
            self.assertLessEqual(len(steps), 5)
            self.assertGreaterEqual(len(steps), 4)
            self.assertEqual((steps[0], steps[-1]), (0, 9))
        r = self.k.session.get(self.k.url + API + "metrics/get-history-bulk-interval",
                               params={"run_ids": ["%032x" % i for i in range(101)],
                                       "metric_key": "acc"})
        self.assertError(r, 400, "INVALID_PARAMETER_VALUE")

    def test_log_model(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        m1 = {"run_id": rid, "artifact_path": "model", "utc_time_created": "2026-01-01 00:00:00",
              "model_uuid": "0123456789abcdef0123456789abcdef",
              "flavors": {"python_function": {"loader_module": "mlflow.sklearn"}}}
        m2 = dict(m1, artifact_path="model2", model_uuid="fedcba9876543210fedcba9876543210")
        self.assertEqual(self.call("POST", "runs/log-model",
                                   {"run_id": rid, "model_json": json.dumps(m1)}), {})
        tags = self.as_map(self.get_run(rid)["data"]["tags"])
        self.assertEqual(json.loads(tags["mlflow.log-model.history"]), [m1])
        self.call("POST", "runs/log-model", {"run_id": rid, "model_json": json.dumps(m2)})
        tags = self.as_map(self.get_run(rid)["data"]["tags"])
        self.assertEqual(json.loads(tags["mlflow.log-model.history"]), [m1, m2])
        self.error("POST", "runs/log-model", {"run_id": rid, "model_json": "{not json"}, 400,
                   "INVALID_PARAMETER_VALUE")
        # MLflow requires artifact_path, flavors, utc_time_created and run_id
        self.error("POST", "runs/log-model",
                   {"run_id": rid, "model_json": json.dumps({"run_id": rid})}, 400,
                   "INVALID_PARAMETER_VALUE")
        tags = self.as_map(self.get_run(rid)["data"]["tags"])
        self.assertEqual(json.loads(tags["mlflow.log-model.history"]), [m1, m2])

    def test_log_inputs(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        ds = {"name": "train", "digest": "abc123", "source_type": "local",
              "source": '{"uri": "/data/train.csv"}', "schema": '{"cols": ["a"]}',
              "profile": '{"rows": 10}'}
        body = {"run_id": rid, "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": ds}]}
        self.assertEqual(self.call("POST", "runs/log-inputs", body), {})
        inputs = self.get_run(rid)["inputs"]["dataset_inputs"]
        self.assertEqual(len(inputs), 1)
        self.assertEqual(inputs[0]["dataset"], ds)
        self.assertEqual(self.as_map(inputs[0]["tags"]), {"mlflow.data.context": "training"})

    def test_log_batch_limits(self):
        rid = self.new_run(self.eid)["info"]["run_id"]

        def metrics(n, prefix="m"):
            return [{"key": f"{prefix}{i}", "value": i, "timestamp": T0, "step": 0}
                    for i in range(n)]

        def kv(n, prefix):
            return [{"key": f"{prefix}{i}", "value": "v"} for i in range(n)]

        too_much = [
            ("1001 metrics", {"metrics": metrics(1001)}),
            ("101 params", {"params": kv(101, "p")}),
            ("101 tags", {"tags": kv(101, "t")}),
            ("1001 in total", {"metrics": metrics(900), "params": kv(100, "p"),
                               "tags": kv(1, "t")}),
            ("metric key 251", {"metrics": [{"key": "k" * 251, "value": 1, "timestamp": T0}]}),
            ("param key 251", {"params": [{"key": "k" * 251, "value": "v"}]}),
            ("tag key 251", {"tags": [{"key": "k" * 251, "value": "v"}]}),
            ("param value 6001", {"params": [{"key": "big", "value": "v" * 6001}]}),
            ("tag value 8001", {"tags": [{"key": "big", "value": "v" * 8001}]}),
        ]
        for what, extra in too_much:
            with self.subTest(what):
                self.error("POST", "runs/log-batch", {"run_id": rid, **extra}, 400,
                           "INVALID_PARAMETER_VALUE")
        # nothing of the rejected batches was written
        data = self.get_run(rid)["data"]
        self.assertNotIn("metrics", data)
        self.assertNotIn("params", data)
        self.assertEqual(set(self.as_map(data.get("tags"))), {"mlflow.runName"})
        # the limits themselves are allowed
        ok = [
            ("1000 metrics", {"metrics": metrics(1000)}),
            ("100 params + 100 tags", {"params": kv(100, "p"), "tags": kv(100, "t")}),
            ("key 250", {"metrics": [{"key": "k" * 250, "value": 1, "timestamp": T0}],
                         "params": [{"key": "k" * 250, "value": "v"}],
                         "tags": [{"key": "k" * 250, "value": "v"}]}),
            ("param value 6000", {"params": [{"key": "big", "value": "v" * 6000}]}),
            ("tag value 8000", {"tags": [{"key": "big", "value": "v" * 8000}]}),
        ]
        for what, extra in ok:
            with self.subTest(what):
                self.call("POST", "runs/log-batch", {"run_id": rid, **extra})
        data = self.get_run(rid)["data"]
        self.assertEqual(len(data["metrics"]), 1001)
        self.assertEqual(len(data["params"]), 102)
        self.assertEqual(self.as_map(data["params"])["big"], "v" * 6000)
        self.assertEqual(self.as_map(data["tags"])["big"], "v" * 8000)

    def test_single_value_limits(self):
        rid = self.new_run(self.eid)["info"]["run_id"]
        self.error("POST", "runs/log-parameter", {"run_id": rid, "key": "p", "value": "v" * 6001},
                   400, "INVALID_PARAMETER_VALUE")
        self.error("POST", "runs/set-tag", {"run_id": rid, "key": "t", "value": "v" * 8001},
                   400, "INVALID_PARAMETER_VALUE")
        self.error("POST", "runs/log-metric",
                   {"run_id": rid, "key": "k" * 251, "value": 1, "timestamp": T0},
                   400, "INVALID_PARAMETER_VALUE")
        self.call("POST", "runs/log-parameter", {"run_id": rid, "key": "p", "value": "v" * 6000})
        self.call("POST", "runs/set-tag", {"run_id": rid, "key": "t", "value": "v" * 8000})


class SearchRunsTest(ApiTestCase):
    """One experiment with a few runs whose data covers every operator of the grammar."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s, url = cls.k.session, cls.k.url + API

        def post(path, body):
            r = s.post(url + path, json=body)
            assert r.status_code == 200, (path, body, r.text)
            return r.json()

        cls.eid = post("experiments/create", {"name": uniq("search")})["experiment_id"]
        cls.other_eid = post("experiments/create", {"name": uniq("search-other")})["experiment_id"]
        spec = {
            # name: (start offset, user, status, end, metrics, params, tags)
            "alpha-run": (1000, "alice", "FINISHED", 5000,
                          {"acc": 0.9, "loss": 0.1, "val.acc": 0.85},
                          {"lr": "0.1", "model": "cnn", "opt.name": "adam"},
                          {"team": "vision", "my key": "x y"}),
            "beta-run": (2000, "bob", "FAILED", 6000,
                         {"acc": 0.7, "loss": 0.3, "val.acc": 0.65},
                         {"lr": "0.01", "model": "rnn", "opt.name": "sgd"},
                         {"team": "nlp"}),
            "gamma-run": (3000, "alice", "RUNNING", None,
                          {"acc": 0.8},
                          {"lr": "0.001", "model": "CNN-large"},
                          {"team": "Vision"}),
            "delta": (4000, "carol", "KILLED", 7000, {}, {"model": "mlp"}, {}),
        }
        cls.ids = {}
        for name, (off, user, status, end, metrics, params, tags) in spec.items():
            run = post("runs/create", {"experiment_id": cls.eid, "start_time": T0 + off,
                                       "user_id": user, "run_name": name})["run"]
            rid = run["info"]["run_id"]
            cls.ids[name] = rid
            post("runs/log-batch", {
                "run_id": rid,
                "metrics": [{"key": k, "value": v, "timestamp": T0 + off, "step": 0}
                            for k, v in metrics.items()],
                "params": [{"key": k, "value": v} for k, v in params.items()],
                "tags": [{"key": k, "value": v} for k, v in tags.items()]})
            update = {"run_id": rid, "status": status}
            if end is not None:
                update["end_time"] = T0 + end
            post("runs/update", update)
        # a deleted run, and a run in another experiment
        rid = post("runs/create", {"experiment_id": cls.eid, "start_time": T0 + 500,
                                   "run_name": "deleted-run"})["run"]["info"]["run_id"]
        post("runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.95, "timestamp": T0})
        post("runs/delete", {"run_id": rid})
        cls.ids["deleted-run"] = rid
        cls.ids["elsewhere"] = post("runs/create", {"experiment_id": cls.other_eid,
                                                    "start_time": T0 + 100,
                                                    "run_name": "elsewhere"})["run"]["info"]["run_id"]
        post("runs/log-metric", {"run_id": cls.ids["elsewhere"], "key": "acc", "value": 0.5,
                                 "timestamp": T0})
        post("runs/log-inputs", {"run_id": cls.ids["alpha-run"], "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": "training"}],
             "dataset": {"name": "train-ds", "digest": "d1g3st", "source_type": "local",
                         "source": "{}"}}]})
        cls.names = {v: k for k, v in cls.ids.items()}

    def search(self, flt="", order_by=None, view="ACTIVE_ONLY", exps=None, max_results=1000,
               page_token=None):
        body = {"experiment_ids": exps or [self.eid], "filter": flt, "run_view_type": view,
                "max_results": max_results}
        if order_by is not None:
            body["order_by"] = order_by
        if page_token:
            body["page_token"] = page_token
        return self.call("POST", "runs/search", body)

    def names_for(self, flt="", **kw):
        return [self.names[r["info"]["run_id"]] for r in self.search(flt, **kw).get("runs", [])]

    def assertMatches(self, flt, expected):
        self.assertEqual(sorted(self.names_for(flt)), sorted(expected), flt)

    def test_default_order_is_start_time_desc(self):
        self.assertEqual(self.names_for(), ["delta", "gamma-run", "beta-run", "alpha-run"])

    def test_response_shape(self):
        run = self.search("attributes.run_name = 'alpha-run'")["runs"][0]
        self.assertEqual(run, self.get_run(self.ids["alpha-run"]))

    def test_metric_operators(self):
        cases = {
            "metrics.acc = 0.7": ["beta-run"],
            "metrics.acc != 0.7": ["alpha-run", "gamma-run"],
            "metrics.acc < 0.8": ["beta-run"],
            "metrics.acc <= 0.8": ["beta-run", "gamma-run"],
            "metrics.acc > 0.8": ["alpha-run"],
            "metrics.acc >= 0.8": ["alpha-run", "gamma-run"],
            "metrics.acc > -1": ["alpha-run", "beta-run", "gamma-run"],
            "metrics.loss >= 0.1": ["alpha-run", "beta-run"],
            "metric.acc = 0.9": ["alpha-run"],
            "metrics.acc > 1e-3": ["alpha-run", "beta-run", "gamma-run"],
        }
        for flt, expected in cases.items():
            with self.subTest(flt):
                self.assertMatches(flt, expected)

    def test_param_operators(self):
        cases = {
            "params.lr = '0.01'": ["beta-run"],
            "params.lr != '0.01'": ["alpha-run", "gamma-run"],
            "params.model LIKE 'c%'": ["alpha-run"],
            "params.model LIKE '%n%'": ["alpha-run", "beta-run"],
            "params.model ILIKE 'c%'": ["alpha-run", "gamma-run"],
            "params.model LIKE 'r_n'": ["beta-run"],
            "param.model = 'mlp'": ["delta"],
            "parameters.model = 'mlp'": ["delta"],
        }
        for flt, expected in cases.items():
            with self.subTest(flt):
                self.assertMatches(flt, expected)

    def test_tag_operators(self):
        cases = {
            "tags.team = 'vision'": ["alpha-run"],
            "tags.team != 'vision'": ["beta-run", "gamma-run"],
            "tags.team LIKE 'V%'": ["gamma-run"],
            "tags.team ILIKE 'vision'": ["alpha-run", "gamma-run"],
            "tag.team = 'nlp'": ["beta-run"],
            "tags.`mlflow.runName` = 'beta-run'": ["beta-run"],
            'tags."mlflow.runName" = \'beta-run\'': ["beta-run"],
        }
        for flt, expected in cases.items():
            with self.subTest(flt):
                self.assertMatches(flt, expected)

    def test_quoted_keys_with_dots_and_spaces(self):
        cases = {
            "params.`opt.name` = 'adam'": ["alpha-run"],
            'params."opt.name" = \'sgd\'': ["beta-run"],
            "tags.`my key` = 'x y'": ["alpha-run"],
            'tags."my key" LIKE \'x%\'': ["alpha-run"],
            "metrics.`val.acc` > 0.7": ["alpha-run"],
            'metrics."val.acc" < 0.7': ["beta-run"],
        }
        for flt, expected in cases.items():
            with self.subTest(flt):
                self.assertMatches(flt, expected)

    def test_attribute_operators(self):
        a, b = self.ids["alpha-run"], self.ids["gamma-run"]
        cases = {
            "attributes.run_name = 'beta-run'": ["beta-run"],
            "attributes.run_name != 'beta-run'": ["alpha-run", "gamma-run", "delta"],
            "attributes.run_name LIKE '%-run'": ["alpha-run", "beta-run", "gamma-run"],
            "attributes.run_name ILIKE 'ALPHA%'": ["alpha-run"],
            "attributes.run_name LIKE 'ALPHA%'": [],
            "attributes.status = 'FINISHED'": ["alpha-run"],
            "attributes.status IN ('FINISHED', 'FAILED')": ["alpha-run", "beta-run"],
            "attributes.status NOT IN ('RUNNING')": ["alpha-run", "beta-run", "delta"],
            "attributes.user_id = 'alice'": ["alpha-run", "gamma-run"],
            "attributes.user_id IN ('bob','carol')": ["beta-run", "delta"],
            f"attributes.run_id IN ('{a}', '{b}')": ["alpha-run", "gamma-run"],
            f"attributes.run_id NOT IN ('{a}')": ["beta-run", "gamma-run", "delta"],
            f"attributes.run_id = '{a}'": ["alpha-run"],
            f"attributes.artifact_uri LIKE '%{a}%'": ["alpha-run"],
            f"attributes.start_time >= {T0 + 2000}": ["beta-run", "gamma-run", "delta"],
            f"attributes.start_time < {T0 + 2000}": ["alpha-run"],
            f"attributes.created = {T0 + 3000}": ["gamma-run"],
            f"attributes.end_time > {T0 + 5000}": ["beta-run", "delta"],
            "attr.run_name = 'delta'": ["delta"],
            "run.run_name = 'delta'": ["delta"],
            "attribute.status = 'KILLED'": ["delta"],
        }
        for flt, expected in cases.items():
            with self.subTest(flt):
                self.assertMatches(flt, expected)

    def test_dataset_filter(self):
        self.assertMatches("datasets.name = 'train-ds'", ["alpha-run"])
        self.assertMatches("dataset.digest = 'd1g3st'", ["alpha-run"])
        self.assertMatches("datasets.context = 'training'", ["alpha-run"])
        self.assertMatches("datasets.name = 'nope'", [])

    def test_and(self):
        cases = {
            "metrics.acc > 0.6 AND params.model != 'rnn'": ["alpha-run", "gamma-run"],
            "metrics.acc > 0.6 and tags.team ILIKE 'vision' and attributes.status = 'RUNNING'":
                ["gamma-run"],
            "params.lr = '0.1' AND params.lr = '0.01'": [],
        }
        for flt, expected in cases.items():
            with self.subTest(flt):
                self.assertMatches(flt, expected)

    def test_order_by(self):
        cases = {
            "metrics.acc DESC": ["alpha-run", "gamma-run", "beta-run", "delta"],
            "metrics.acc ASC": ["beta-run", "gamma-run", "alpha-run", "delta"],
            "metrics.acc": ["beta-run", "gamma-run", "alpha-run", "delta"],
            "metrics.loss DESC": ["beta-run", "alpha-run", "delta", "gamma-run"],
            "params.lr ASC": ["gamma-run", "beta-run", "alpha-run", "delta"],
            "params.lr DESC": ["alpha-run", "beta-run", "gamma-run", "delta"],
            "attributes.start_time ASC": ["alpha-run", "beta-run", "gamma-run", "delta"],
            "attributes.run_name DESC": ["gamma-run", "delta", "beta-run", "alpha-run"],
            # byte order: "Vision" < "nlp" < "vision"
            "tags.team ASC": ["gamma-run", "beta-run", "alpha-run", "delta"],
            "metrics.`val.acc` DESC": ["alpha-run", "beta-run", "delta", "gamma-run"],
        }
        for order, expected in cases.items():
            with self.subTest(order):
                self.assertEqual(self.names_for(order_by=[order]), expected)
        # ties are broken by start_time DESC (alpha and gamma are both alice's)
        self.assertEqual(self.names_for(order_by=["attributes.user_id ASC"]),
                         ["gamma-run", "alpha-run", "beta-run", "delta"])
        self.assertEqual(self.names_for(order_by=["attributes.user_id DESC", "metrics.acc ASC"]),
                         ["delta", "beta-run", "gamma-run", "alpha-run"])

    def test_filter_and_order_together(self):
        self.assertEqual(
            self.names_for("attributes.run_name LIKE '%-run'", order_by=["metrics.acc DESC"]),
            ["alpha-run", "gamma-run", "beta-run"])

    def test_view_types(self):
        self.assertEqual(sorted(self.names_for(view="ACTIVE_ONLY")),
                         ["alpha-run", "beta-run", "delta", "gamma-run"])
        self.assertEqual(self.names_for(view="DELETED_ONLY"), ["deleted-run"])
        self.assertEqual(sorted(self.names_for(view="ALL")),
                         ["alpha-run", "beta-run", "deleted-run", "delta", "gamma-run"])
        self.assertEqual(self.names_for("metrics.acc > 0.92", view="ALL"), ["deleted-run"])
        self.assertEqual(self.names_for("metrics.acc > 0.92"), [])
        # run_view_type left out means ACTIVE_ONLY
        r = self.call("POST", "runs/search", {"experiment_ids": [self.eid]})
        self.assertEqual(len(r["runs"]), 4)

    def test_several_experiments(self):
        self.assertEqual(sorted(self.names_for(exps=[self.eid, self.other_eid])),
                         ["alpha-run", "beta-run", "delta", "elsewhere", "gamma-run"])
        self.assertEqual(self.names_for("metrics.acc < 0.6", exps=[self.eid, self.other_eid]),
                         ["elsewhere"])

    def test_empty_result_is_empty_object(self):
        self.assertEqual(self.search("metrics.acc > 100"), {})

    def test_pages_walk_every_run_once(self):
        for order in (None, ["metrics.acc DESC"], ["params.lr ASC"]):
            for size in (1, 2, 3, 4):
                with self.subTest(order=order, size=size):
                    seen, token, pages = [], None, 0
                    while True:
                        page = self.search(order_by=order, max_results=size, page_token=token)
                        pages += 1
                        runs = page.get("runs", [])
                        self.assertLessEqual(len(runs), size)
                        seen += [self.names[r["info"]["run_id"]] for r in runs]
                        token = page.get("next_page_token")
                        if not token:
                            break
                        self.assertLess(pages, 10, "pagination does not end")
                    full = self.names_for(order_by=order)
                    self.assertEqual(seen, full)
                    self.assertEqual(len(full), 4)
                    self.assertEqual(pages, -(-4 // size))

    def test_invalid_page_token(self):
        for token in ("garbage", "%%%", "eyJvZmZzZXQiOiAtMX0="):  # the last is {"offset": -1}
            with self.subTest(token=token):
                self.error("POST", "runs/search",
                           {"experiment_ids": [self.eid], "page_token": token},
                           400, "INVALID_PARAMETER_VALUE")

    def test_max_results_limit(self):
        self.error("POST", "runs/search", {"experiment_ids": [self.eid], "max_results": 50001},
                   400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(len(self.search(max_results=50000)["runs"]), 4)


class BadInputTest(ApiTestCase):
    """Every test here ends by checking the server still answers /health."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.k.session.post(cls.k.url + API + "experiments/create", json={"name": uniq("bad")})
        cls.eid = r.json()["experiment_id"]
        r = cls.k.session.post(cls.k.url + API + "runs/create",
                               json={"experiment_id": cls.eid, "start_time": T0})
        cls.rid = r.json()["run"]["info"]["run_id"]

    def tearDown(self):
        self.health()

    def raw(self, method, path, data, content_type="application/json"):
        return self.k.session.request(method, self.k.url + API + path, data=data,
                                      headers={"Content-Type": content_type})

    def assertBadRequest(self, r):
        self.assertEqual(r.status_code, 400, r.text)
        body = r.json()
        self.assertIn(body.get("error_code"),
                      ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST"), body)
        self.assertTrue(body.get("message"))

    def test_malformed_json(self):
        for data in ('{"name": ', '{name: "x"}', "not json at all", '{"name": "x"} trailing',
                     b'{"name": "\xff\xfe"}'):
            with self.subTest(data=data):
                self.assertBadRequest(self.raw("POST", "experiments/create", data))

    def test_body_is_not_an_object(self):
        for data in ('[{"name": "x"}]', '"just a string"', "42", "null"):
            with self.subTest(data=data):
                self.assertBadRequest(self.raw("POST", "experiments/create", data))
        self.assertBadRequest(self.raw("POST", "runs/log-batch", json.dumps([self.rid])))

    def test_wrong_types(self):
        rid = self.rid
        cases = [
            ("experiments/create", {"name": 123}),
            ("experiments/create", {"name": ["a"]}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": "abc", "timestamp": T0}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": "abc"}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": T0,
                                 "step": "x"}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": {"a": 1}, "timestamp": T0}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": [T0]}),
            ("runs/log-metric", {"run_id": rid, "key": 5, "value": 1, "timestamp": T0}),
            ("runs/create", {"experiment_id": self.eid, "start_time": "yesterday"}),
            ("runs/search", {"experiment_ids": [self.eid], "max_results": "ten"}),
            ("runs/log-batch", {"run_id": rid, "metrics": {"key": "m"}}),
            ("runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": "x",
                                                             "timestamp": T0}]}),
            ("experiments/search", {"max_results": "abc"}),
        ]
        for path, body in cases:
            with self.subTest(path=path, body=body):
                self.error("POST", path, body, 400, "INVALID_PARAMETER_VALUE")
        self.assertNotIn("metrics", self.get_run(rid)["data"])

    def test_missing_required_fields(self):
        rid = self.rid
        cases = [
            ("POST", "experiments/create", {}, "name"),
            ("GET", "experiments/get", {}, "experiment_id"),
            ("GET", "experiments/get-by-name", {}, "experiment_name"),
            ("POST", "experiments/delete", {}, "experiment_id"),
            ("POST", "experiments/set-experiment-tag", {"experiment_id": self.eid, "value": "v"},
             "key"),
            ("GET", "runs/get", {}, "run_id"),
            ("POST", "runs/log-metric", {"run_id": rid, "value": 1, "timestamp": T0}, "key"),
            ("POST", "runs/log-metric", {"run_id": rid, "key": "m", "timestamp": T0}, "value"),
            ("POST", "runs/log-metric", {"run_id": rid, "key": "m", "value": 1}, "timestamp"),
            ("POST", "runs/log-metric", {"key": "m", "value": 1, "timestamp": T0}, "run_id"),
            ("POST", "runs/log-parameter", {"run_id": rid, "value": "v"}, "key"),
            ("POST", "runs/set-tag", {"run_id": rid, "value": "v"}, "key"),
            ("POST", "runs/log-model", {"run_id": rid}, "model_json"),
            ("GET", "metrics/get-history", {"run_id": rid}, "metric_key"),
            ("POST", "registered-models/create", {}, "name"),
        ]
        for method, path, body, field in cases:
            with self.subTest(path=path, field=field):
                self.error(method, path, body, 400, "INVALID_PARAMETER_VALUE", f"'{field}'")

    def test_unknown_endpoint(self):
        for method, path in (("GET", "/api/2.0/mlflow/nope"),
                             ("POST", "/api/2.0/mlflow/runs/frobnicate"),
                             ("GET", "/api/2.0/nothing/here"),
                             ("POST", "/api/9.9/mlflow/runs/create")):
            with self.subTest(path=path):
                r = self.k.session.request(method, self.k.url + path, data="{}",
                                           headers={"Content-Type": "application/json"})
                self.assertError(r, 404, "ENDPOINT_NOT_FOUND")

    def test_oversized_body(self):
        """A body over 64 MiB, announced with Content-Length, answers 413."""
        limit = 64 * 1024 * 1024
        head = b'{"name": "'
        body = head + b"a" * (limit + 1 - len(head) - 2) + b'"}'
        self.assertEqual(len(body), limit + 1)
        status = send_and_read_status(self.k.port, "/api/2.0/mlflow/experiments/create", body)
        self.assertEqual(status, 413)
        self.assertNotIn("experiments", self.call("POST", "experiments/search",
                                                  {"filter": "name LIKE 'aaaaaaaa%'"}))
        self.experiment("after-oversize")

    def test_oversized_chunked_body(self):
        """The same body sent with Transfer-Encoding: chunked also answers 413."""
        limit = 64 * 1024 * 1024

        def chunks():
            yield b'{"name": "'
            left = limit + 1 - 12
            while left > 0:
                n = min(left, 1 << 20)
                left -= n
                yield b"a" * n
            yield b'"}'

        r = self.k.session.post(self.k.url + API + "experiments/create", data=chunks(),
                                headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 413, r.text[:300])
        # nothing was created, and a normal request right after works
        self.assertNotIn("experiments", self.call("POST", "experiments/search",
                                                  {"filter": "name LIKE 'aaaaaaaa%'"}))
        self.experiment("after-oversize")

    def test_invalid_filters(self):
        bad = [
            "metrics.acc >",
            "metrics.acc > 0.5 AND",
            "foo.bar = 1",
            "metrics.acc == 1",
            "metrics.acc <> 1",
            "metrics.acc = 'abc'",
            "params.lr > '0.1'",
            "metrics.acc = 1 OR metrics.acc = 2",
            "(metrics.acc > 1)",
            "tags.team = 'unterminated",
            "params.lr = 0.1",
            "attributes.status IN 'FINISHED'",
            "attributes.nope = 'x'",
            "tags.`unclosed = 'x'",
            "metrics.acc > 0.5 garbage",
            "= 'x'",
        ]
        for flt in bad:
            with self.subTest(filter=flt):
                self.error("POST", "runs/search", {"experiment_ids": [self.eid], "filter": flt},
                           400, "INVALID_PARAMETER_VALUE", "position")
        for order in ("metrics.acc SIDEWAYS", "nope.acc DESC", "metrics.acc DESC extra"):
            with self.subTest(order_by=order):
                self.error("POST", "runs/search",
                           {"experiment_ids": [self.eid], "order_by": [order]},
                           400, "INVALID_PARAMETER_VALUE")

    def test_sql_looking_strings_are_data(self):
        evil = "x'; DROP TABLE runs; --"
        evil2 = 'a" OR 1=1; DELETE FROM experiments; --'
        eid = self.call("POST", "experiments/create", {"name": evil})["experiment_id"]
        e = self.call("GET", "experiments/get-by-name", {"experiment_name": evil})["experiment"]
        self.assertEqual((e["experiment_id"], e["name"]), (eid, evil))
        rid = self.new_run(eid, run_name=evil2)["info"]["run_id"]
        self.call("POST", "runs/set-tag", {"run_id": rid, "key": "note", "value": evil})
        self.call("POST", "runs/log-parameter", {"run_id": rid, "key": "p", "value": evil2})
        run = self.get_run(rid)
        self.assertEqual(run["info"]["run_name"], evil2)
        self.assertEqual(self.as_map(run["data"]["tags"])["note"], evil)
        self.assertEqual(self.as_map(run["data"]["params"])["p"], evil2)
        found = self.call("POST", "runs/search", {"experiment_ids": [eid],
                                                  "filter": "tags.note LIKE '%DROP TABLE%'"})
        self.assertEqual([r["info"]["run_id"] for r in found["runs"]], [rid])
        for flt in ("tags.note = 'x' OR '1'='1'",
                    "params.lr = '0.1'; DROP TABLE runs; --",
                    "tags.note = ''; DELETE FROM runs; --'"):
            with self.subTest(filter=flt):
                self.error("POST", "runs/search", {"experiment_ids": [eid], "filter": flt},
                           400, "INVALID_PARAMETER_VALUE")
        nothing = self.call("POST", "runs/search", {
            "experiment_ids": [eid], "filter": "attributes.run_name = 'a\" OR 1=1 --'"})
        self.assertEqual(nothing, {})
        # everything is still there
        self.assertEqual(self.get_run(rid)["info"]["run_id"], rid)
        self.assertEqual(self.get_run(self.rid)["info"]["run_id"], self.rid)
        self.assertEqual(self.call("GET", "experiments/get",
                                   {"experiment_id": "0"})["experiment"]["name"], "Default")
        r = self.call("POST", "experiments/search", {"filter": "name LIKE '%DROP TABLE%'"})
        self.assertEqual([x["name"] for x in r["experiments"]], [evil])


def send_and_read_status(port, path, body):
    """POSTs body over a raw socket and returns the HTTP status of the answer.

    A server may answer 413 and close before the client has sent everything, so
    write errors are tolerated and the answer is read afterwards.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   "Connection: close\r\n\r\n").encode())
        try:
            view = memoryview(body)
            for off in range(0, len(body), 1 << 20):
                s.sendall(view[off:off + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if not m:
        raise AssertionError(f"no HTTP answer to the oversized body: {data[:200]!r}")
    return int(m.group(1))


if __name__ == "__main__":
    unittest.main()
