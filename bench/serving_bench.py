#!/usr/bin/python3
"""keel's real-time serving against the serving peers, in one run, with wrk.

  /usr/bin/python3 bench/serving_bench.py [--binary build/keel] [--duration 10] [--skip-peers]
                                          [--store postgresql://...]   (default: a SQLite file)

1. The peers' train.py makes the models and the raw sample request (once, into
   $PEERS_ARTIFACTS, default $TMPDIR/keel-peers-serving).
2. keel trains the same model shape on the same data (XGBoost, 400 trees, depth
   6, learning rate 0.05, hist) with `keel train`, registers it as churn with
   output name churn_probability and points churn@champion at it.
3. `keel serve churn@champion` (2 I/O threads, and 1) is loaded with wrk through the
   peers' own harness (bench_serving.measure: same wrk script, same body,
   keep-alive, -t1 -c1 / -t2 -cC, CPU accounting), with the prediction log off
   and on (default interval durability), at concurrency 1, 16 and 64; and GET /ping
   at c=16 on the same server as the HTTP floor (transport + loopback TCP, no model).
4. /invocations with a 1000-row dataframe_split body, rows/s.
5. The peers themselves (seed = the chapter's FastAPI + sklearn server, xgb =
   FastAPI + XGBoost) through bench_serving.py in the same run.
Prints a table with ratios and writes everything to $PEERS_ARTIFACTS/keel_serving.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = (ROOT / ".." / "shared" / "peers" / "serving").resolve()
DATA = (ROOT / ".." / "shared" / "data" / "mlc_churn.csv").resolve()
ART = Path(os.environ.get("PEERS_ARTIFACTS", Path(tempfile.gettempdir()) / "keel-peers-serving"))
os.environ["PEERS_ARTIFACTS"] = str(ART)
PY = "/usr/bin/python3"
sys.path.insert(0, str(PEERS))
import bench_serving as peer  # noqa: E402  (the peers' harness: run_wrk, measure, stop)


STORE = None  # --store: the store URI (a new, empty database), else a SQLite file in data_dir


def store_uri(data_dir):
    return STORE or "sqlite:///" + str(data_dir / "keel.db").lstrip("/")


def keel(binary, data_dir, *args, **kw):
    store = store_uri(data_dir)
    cmd = [binary, "--store-uri", store, "--artifact-root", str(data_dir / "artifacts"), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def start_serve(binary, data_dir, port, extra):
    store = store_uri(data_dir)
    cmd = [binary, "--store-uri", store, "--artifact-root", str(data_dir / "artifacts"), "serve",
           "churn@champion", "--port", str(port), *extra]
    log = open(data_dir / f"serve-{port}.log", "w")
    srv = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            return srv, peer.post(port)
        except OSError:
            if srv.poll() is not None:
                raise SystemExit("keel serve exited: " + (data_dir / f"serve-{port}.log").read_text())
            time.sleep(0.1)
    raise SystemExit("keel serve did not start")


def invocations_body(n):
    import pandas as pd
    df = pd.read_csv(DATA).drop(columns=["churn"]).sample(n, replace=True, random_state=1)
    return {"dataframe_split": {"columns": list(df.columns),
                                "data": json.loads(df.to_json(orient="values"))}}


def run_wrk(url, body_file, threads, conns, duration):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "10s",
           "-s", str(PEERS / "wrk_post.lua"), url]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "WRK_BODY": str(body_file)}).stdout
    line = [l for l in out.splitlines() if l.startswith("WRK_JSON ")]
    if not line:
        raise SystemExit("wrk produced no summary:\n" + out)
    return json.loads(line[0][9:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "build" / "keel"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--skip-peers", action="store_true", help="keel only (no ratios)")
    ap.add_argument("--store", help="store URI of a new, empty database (e.g. postgresql://...)")
    a = ap.parse_args()
    global STORE
    STORE = a.store
    ART.mkdir(parents=True, exist_ok=True)
    (ART / "wrk").mkdir(exist_ok=True)
    if not (ART / "model.joblib").exists() or not (ART / "sample_expected.json").exists():
        subprocess.run([PY, "train.py"], cwd=PEERS, check=True)
    expected = json.loads((ART / "sample_expected.json").read_text())
    sample = json.loads((ART / "sample_request.json").read_text())

    data_dir = Path(tempfile.mkdtemp(prefix="keel-serving-bench-"))
    results = {"keel": [], "invocations": None, "peers": None, "ping_c16_rps": None}
    try:
        print("== keel train (400 trees, depth 6, lr 0.05, hist)", flush=True)
        keel(a.binary, data_dir, "train", "--data", str(DATA), "--target", "churn",
             "--param", "n_estimators=400", "--param", "max_depth=6",
             "--param", "learning_rate=0.05", "--param", "tree_method=hist",
             "--register", "churn", "--output-name", "churn_probability", cwd=data_dir)
        keel(a.binary, data_dir, "models", "alias", "churn@champion", "1")
        port = 18300
        configs = (("keel", ["--workers", "2", "--no-prediction-log"]),
                   ("keel+log", ["--workers", "2"]),
                   ("keel-w1", ["--workers", "1", "--no-prediction-log"]),
                   ("keel+log-w1", ["--workers", "1"]))
        for label, extra in configs:
            port += 1
            srv, resp = start_serve(a.binary, data_dir, port, extra)
            print(f"== {label}: {resp}  (peers' xgboost model: {expected['xgboost']:.4f})",
                  flush=True)
            try:
                for c in (1, 16, 64):
                    th = 1 if c == 1 else 2
                    peer.run_wrk(port, th, c, 3)  # warm-up
                    r = peer.measure(srv, port, label, int(extra[1]), th, c, a.duration)
                    results["keel"].append(r)
                if label == "keel":
                    # The HTTP floor: GET /ping through the same server (no body, no model),
                    # what the transport and loopback TCP cost on this machine.
                    cmd = ["wrk", "-t2", "-c16", f"-d{a.duration}s", "--latency",
                           f"http://127.0.0.1:{port}/ping"]
                    out = subprocess.run(cmd, capture_output=True, text=True).stdout
                    rps = float([l for l in out.splitlines() if l.startswith("Requests/sec")][0]
                                .split()[1])
                    results["ping_c16_rps"] = rps
                    print(f"  GET /ping (HTTP floor) c=16: {rps:.0f} req/s", flush=True)
                    body = ART / "invocations_1000.json"
                    body.write_text(json.dumps(invocations_body(1000)))
                    url = f"http://127.0.0.1:{port}/invocations"
                    run_wrk(url, body, 2, 2, 3)
                    w = run_wrk(url, body, 2, 2, a.duration)
                    w["rows_per_s"] = w["rps"] * 1000
                    results["invocations"] = w
                    print(f"  /invocations dataframe_split 1000 rows, c=2: {w['rps']:.1f} req/s "
                          f"= {w['rows_per_s']:.0f} rows/s, p50 {w['p50_us'] / 1e3:.2f} ms",
                          flush=True)
            finally:
                peer.stop(srv)
        if not a.skip_peers:
            out = ART / "peers_serving.json"
            subprocess.run([PY, str(PEERS / "bench_serving.py"), "--duration", str(a.duration),
                            "--only", "seed", "xgb", "--out", str(out)], check=True)
            results["peers"] = json.loads(out.read_text())["serving"]["runs"]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    (ART / "keel_serving.json").write_text(json.dumps(results, indent=1))

    print("\n| config | c | req/s | p50 ms | p99 ms | vs seed (best of 1-2 workers) "
          "| vs xgb (best) |")
    print("|---|---|---|---|---|---|---|")
    for r in results["keel"]:
        c = r["conns"]
        row = f"| {r['name']} | {c} | {r['rps']:.0f} | {r['p50_us'] / 1e3:.3f} | " \
              f"{r['p99_us'] / 1e3:.3f} |"
        for peer_name in ("seed", "xgb"):
            best = max((p["rps"] for p in results["peers"] or []
                        if p["name"] == peer_name and p["conns"] == c), default=None)
            row += f" {r['rps'] / best:.1f}x |" if best else " - |"
        print(row)
    for r in results["peers"] or []:
        print(f"| {r['name']} w{r['workers']} | {r['conns']} | {r['rps']:.0f} | "
              f"{r['p50_us'] / 1e3:.3f} | {r['p99_us'] / 1e3:.3f} | | |")
    for off_name, on_name in (("keel", "keel+log"), ("keel-w1", "keel+log-w1")):
        off = {r["conns"]: r["rps"] for r in results["keel"] if r["name"] == off_name}
        on = {r["conns"]: r["rps"] for r in results["keel"] if r["name"] == on_name}
        for c in sorted(off):
            print(f"prediction log cost ({off_name}) at c={c}: "
                  f"{100 * (1 - on[c] / off[c]):.1f}% fewer req/s")


if __name__ == "__main__":
    main()
