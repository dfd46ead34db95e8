#!/usr/bin/env python3
"""keel tracking server vs the MLflow 2.17.2 tracking server, same client program.

Starts a Release keel server on a loopback port (fresh data dir), runs the
peer's client program ../shared/peers/mlflow/mlflow_bench.py against it
(plain `requests`, one keep-alive session, one thread: the same program that
measured MLflow), then measures run search again without the client's JSON
decoding (bytes received), and prints each figure beside MLflow's with the
ratio.

MLflow's server comes from PyPI and cannot be installed on these machines, so
its side of the comparison is the figures recorded with the same program on a
machine of this kind (../shared/peers/mlflow/README.md, run 1 and run 2; the
better of the two is used, which favours MLflow).

    /usr/bin/python3 bench/tracking_bench.py [--binary build/keel] [--repeats 3] [--json out.json]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEER = os.path.join(os.environ.get("KEEL_SHARED_DIR", os.path.join(REPO, "..", "shared")),
                    "peers", "mlflow", "mlflow_bench.py")

# ../shared/peers/mlflow/README.md: best of run 1 / run 2 for MLflow.
MLFLOW = {
    "log_metric_calls_per_s": 178.0,
    "log_batch_metrics_per_s": 14900.0,
    "search_no_filter_ms": 565.0,
    "search_filter_ms": 84.0,
    "search_order_by_ms": 611.0,
    "search_paged_total_ms": 441.0,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_keel(binary, data):
    port = free_port()
    log = open(os.path.join(data, "server.log"), "w")
    proc = subprocess.Popen([binary, "server", "--port", str(port), "--store-uri",
                             "sqlite:///" + os.path.join(data, "keel.db").lstrip("/"),
                             "--artifact-root", os.path.join(data, "artifacts"), "--workers", "2"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("keel did not start")


def raw_search_ms(url, exp_id, repeats=20):
    """Search latency up to the last byte received, without decoding the JSON."""
    s = requests.Session()
    body = json.dumps({"experiment_ids": [exp_id], "max_results": 1000})
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = s.post(url + "/api/2.0/mlflow/runs/search", data=body,
                   headers={"Content-Type": "application/json"})
        _ = r.content
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    return statistics.median(out), len(r.content)


def client_floors(url, calls=2000, batches=20):
    """What the client itself costs: the same requests as mlflow_bench.py, sent for
    an unknown run so the server answers 404 after parsing the body and one
    lookup. No server can answer the real calls faster than this from this client."""
    import random
    s = requests.Session()
    s.headers["Content-Type"] = "application/json"
    rnd = random.Random(0)
    api = url + "/api/2.0/mlflow"
    t0 = time.perf_counter()
    for i in range(calls):
        s.post(api + "/runs/log-metric", data=json.dumps(
            {"run_id": "0" * 32, "key": "loss", "value": rnd.random(),
             "timestamp": int(time.time() * 1000), "step": i}))
    metric_floor = calls / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for j in range(batches):
        ts = int(time.time() * 1000)
        metrics = [{"key": f"m{k % 10}", "value": rnd.random(), "timestamp": ts,
                    "step": j * 100 + k // 10} for k in range(1000)]
        s.post(api + "/runs/log-batch", data=json.dumps({"run_id": "0" * 32, "metrics": metrics}))
    batch_floor = batches * 1000 / (time.perf_counter() - t0)
    return metric_floor, batch_floor


def json_decode_ms(url, exp_id, repeats=10):
    body = requests.post(url + "/api/2.0/mlflow/runs/search",
                         json={"experiment_ids": [exp_id], "max_results": 1000}).content
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        json.loads(body)
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "keel"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    results = []
    for i in range(a.repeats):
        data = tempfile.mkdtemp(prefix="keel-bench-")
        proc, url = start_keel(a.binary, data)
        try:
            out = os.path.join(data, "peer.json")
            subprocess.run(["/usr/bin/python3", PEER, "--uri", url, "--json", out], check=True,
                           stdout=subprocess.DEVNULL)
            r = json.load(open(out))
            exps = requests.post(url + "/api/2.0/mlflow/experiments/search",
                                 json={"max_results": 10, "filter": "name LIKE 'bench-search-%'"}).json()
            exp_id = exps["experiments"][0]["experiment_id"]
            raw_ms, size = raw_search_ms(url, exp_id)
            metric_floor, batch_floor = client_floors(url)
            decode_ms = json_decode_ms(url, exp_id)
            results.append({
                "log_metric_calls_per_s": r["log_metric"]["calls_per_s"],
                "log_batch_metrics_per_s": r["log_batch"]["metrics_per_s"],
                "search_no_filter_ms": r["search"]["no_filter_max1000"]["median_ms"],
                "search_filter_ms": r["search"]["filter_metric_param"]["median_ms"],
                "search_order_by_ms": r["search"]["order_by_metric_desc"]["median_ms"],
                "search_paged_total_ms": r["search"]["paged_100_per_page_total"]["median_ms"],
                "search_no_filter_bytes_ms": raw_ms,
                "search_response_bytes": size,
                "client_floor_log_metric_calls_per_s": metric_floor,
                "client_floor_log_batch_metrics_per_s": batch_floor,
                "client_json_decode_search_ms": decode_ms,
            })
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(data, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"keel vs MLflow 2.17.2 (same client program; median of {a.repeats} keel runs)")
    print(f"{'measure':40} {'keel':>12} {'MLflow':>12} {'ratio':>8}")
    for k, mv in MLFLOW.items():
        kv = med[k]
        ratio = kv / mv if k.endswith("per_s") else mv / kv
        print(f"{k:40} {kv:12.1f} {mv:12.1f} {ratio:7.1f}x")
    print(f"{'search_no_filter_bytes_ms (no JSON decode)':40} {med['search_no_filter_bytes_ms']:12.1f}"
          f"  ({med['search_response_bytes']} bytes)")
    print("client ceilings (same requests answered 404 for an unknown run; JSON decode alone):")
    for k in ("client_floor_log_metric_calls_per_s", "client_floor_log_batch_metrics_per_s",
              "client_json_decode_search_ms"):
        print(f"  {k:38} {med[k]:12.1f}")
    if a.json:
        json.dump({"keel_runs": results, "keel_median": med, "mlflow": MLFLOW}, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
