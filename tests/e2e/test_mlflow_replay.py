"""Replays the recorded session of the stock mlflow 2.17.2 client against keel.

tests/data/mlflow-traffic.jsonl holds every request the real client sent to the
real MLflow 2.17.2 server during one session, with the server's answers. This
test sends the same requests, in order, to a fresh keel server and checks every
response the way the client reads it:

* the same HTTP status and, for errors, the same error_code (and a message that
  names the same resource; verbatim where the contract quotes the text);
* every key of the recorded JSON body is present, recursively (keel may add
  fields, it must not miss one); lists have the same length;
* equal values, after mapping the recording's ids to the ones keel generated:
  experiment ids (decimal strings), run ids (32 lowercase hex) and the generated
  run_name (adjective-animal-NNN) are learned from keel's answers and checked by
  shape, then substituted everywhere (paths, query strings, bodies, artifact URIs,
  filter strings, tag values);
* timestamps the client sent (start_time, metric timestamps, ...) must come back
  exactly; timestamps the server generates are checked by shape (int ms) and for
  consistency (a value the recording repeats must be repeated by keel too);
* artifact uploads were reduced to their size in the recording: the test uploads
  that many deterministic bytes and checks every download returns them exactly.

Run: /usr/bin/python3 tests/e2e/test_mlflow_replay.py
"""
import hashlib
import json
import os
import random
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from keel_harness import REPO, KeelServer  # noqa: E402

TRAFFIC = os.path.join(REPO, "tests", "data", "mlflow-traffic.jsonl")
CONTRACT_COPY = "/work/shared/contracts/mlflow-traffic.jsonl"
TRAFFIC_SHA256 = "f0ea0f916fd7b82bff091543d68cd35a00a2314b640185fcce22bfb1d1e5dc82"

EXPERIMENT_ID_RE = re.compile(r"^(0|[1-9][0-9]*)$")
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
RUN_NAME_RE = re.compile(r"^[a-z]+-[a-z]+-\d+$")
# Response fields holding epoch-millisecond timestamps.
TIMESTAMP_KEYS = {"creation_time", "last_update_time", "creation_timestamp",
                  "last_updated_timestamp", "start_time", "end_time", "timestamp"}
# Messages the contract quotes verbatim (clients match on them).
VERBATIM_MESSAGES = [re.compile(r"^Registered model alias \S+ not found\.$"),
                     re.compile(r"^Run with id=\S+ not found$")]
# Artifact paths inside the recorded experiment/run layout: "<exp>/<run>/..."
EXP_BEFORE_RUN_RE = re.compile(r"(?:^|(?<=/))(\d+)(?=/[0-9a-f]{32}(?:/|$))")
EXP_IN_URI_RE = re.compile(r"(?<=mlflow-artifacts:/)(\d+)(?=/|$)")


def load_traffic():
    with open(TRAFFIC) as f:
        return [json.loads(line) for line in f if line.strip()]


def endpoint_of(rec):
    path = rec["path"]
    prefix = "/api/2.0/mlflow-artifacts/artifacts/"
    if path.startswith(prefix):
        path = prefix + "{path}"
    return rec["method"], path


def media_type(content_type):
    return (content_type or "").split(";")[0].strip().lower()


# What the recorded client uploaded as MLmodel (an sklearn model): the traffic
# keeps only sizes, and keel reads MLmodel files at registration.
SKLEARN_MLMODEL = (
    "artifact_path: model\n"
    "flavors:\n"
    "  python_function:\n"
    "    env: {conda: conda.yaml, virtualenv: python_env.yaml}\n"
    "    loader_module: mlflow.sklearn\n"
    "    model_path: model.pkl\n"
    "    predict_fn: predict\n"
    "    python_version: 3.11.2\n"
    "  sklearn:\n"
    "    code: null\n"
    "    pickled_model: model.pkl\n"
    "    serialization_format: cloudpickle\n"
    "    sklearn_version: 1.2.1\n"
    "mlflow_version: 2.17.2\n")


def artifact_bytes(seed, size, content_type):
    """Deterministic content of `size` bytes; printable text for text/* types;
    a valid sklearn MLmodel (padded with a YAML comment) for MLmodel files."""
    if seed.endswith("/MLmodel") and size > len(SKLEARN_MLMODEL) + 2:
        pad = size - len(SKLEARN_MLMODEL) - 2
        return (SKLEARN_MLMODEL + "#" + "x" * pad + "\n").encode()
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    if content_type.startswith("text/"):
        alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 =:-_.\n"
        return bytes(rng.choice(alphabet) for _ in range(size))
    return rng.randbytes(size)


