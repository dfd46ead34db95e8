#!/usr/bin/python3
"""keel drift vs the numpy/scipy peer (../shared/peers/drift/drift_bench.py), end to end.

Both sides start from the same two CSV files (reference and current, 20 numeric
features built by the peer's documented generator plus its two 50-category
features written as strings) and run the same suite: KS, PSI (10 reference
quantile bins), Wasserstein and Jensen-Shannon on every numeric feature,
chi-square (two-sample contingency) on the categoricals.

  peer end to end = pandas.read_csv of both files + the peer's own functions
                    (ks_2samp, psi_q10, wasserstein_distance, jensenshannon on
                    Evidently's bins, chi2_contingency), one thread, as the peer runs
  peer in memory  = the same suite on arrays already in memory (the peer's own
                    figure; no reading)
  keel            = `keel drift --reference R --current C --test ks --test chisquare
                    --stats psi,wasserstein,wasserstein_norm,jensenshannon --json F`

  keel stored     = the same with --reference R.keelref, the reference's profile
                    saved once (`keel drift --reference R --save-reference R.keelref`);
                    its report must equal the CSV one

Each side runs --repeat times (the best is kept); keel's statistics are then
checked against the peer's (KS and PSI and Wasserstein to 1e-9 relative).

  /usr/bin/python3 bench/drift_bench.py --binary build/keel [--rows 1000000] [--repeat 3]
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "..", "shared", "peers", "drift", "drift_bench.py")


def load_peer(path):
    spec = importlib.util.spec_from_file_location("drift_peer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_inputs(peer, rows, workdir):
    paths = [os.path.join(workdir, f"drift_{name}_{rows}.csv") for name in ("reference", "current")]
    if all(os.path.exists(p) for p in paths):
        return paths
    os.makedirs(workdir, exist_ok=True)
    for dataset, path in enumerate(paths):
        t0 = time.perf_counter()
        cols = {f"f{j}": peer.numeric_feature(dataset, j, rows) for j in range(len(peer.FEATURES))}
        for c in range(2):
            codes = peer.categorical_feature(dataset, c, rows)
            cols[f"cat{c}"] = np.char.add("k", codes.astype(str))
        tmp = path + ".tmp"
        pd.DataFrame(cols).to_csv(tmp, index=False)  # floats written shortest round-trip
        os.replace(tmp, path)
        print(f"# wrote {path} ({os.path.getsize(path) / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f}s", flush=True)
    return paths


def peer_suite(peer, ref, cur, numeric, categorical):
    out = {}
    for name in numeric:
        r, c = ref[name].to_numpy(), cur[name].to_numpy()
        d, p = peer.ks(r, c)
        wd, wdn = peer.wasserstein(r, c)
        out[name] = {"ks": d, "ks_p": p, "psi": peer.psi_q10(r, c), "wasserstein": wd,
                     "wasserstein_norm": wdn, "js_evidently": peer.js_evidently(r, c)}
    for name in categorical:
        rc = ref[name].value_counts()
        cc = cur[name].value_counts()
        keys = sorted(set(rc.index) | set(cc.index))
        table = np.array([[rc.get(k, 0) for k in keys], [cc.get(k, 0) for k in keys]])
        c2, p, dof, _ = stats.chi2_contingency(table)
        out[name] = {"chi2": float(c2), "chi2_p": float(p)}
    return out


def best_of(repeat, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "keel"))
    ap.add_argument("--peer", default=PEER)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/keel-drift-bench")
    args = ap.parse_args()

    peer = load_peer(args.peer)
    ref_path, cur_path = write_inputs(peer, args.rows, args.workdir)
    numeric = [f"f{j}" for j in range(len(peer.FEATURES))]
    categorical = ["cat0", "cat1"]
    print(f"# drift_bench: {args.rows} rows x {len(numeric)} numeric + {len(categorical)} "
          f"categorical; cores={os.cpu_count()} load={os.getloadavg()[0]:.2f}", flush=True)

    # Timings start with no dirty pages being written back (fresh inputs or
    # profile): the disk's writeback is not what is measured.
    os.sync()
    # keel, end to end (a fresh process each time: reading, sorting, statistics, JSON).
    out_json = os.path.join(args.workdir, "keel_drift.json")
    cmd = [args.binary, "drift", "--reference", ref_path, "--current", cur_path, "--test", "ks",
           "--test", "chisquare", "--stats", "psi,wasserstein,wasserstein_norm,jensenshannon",
           "--json", out_json, "--quiet"]
    keel_s, _ = best_of(args.repeat, lambda: subprocess.run(cmd, check=True))
    rss = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, check=True, stderr=subprocess.PIPE,
                         text=True).stderr.strip().splitlines()[-1]
    with open(out_json) as f:
        report = json.load(f)
    print(f"keel drift end to end: {keel_s:.3f} s (peak RSS {int(rss) / 1024:.0f} MiB)", flush=True)

    # keel with the reference stored as a profile (what monitoring a model
    # does: its training data's profile is stored with the version).
    profile = os.path.join(args.workdir, f"drift_reference_{args.rows}.keelref")
    subprocess.run([args.binary, "drift", "--reference", ref_path, "--save-reference", profile,
                    "--quiet"], check=True)
    os.sync()
    stored_cmd = list(cmd)
    stored_cmd[stored_cmd.index(ref_path)] = profile
    stored_json = os.path.join(args.workdir, "keel_drift_stored.json")
    stored_cmd[stored_cmd.index(out_json)] = stored_json
    stored_s, _ = best_of(args.repeat, lambda: subprocess.run(stored_cmd, check=True))
    with open(stored_json) as f:
        stored = json.load(f)
    stored["reference"]["name"] = report["reference"]["name"]
    if stored != report:
        print("MISMATCH: the stored-profile report differs from the CSV one", file=sys.stderr)
        return 1
    print(f"keel drift with a stored reference profile: {stored_s:.3f} s (same report)", flush=True)

    # The peer, end to end: read both files with pandas, then its statistics.
    def peer_e2e():
        ref = pd.read_csv(ref_path)
        cur = pd.read_csv(cur_path)
        return peer_suite(peer, ref, cur, numeric, categorical)

    peer_s, _ = best_of(args.repeat, peer_e2e)
    read_s, _ = best_of(1, lambda: (pd.read_csv(ref_path), pd.read_csv(cur_path)))
    # In memory, on the generator's exact arrays (what the files hold): the
    # peer's own figure, and the values keel is checked against.
    frames = []
    for dataset in (0, 1):
        cols = {name: peer.numeric_feature(dataset, j, args.rows) for j, name in enumerate(numeric)}
        for c, name in enumerate(categorical):
            cols[name] = pd.Series(np.char.add("k", peer.categorical_feature(dataset, c, args.rows).astype(str)))
        frames.append(pd.DataFrame(cols))
    mem_s, values = best_of(args.repeat, lambda: peer_suite(peer, frames[0], frames[1], numeric, categorical))
    print(f"peer end to end (pandas read + numpy/scipy): {peer_s:.3f} s "
          f"(reading alone {read_s:.3f} s); statistics in memory {mem_s:.3f} s")
    print(f"ratio end to end: {peer_s / keel_s:.1f}x; keel end to end vs the peer's in-memory "
          f"statistics alone: {mem_s / keel_s:.1f}x")
    print(f"ratio with a stored reference profile: {peer_s / stored_s:.1f}x the peer end to end, "
          f"{mem_s / stored_s:.1f}x the peer's in-memory statistics alone")

    # keel's numbers against the peer's.
    worst = 0.0
    by_name = {c["name"]: c for c in report["columns"]}
    for name in numeric:
        k, p = by_name[name], values[name]
        pairs = [(k["statistic"], p["ks"]), (k["extra"]["psi"]["score"], p["psi"]),
                 (k["extra"]["wasserstein"]["score"], p["wasserstein"]),
                 (k["extra"]["wasserstein_norm"]["score"], p["wasserstein_norm"])]
        for a, b in pairs:
            worst = max(worst, abs(a - b) / max(abs(b), 1e-300))
    for name in categorical:
        k, p = by_name[name], values[name]
        worst = max(worst, abs(k["statistic"] - p["chi2"]) / p["chi2"])
    print(f"largest relative difference keel vs peer (KS, PSI, Wasserstein, chi-square): {worst:.2e}")
    drifted = [c["name"] for c in report["columns"] if c.get("drift")]
    print(f"keel KS verdicts: {len(drifted)} drifted: {', '.join(drifted)}")
    if worst > 1e-9:
        print("MISMATCH", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
