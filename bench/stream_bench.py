#!/usr/bin/python3
"""End-to-end throughput of `keel stream` on NATS JetStream, 1 and 2 scorer processes.

  /usr/bin/python3 bench/stream_bench.py [--binary build/keel] [--messages 100000]
                                         [--processes 1,2] [--max-in-flight 256] [--workers 2]
                                         [--kill-every 1.0 --kill-processes 3]

1. `keel train` makes the serving benchmark's model (XGBoost, 400 trees, depth 6,
   learning rate 0.05, hist) on ../shared/data/mlc_churn.csv, registered as churn,
   churn@champion -> 1, in a temporary store.
2. A `nats-server -js` (file storage, temporary directory) on a free loopback port.
3. Per configuration: a fresh input stream gets N records (churn rows as JSON
   objects, /predict bodies) published and acknowledged before any scorer
   starts; then P `keel stream churn@champion` processes share one durable.
   The clock starts when JetStream reports the first delivery to the durable
   and stops when its ack floor reaches the last message (every prediction
   published with its JetStream acknowledgement, every input acked). The output
   stream is then checked to hold exactly N predictions.
Prints messages/s per configuration (prediction log off, and on for P=1).
With --kill-every S, one more configuration: --kill-processes scorers share the
durable (ack wait 2 s) and every S seconds one of them, chosen at random, is
killed with SIGKILL and a new one started; at the end the output stream must
hold exactly one prediction per input (every input sequence, no repeats kept).
NATS is spoken through tests/tools/nats_wire.py; the server, the scorers and
this script share the machine's cores.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = (ROOT / ".." / "shared" / "data" / "mlc_churn.csv").resolve()
sys.path.insert(0, str(ROOT / "tests" / "tools"))
from nats_wire import JetStream, Nats, NatsServer, free_port  # noqa: E402


def keel(binary, data_dir, *args, **kw):
    store = "sqlite:///" + str(data_dir / "keel.db").lstrip("/")
    cmd = [binary, "--store-uri", store, "--artifact-root", str(data_dir / "artifacts"), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def bodies(n):
    import csv
    with open(DATA) as f:
        rows = list(csv.DictReader(f))
    out = []
    for i in range(n):
        r = dict(rows[i % len(rows)])
        r.pop("churn")
        for k, v in r.items():
            try:
                r[k] = float(v)
            except ValueError:
                pass
        r["customer_id"] = i
        out.append(json.dumps(r).encode())
    return out


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_config(a, data_dir, nats, js, name, processes, extra, kill_every=0.0):
    subject, out = name.lower() + ".in", name.lower() + ".out"
    js.add_stream(name, [subject])
    js.add_stream(name + "_OUT", [out, out + ".dead"])
    msgs = bodies(a.messages)
    t = time.time()
    js.publish_many([(subject, b, None) for b in msgs], window=2000)
    load_s = time.time() - t
    store = "sqlite:///" + str(data_dir / "keel.db").lstrip("/")
    procs = []
    started = [0]
    kills = 0
    dead_cpu = 0.0  # CPU seconds of killed scorers since t0

    def start_scorer():
        log_path = data_dir / f"{name}-{started[0]}.log"
        started[0] += 1
        log = open(log_path, "w")
        cmd = [a.binary, "--store-uri", store, "--artifact-root", str(data_dir / "artifacts"),
               "stream", "churn@champion", "--nats", nats.url, "--stream", name, "--subject",
               subject, "--output-subject", out, "--durable", "bench", "--port",
               str(free_port()), "--max-in-flight", str(a.max_in_flight), "--workers",
               str(a.workers), *extra]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log,
                      log_path))

    rng = random.Random(11)
    try:
        for _ in range(processes):
            start_scorer()
        t0 = t1 = None
        keel_cpu0 = nats_cpu0 = 0.0
        last_kill = time.time()
        deadline = time.time() + 600
        while time.time() < deadline:
            if kill_every and t0 is not None and time.time() - last_kill >= kill_every:
                victim = rng.randrange(len(procs))
                proc, log, _ = procs.pop(victim)
                try:
                    dead_cpu += cpu_seconds(proc.pid)
                except OSError:
                    pass
                proc.kill()
                proc.wait()
                log.close()
                kills += 1
                start_scorer()
                last_kill = time.time()
            for proc, _, log_path in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"keel stream ({log_path.name}) exited {proc.returncode}: "
                                     f"{log_path.read_text()}")
            try:
                info = js.consumer_info(name, "bench")
            except Exception:  # noqa: BLE001  (not created yet)
                time.sleep(0.002)
                continue
            now = time.time()
            if t0 is None and info["delivered"]["stream_seq"] > 0:
                t0 = now
                keel_cpu0 = sum(cpu_seconds(p.pid) for p, _, _ in procs)
                nats_cpu0 = cpu_seconds(nats.proc.pid)
            if info["ack_floor"]["stream_seq"] >= a.messages and info["num_ack_pending"] == 0:
                t1 = now
                keel_cpu = sum(cpu_seconds(p.pid) for p, _, _ in procs) + dead_cpu - keel_cpu0
                nats_cpu = cpu_seconds(nats.proc.pid) - nats_cpu0
                break
            time.sleep(0.002)
        if t1 is None:
            raise SystemExit(f"{name}: not finished in time")
        for proc, _, _ in procs:
            proc.terminate()
            proc.wait(timeout=60)
    finally:
        # No scorer outlives this run, whatever ended it (SystemExit included).
        for proc, log, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    stored = js.stream_info(name + "_OUT")["state"]["messages"]
    if stored != a.messages:
        raise SystemExit(f"{name}: {stored} outputs for {a.messages} inputs")
    if kill_every:
        seqs = sorted(json.loads(m.data)["input_seq"] for m in js.read_stream(name + "_OUT", out))
        if seqs != list(range(1, a.messages + 1)):
            raise SystemExit(f"{name}: the outputs do not cover every input exactly once")
    seconds = t1 - t0
    return {"config": name, "processes": processes, "extra": " ".join(extra), "kills": kills,
            "messages": a.messages, "seconds": round(seconds, 3),
            "msgs_per_s": round(a.messages / seconds), "preload_msgs_per_s":
            round(a.messages / load_s), "keel_cpu_us_per_msg": round(keel_cpu / a.messages * 1e6, 1),
            "nats_cpu_us_per_msg": round(nats_cpu / a.messages * 1e6, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "build" / "keel"))
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--max-in-flight", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-log-run", action="store_true", help="skip the run with the log on")
    ap.add_argument("--kill-every", type=float, default=0.0,
                    help="also run --kill-processes scorers, SIGKILLing one every this many s")
    ap.add_argument("--kill-processes", type=int, default=3)
    a = ap.parse_args()
    a.binary = str(Path(a.binary).resolve())
    data_dir = Path(tempfile.mkdtemp(prefix="keel-stream-bench-"))
    results = []
    try:
        print("== keel train (400 trees, depth 6, lr 0.05, hist)", flush=True)
        keel(a.binary, data_dir, "train", "--data", str(DATA), "--target", "churn",
             "--param", "n_estimators=400", "--param", "max_depth=6",
             "--param", "learning_rate=0.05", "--param", "tree_method=hist",
             "--register", "churn", "--output-name", "churn_probability", cwd=data_dir)
        keel(a.binary, data_dir, "models", "alias", "churn@champion", "1")
        with NatsServer() as nats:
            nc = Nats(nats.port, timeout=60)
            js = JetStream(nc)
            configs = []
            for p in [int(x) for x in a.processes.split(",")]:
                configs.append((f"P{p}", p, ["--no-prediction-log"]))
            if not a.no_log_run:
                configs.append(("P1LOG", 1, []))
            if a.kill_every:
                configs.append((f"P{a.kill_processes}KILL", a.kill_processes,
                                ["--no-prediction-log", "--ack-wait-ms", "2000",
                                 "--max-deliver", "1000"]))
            for name, p, extra in configs:
                r = run_config(a, data_dir, nats, js, name, p, extra,
                               a.kill_every if name.endswith("KILL") else 0.0)
                results.append(r)
                print(f"{name}: {p} process(es) {r['extra'] or '(prediction log on)'}"
                      f"{', %d SIGKILLs' % r['kills'] if r['kills'] else ''}: "
                      f"{r['messages']} messages in {r['seconds']} s = {r['msgs_per_s']} msgs/s "
                      f"(preload {r['preload_msgs_per_s']} msgs/s); CPU per message: keel "
                      f"{r['keel_cpu_us_per_msg']} us, nats-server {r['nats_cpu_us_per_msg']} us",
                      flush=True)
            nc.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
