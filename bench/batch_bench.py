#!/usr/bin/python3
"""`keel batch` against the batch-scoring peer (pandas + xgboost), same file, same run.

  /usr/bin/python3 bench/batch_bench.py [--binary build/keel] [--repeat 3] [--skip-peer]
                                        [--distributed 1,2,4] [--only-distributed]

1. The peers' train.py makes the 400-tree depth-6 XGBoost churn model once (into
   $PEERS_ARTIFACTS, default $TMPDIR/keel-peers-serving); the peers' batch.py generator
   makes the 1M-row CSV (batch_1m.csv, 87 MiB) once.
2. The peer itself, batch.py, in this run: pandas read_csv -> one-hot encode -> xgboost
   inplace_predict (2 threads) -> to_csv, median of 3 whole jobs, plus libxgboost's
   predict alone on the in-memory float32 matrix (2 threads).
3. keel trains the same model shape on the same data (XGBoost, 400 trees, depth 6,
   learning rate 0.05, hist) with `keel train` and registers it as churn@champion.
4. `keel batch churn@champion` on the same CSV, median of --repeat runs each:
     bare      --no-track --monitor-sample 0 (scoring only)
     default   the job recorded as a run, 10% of the rows to the prediction log
     full      the job recorded as a run, every row to the prediction log
     zstd      bare, reading batch_1m.csv.zst and writing .zst
   Wall time around the process (start-up and model load included), peak RSS by GNU time.
5. With --distributed W1,W2,..: a `nats-server -js` on a free loopback port, then per W,
   W `keel worker` processes (started and ready before the clock starts) and
   `keel batch churn@champion --distributed` (bare flags, 20,000-row partitions) on the
   same CSV, median of --repeat runs; the output is checked to equal the local bare
   job's byte for byte. The workers, the coordinator and nats-server share the cores.
Prints a table with ratios and writes $PEERS_ARTIFACTS/keel_batch.json.
"""
import argparse
import json
import os
import shutil
import statistics
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
ROWS = 1_000_000


def keel_cmd(binary, data_dir, *args):
    store = "sqlite:///" + str(data_dir / "keel.db").lstrip("/")
    return [binary, "--store-uri", store, "--artifact-root", str(data_dir / "artifacts"), *args]


def timed_batch(binary, data_dir, args, repeat):
    """Median wall seconds and max peak RSS (MiB) of `keel batch` runs; the last stderr line."""
    walls, rss, line = [], [], ""
    rss_file = data_dir / "rss"
    cpu = []
    for _ in range(repeat):
        cmd = ["/usr/bin/time", "-f", "%U %S %M", "-o", str(rss_file),
               *keel_cmd(binary, data_dir, "batch", "churn@champion", *args)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"keel batch failed: {p.stderr}")
        line = p.stderr.strip().splitlines()[-1]
        user, system, peak = rss_file.read_text().split()[-3:]
        rss.append(int(peak) / 1024)
        cpu.append(float(user) + float(system))
    timed_batch.cpu_seconds = statistics.median(cpu)
    return statistics.median(walls), max(rss), walls, line