def client_sent_ints(records):
    """Every integer that appears in a recorded request (timestamps the client chose)."""
    out = set()

    def walk(v):
        if isinstance(v, bool):
            return
        if isinstance(v, int):
            out.add(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for rec in records:
        if isinstance(rec.get("req"), dict) and "_bytes" not in rec["req"]:
            walk(rec["req"])
    return out


class Replayer:
    """Maps recorded ids to keel's and compares recorded answers with keel's."""

    def __init__(self, server, records):
        self.k = server
        self.records = records
        self.client_ints = client_sent_ints(records)
        self.exp_map = {"0": "0"}   # recorded experiment id -> keel's
        self.run_map = {}           # recorded run id -> keel's
        self.name_map = {}          # recorded generated run name -> keel's
        self.ts_map = {}            # recorded server timestamp -> keel's
        self.uploads = {}           # keel artifact path -> bytes uploaded
        self.fields_checked = 0
        self.bytes_checked = 0

    # ---- id mapping ---------------------------------------------------
    def map_str(self, s, key=None):
        if key in ("experiment_id", "experiment_ids") and s in self.exp_map:
            return self.exp_map[s]
        s = EXP_BEFORE_RUN_RE.sub(lambda m: self.exp_map.get(m.group(1), m.group(1)), s)
        s = EXP_IN_URI_RE.sub(lambda m: self.exp_map.get(m.group(1), m.group(1)), s)
        for old, new in self.run_map.items():
            s = s.replace(old, new)
        for old, new in self.name_map.items():
            s = s.replace(old, new)
        return s

    def map_value(self, v, key=None):
        if isinstance(v, str):
            return self.map_str(v, key)
        if isinstance(v, list):
            return [self.map_value(x, key) for x in v]
        if isinstance(v, dict):
            return {k: self.map_value(x, k) for k, x in v.items()}
        return v

    def learn(self, rec, act, key=None):
        """Learns ids keel generated, from the places the recording has them."""
        if isinstance(rec, dict) and isinstance(act, dict):
            for k, v in rec.items():
                if k in act:
                    self.learn(v, act[k], k)
        elif isinstance(rec, list) and isinstance(act, list):
            for r, a in zip(rec, act):
                self.learn(r, a, key)
        elif isinstance(rec, str) and isinstance(act, str):
            if key == "experiment_id" and rec not in self.exp_map and EXPERIMENT_ID_RE.match(act):
                self.exp_map[rec] = act
            elif key in ("run_id", "run_uuid") and RUN_ID_RE.match(rec) \
                    and rec not in self.run_map and RUN_ID_RE.match(act):
                self.run_map[rec] = act
            elif key == "run_name" and rec not in self.name_map and RUN_NAME_RE.match(rec) \
                    and RUN_NAME_RE.match(act):
                self.name_map[rec] = act

    # ---- comparison ---------------------------------------------------
    def compare(self, rec, act, path, errors, key=None):
        where = path or "<body>"
        if isinstance(rec, dict):
            if not isinstance(act, dict):
                errors.append(f"{where}: expected an object, keel sent {act!r:.200}")
                return
            for k, v in rec.items():
                sub = f"{path}.{k}" if path else k
                if k not in act:
                    errors.append(f"{sub}: missing (recorded {v!r:.200})")
                    continue
                self.compare(v, act[k], sub, errors, k)
            return
        if isinstance(rec, list):
            if not isinstance(act, list):
                errors.append(f"{where}: expected a list, keel sent {act!r:.200}")
                return
            self.fields_checked += 1
            if len(rec) != len(act):
                errors.append(f"{where}: {len(act)} elements, recording has {len(rec)}: "
                              f"keel {act!r:.600} / recorded {self.map_value(rec)!r:.600}")
                return
            ident = self.identity_key(rec)
            if ident is None:
                for i, (r, a) in enumerate(zip(rec, act)):
                    self.compare(r, a, f"{where}[{i}]", errors, key)
                return
            by_id = {a.get(ident): a for a in act if isinstance(a, dict)}
            for r in rec:
                want = self.map_str(r[ident], ident) if isinstance(r[ident], str) else r[ident]
                if want not in by_id:
                    errors.append(f"{where}: no element with {ident}={want!r}; keel sent "
                                  f"{[a.get(ident) if isinstance(a, dict) else a for a in act]!r}")
                    continue
                self.compare(r, by_id[want], f"{where}[{ident}={want}]", errors, key)
            return
        self.fields_checked += 1
        if key in TIMESTAMP_KEYS and isinstance(rec, int) and not isinstance(rec, bool):
            self.compare_timestamp(rec, act, where, errors)
            return
        if isinstance(rec, bool) or rec is None:
            if act is not rec:
                errors.append(f"{where}: keel {act!r}, recorded {rec!r}")
            return
        if isinstance(rec, (int, float)):
            if isinstance(act, bool) or not isinstance(act, (int, float)) or act != rec:
                errors.append(f"{where}: keel {act!r}, recorded {rec!r}")
            return
        # strings
        if not isinstance(act, str):
            errors.append(f"{where}: expected a string, keel sent {act!r:.200}")
            return
        shape = {"experiment_id": EXPERIMENT_ID_RE, "run_id": RUN_ID_RE,
                 "run_uuid": RUN_ID_RE, "run_name": RUN_NAME_RE}.get(key)
        if shape is not None and shape.match(rec) and not shape.match(act):
            errors.append(f"{where}: {act!r} does not look like a {key}")
            return
        want = self.map_str(rec, key)
        if want == act:
            return
        if want[:1] in "[{":
            try:
                if json.loads(want) == json.loads(act):
                    return  # the same JSON document; formatting is not a field
            except ValueError:
                pass
        errors.append(f"{where}: keel {act!r:.400}, expected {want!r:.400}")

    def identity_key(self, rec_list):
        """Lists the client turns into maps (tags, params, files, aliases) are unordered."""
        if not rec_list or not all(isinstance(r, dict) for r in rec_list):
            return None
        for ident in ("key", "path", "alias"):
            vals = [r.get(ident) for r in rec_list]
            if all(v is not None for v in vals) and len(set(vals)) == len(vals):
                return ident
        return None

    def compare_timestamp(self, rec, act, where, errors):
        if isinstance(act, bool) or not isinstance(act, int):
            errors.append(f"{where}: timestamp {act!r} is not an integer")
            return
        if rec in self.client_ints:
            if act != rec:
                errors.append(f"{where}: keel {act}, the client sent {rec}")
            return
        if not (10**12 <= act < 10**13):
            errors.append(f"{where}: {act} is not a timestamp in milliseconds")
            return
        seen = self.ts_map.setdefault(rec, act)
        if seen != act:
            errors.append(f"{where}: keel {act}, but answered {seen} where the recording "
                          f"has the same value {rec}")

    def compare_error(self, rec_req_values, rec, act, errors):
        if not isinstance(act, dict):
            errors.append(f"error body is not a JSON object: {act!r:.300}")
            return
        self.fields_checked += 2
        if act.get("error_code") != rec["error_code"]:
            errors.append(f"error_code: keel {act.get('error_code')!r}, "
                          f"recorded {rec['error_code']!r}")
        msg = act.get("message")
        if not isinstance(msg, str) or not msg:
            errors.append(f"message: missing or empty ({msg!r})")
            return
        want = self.map_str(rec["message"])
        if any(p.match(rec["message"]) for p in VERBATIM_MESSAGES):
            if msg != want:
                errors.append(f"message: keel {msg!r}, MLflow {want!r}")
            return
        # Otherwise: it must name every request value the recorded message names.
        for v in rec_req_values:
            if re.search(r"(?<![\w-])" + re.escape(v) + r"(?![\w-])", rec["message"]):
                mv = self.map_str(v)
                if not re.search(r"(?<![\w-])" + re.escape(mv) + r"(?![\w-])", msg):
                    errors.append(f"message: {msg!r} does not name {mv!r} "
                                  f"(MLflow: {want!r})")
        for k in rec:
            if k not in ("error_code", "message") and k not in act:
                errors.append(f"{k}: missing in error body")

    # ---- one request ----------------------------------------------------
    def replay(self, i, rec):
        """Sends record i; returns a list of mismatch descriptions."""
        errors = []
        method = rec["method"]
        path = self.map_str(rec["path"])
        query = {k: [self.map_str(v, k) for v in vs] for k, vs in (rec.get("query") or {}).items()}
        headers = {"User-Agent": rec.get("user_agent") or "mlflow-python-client/2.17.2"}
        if rec.get("req_content_type"):
            headers["Content-Type"] = rec["req_content_type"]
        data = None
        req = rec.get("req")
        if isinstance(req, dict) and "_bytes" in req:
            data = artifact_bytes(rec["path"], req["_bytes"], req["_content_type"])
            art = path[len("/api/2.0/mlflow-artifacts/artifacts/"):]
            self.uploads[art] = data
        elif req is not None:
            data = json.dumps(self.map_value(req))
        r = self.k.session.request(method, self.k.url + path, params=query or None, data=data,
                                   headers=headers, timeout=60)
        self.fields_checked += 1
        if r.status_code != rec["status"]:
            errors.append(f"HTTP status: keel {r.status_code}, recorded {rec['status']}: "
                          f"{r.text[:500]}")
            if rec["status"] != 200 and r.status_code != 200:
                try:  # still report whether the error body itself is right
                    values = [v for vs in (rec.get("query") or {}).values() for v in vs]
                    self.compare_error(values, rec["resp"], r.json(), errors)
                except ValueError:
                    errors.append(f"error body is not JSON: {r.text[:300]!r}")
            return errors
        resp = rec["resp"]
        if isinstance(resp, dict) and "_bytes" in resp:  # artifact download
            art = path[len("/api/2.0/mlflow-artifacts/artifacts/"):]
            expected = self.uploads.get(art)
            self.fields_checked += 2
            if expected is None:
                errors.append(f"test bug: no upload recorded for {art}")
            elif r.content != expected:
                errors.append(f"download of {art}: {len(r.content)} bytes differ from the "
                              f"{len(expected)} uploaded")
            else:
                self.bytes_checked += len(r.content)
            if len(r.content) != resp["_bytes"]:
                errors.append(f"download size {len(r.content)}, recorded {resp['_bytes']}")
            if media_type(r.headers.get("Content-Type")) != media_type(rec["resp_content_type"]):
                errors.append(f"Content-Type {r.headers.get('Content-Type')!r}, "
                              f"recorded {rec['resp_content_type']!r}")
            return errors
        self.fields_checked += 1
        if media_type(r.headers.get("Content-Type")) != media_type(rec["resp_content_type"]):
            errors.append(f"Content-Type {r.headers.get('Content-Type')!r}, "
                          f"recorded {rec['resp_content_type']!r}")
        try:
            body = r.json()
        except ValueError:
            errors.append(f"response is not JSON: {r.text[:300]!r}")
            return errors
        if not isinstance(body, dict):
            errors.append(f"response is not a JSON object: {r.text[:300]!r}")
            return errors
        if rec["status"] != 200:
            values = [v for vs in (rec.get("query") or {}).values() for v in vs]
            if isinstance(req, dict):
                values += [v for v in req.values() if isinstance(v, str)]
            self.compare_error(values, resp, body, errors)
            return errors
        self.learn(resp, body)
        self.compare(resp, body, "", errors)
        return errors


class MlflowReplayTest(unittest.TestCase):
    def test_recording_is_the_contract(self):
        with open(TRAFFIC, "rb") as f:
            data = f.read()
        self.assertEqual(hashlib.sha256(data).hexdigest(), TRAFFIC_SHA256)
        if os.path.exists(CONTRACT_COPY):
            with open(CONTRACT_COPY, "rb") as f:
                self.assertEqual(data, f.read(), "tests/data copy differs from the contract")
        records = load_traffic()
        self.assertEqual(len(records), 79)
        self.assertEqual(len({endpoint_of(r) for r in records}), 27)

    def test_replay_recorded_session(self):
        records = load_traffic()
        failed = []
        with KeelServer() as k:
            rp = Replayer(k, records)
            for i, rec in enumerate(records):
                with self.subTest(request=i, call=f"{rec['method']} {rec['path']}"):
                    errors = rp.replay(i, rec)
                    if errors:
                        failed.append(i)
                    self.assertEqual(errors, [], f"request #{i} {rec['method']} {rec['path']}")
            # The server survived the session and still answers.
            self.assertEqual(k.session.get(k.url + "/health").status_code, 200)
            endpoints = {endpoint_of(r) for r in records}
            print(f"\nmlflow replay: {len(records)} requests to {len(endpoints)} endpoints, "
                  f"{rp.fields_checked} response fields and {rp.bytes_checked} artifact bytes "
                  f"checked, {len(failed)} requests mismatched"
                  + (f" (#{', #'.join(map(str, failed))})" if failed else ""),
                  file=sys.stderr)
            # The ids were really learned (otherwise nothing was mapped).
            self.assertEqual(len(rp.run_map), 1, rp.run_map)
            self.assertIn("1", rp.exp_map)


if __name__ == "__main__":
    unittest.main()