def distributed_runs(a, data_dir, csv, reference):
    """`keel batch --distributed` with W workers; median seconds per W."""
    sys.path.insert(0, str(ROOT / "tests" / "tools"))
    from nats_wire import NatsServer  # noqa: E402
    rows = {}
    out = data_dir / "dist.csv"
    with NatsServer() as nats:
        for w in [int(x) for x in a.distributed.split(",")]:
            workers = []
            try:
                for i in range(w):
                    log = open(data_dir / f"worker-{w}-{i}.log", "w+")
                    proc = subprocess.Popen(keel_cmd(a.binary, data_dir, "worker", "--nats",
                                                     nats.url), stdout=subprocess.DEVNULL,
                                            stderr=log)
                    workers.append((proc, log))
                for proc, log in workers:
                    deadline = time.time() + 60
                    while "ready on" not in Path(log.name).read_text():
                        if proc.poll() is not None or time.time() > deadline:
                            raise SystemExit("keel worker did not start: " +
                                             Path(log.name).read_text())
                        time.sleep(0.05)
                args = ["--input", str(csv), "--output", str(out), "--no-track", "--distributed",
                        "--nats", nats.url, "--partition-rows", "20000"]
                wall, rss, walls, line = timed_batch(a.binary, data_dir, args, a.repeat)
                if out.read_bytes() != reference:
                    raise SystemExit(f"distributed output with {w} workers differs from the local")
                cpu = timed_batch.cpu_seconds
                rows[w] = {"seconds": wall, "rows_per_s": ROWS / wall, "runs": walls,
                           "coordinator_peak_rss_mib": rss, "coordinator_cpu_s": cpu,
                           "summary": line}
                print(f"  distributed, {w} worker(s): {wall:7.3f} s {ROWS / wall:12,.0f} rows/s"
                      f"  coordinator: peak RSS {rss:5.0f} MiB, CPU {cpu:.2f} s"
                      f" (ceiling {ROWS / cpu:,.0f} rows/s per coordinator core)   ({line})",
                      flush=True)
            finally:
                for proc, log in workers:
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    log.close()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "build" / "keel"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-peer", action="store_true", help="keel only (no ratios)")
    ap.add_argument("--distributed", default="", help="worker counts, e.g. 1,2,4")
    ap.add_argument("--only-distributed", action="store_true",
                    help="of the local configurations run only bare")
    a = ap.parse_args()
    a.binary = str(Path(a.binary).resolve())
    ART.mkdir(parents=True, exist_ok=True)
    if not (ART / "model.json").exists():
        subprocess.run([PY, "train.py"], cwd=PEERS, check=True)
    csv = ART / "batch_1m.csv"
    if not csv.exists():
        subprocess.run([PY, "-c", f"import batch; batch.generate(batch.ART / 'batch_1m.csv', {ROWS})"],
                       cwd=PEERS, check=True)
    zst = ART / "batch_1m.csv.zst"
    if not zst.exists():
        subprocess.run(["zstd", "-q", "-f", str(csv), "-o", str(zst)], check=True)

    results = {"rows": ROWS, "csv_mib": csv.stat().st_size / 2**20, "keel": {}, "peer": None}
    peer = None
    if not a.skip_peer:
        print("== peer: ../shared/peers/serving/batch.py (pandas + xgboost)", flush=True)
        subprocess.run([PY, "batch.py", "--repeat", "3"], cwd=PEERS, check=True)
        peer = json.loads((ART / "results.json").read_text())["batch"]["stages"]
        results["peer"] = peer

    data_dir = Path(tempfile.mkdtemp(prefix="keel-batch-bench-"))
    try:
        print("== keel train (400 trees, depth 6, lr 0.05, hist)", flush=True)
        subprocess.run(keel_cmd(a.binary, data_dir, "train", "--data", str(DATA), "--target",
                                "churn", "--param", "n_estimators=400", "--param", "max_depth=6",
                                "--param", "learning_rate=0.05", "--param", "tree_method=hist",
                                "--register", "churn", "--output-name", "churn_probability"),
                       check=True, capture_output=True, cwd=data_dir)
        subprocess.run(keel_cmd(a.binary, data_dir, "models", "alias", "churn@champion", "1"),
                       check=True, capture_output=True)
        out = data_dir / "scores.csv"
        configs = (
            ("bare", ["--input", str(csv), "--output", str(out), "--no-track",
                      "--monitor-sample", "0"]),
            ("default", ["--input", str(csv), "--output", str(out)]),
            ("full", ["--input", str(csv), "--output", str(out), "--monitor-sample", "1"]),
            ("zstd", ["--input", str(zst), "--output", str(out) + ".zst", "--no-track",
                      "--monitor-sample", "0"]),
        )
        if a.only_distributed:
            configs = configs[:1]
        print(f"== keel batch, {ROWS:,} rows, median of {a.repeat}", flush=True)
        for label, args in configs:
            wall, rss, walls, line = timed_batch(a.binary, data_dir, args, a.repeat)
            results["keel"][label] = {"seconds": wall, "rows_per_s": ROWS / wall,
                                      "peak_rss_mib": rss, "runs": walls, "summary": line}
            print(f"  {label:<8} {wall:7.3f} s {ROWS / wall:12,.0f} rows/s  peak RSS {rss:5.0f} MiB"
                  f"   ({line})", flush=True)
        if a.distributed:
            # Every local configuration but zstd wrote the same scores.csv.
            reference = out.read_bytes()
            results["distributed"] = distributed_runs(a, data_dir, csv, reference)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    if "distributed" in results:
        bare = results["keel"]["bare"]["rows_per_s"]
        for w, r in results["distributed"].items():
            print(f"distributed, {w} worker(s): {r['rows_per_s']:12,.0f} rows/s = "
                  f"{r['rows_per_s'] / bare:.2f}x the local job")
    if peer:
        e2e = peer["e2e.total xgb job"]["rows_per_s"]
        predict = peer["predict alone: xgb inplace_predict nthread=2"]["rows_per_s"]
        bare = results["keel"]["bare"]["rows_per_s"]
        results["ratios"] = {"keel_bare_vs_peer_job": bare / e2e,
                             "keel_job_vs_xgb_predict_alone": bare / predict}
        print(f"\npeer whole job (read_csv+encode+predict+to_csv): {e2e:12,.0f} rows/s")
        print(f"peer libxgboost predict alone, in memory, 2 thr: {predict:12,.0f} rows/s")
        print(f"keel batch, whole job (bare):                    {bare:12,.0f} rows/s  "
              f"= {bare / e2e:.2f}x the peer's job, {bare / predict:.2f}x xgboost's predict alone")
        if "default" in results["keel"]:
            default = results["keel"]["default"]["rows_per_s"]
            results["ratios"]["keel_default_vs_peer_job"] = default / e2e
            print(f"keel batch, run + 10% window (default):          {default:12,.0f} rows/s  "
                  f"= {default / e2e:.2f}x the peer's job")
        for w, r in results.get("distributed", {}).items():
            results["ratios"][f"keel_distributed_{w}_vs_peer_job"] = r["rows_per_s"] / e2e
            print(f"keel batch --distributed, {w} worker(s):          {r['rows_per_s']:12,.0f} "
                  f"rows/s  = {r['rows_per_s'] / e2e:.2f}x the peer's job")
    (ART / "keel_batch.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
