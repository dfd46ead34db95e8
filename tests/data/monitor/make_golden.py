#!/usr/bin/python3
"""Golden values for keel's drift statistics (tests/unit/monitor_stats_test.cc).

Run with Debian's interpreter (apt: python3-numpy python3-scipy):

    /usr/bin/python3 tests/data/monitor/make_golden.py > tests/data/monitor/golden.json

Covers what drift_expected.json (the peer's numpy/scipy reference, see README.md)
lacks: exact small-sample and asymptotic KS p-values (including the branches
of scipy's kstwo and smirnov), chi2_contingency on small tables, chi2.sf,
Hellinger and Jensen-Shannon on keel's reference-quantile bins, the two-sample
z-test for proportions, Wasserstein on small tied samples, and Evidently's
binning for low-cardinality columns; and a few 50-digit mpmath values where
scipy's own error (~1e-12) is visible (python3-mpmath).

Inputs either appear literally in the JSON, or are prefixes of the peer's
deterministic streams (SplitMix64 + Irwin-Hall, recipe in drift_expected.json
["recipe"]), re-implemented below exactly as drift_bench.py defines them and
re-implemented in the C++ test.
"""
import json
import math
import platform
import sys
import warnings

import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial import distance

# ----------------------------------------------------------------------------- the peer's streams
GAMMA = np.uint64(0x9E3779B97F4A7C15)
MUL1 = np.uint64(0xBF58476D1CE4E5B9)
MUL2 = np.uint64(0x94D049BB133111EB)
SEED_BASE = 20260101
TWO_M32 = 2.0 ** -32
SQRT3 = 1.7320508075688772
FEATURES = [
    ("normal", (0.0, 1.0), (0.0, 1.0)), ("normal", (0.0, 1.0), (0.0, 1.0)),
    ("normal", (0.0, 1.0), (0.0, 1.0)), ("normal", (0.0, 1.0), (0.0, 1.0)),
    ("normal", (0.0, 1.0), (0.0, 1.0)), ("normal", (0.0, 1.0), (0.05, 1.0)),
    ("normal", (0.0, 1.0), (0.25, 1.0)), ("normal", (0.0, 1.0), (0.0, 1.25)),
    ("normal", (0.0, 1.0), (1.0, 1.0)), ("square", (0.0, 1.0), (0.0, 1.0)),
    ("square", (0.0, 1.0), (0.0, 1.0)), ("square", (0.0, 1.0), (0.0, 1.1)),
    ("uniform", (0.0, 1.0), (0.0, 1.0)), ("uniform", (0.0, 1.0), (0.1, 1.0)),
    ("uniform", (0.0, 1.0), (0.0, 1.0)), ("ties", (0.0, 1.0), (0.0, 1.0)),
    ("ties", (0.0, 1.0), (1.0, 1.0)), ("normal", (100.0, 15.0), (100.0, 15.0)),
    ("normal", (100.0, 15.0), (100.5, 15.0)), ("normal", (100.0, 15.0), (100.0, 15.0)),
]
N_CATS = 50
CAT_W_REF = [50 - k for k in range(N_CATS)]
CAT_W_CUR = [list(CAT_W_REF), [40, 59] + CAT_W_REF[2:48] + [1, 2]]


def splitmix64(seed, n):
    t = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + t * GAMMA
        z = (z ^ (z >> np.uint64(30))) * MUL1
        z = (z ^ (z >> np.uint64(27))) * MUL2
    return z ^ (z >> np.uint64(31))


def seed_of(dataset, stream):
    return SEED_BASE + 65536 * dataset + stream


def numeric_feature(dataset, j, n):
    kind, ref_p, cur_p = FEATURES[j]
    mu, sigma = ref_p if dataset == 0 else cur_p
    d = splitmix64(seed_of(dataset, j), 2 * n)
    a, b = d[0::2], d[1::2]
    m32, s32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    if kind == "uniform":
        base = (a >> s32).astype(np.float64) * TWO_M32
    else:
        s = (a >> s32) + (a & m32) + (b >> s32) + (b & m32)
        z = (s.astype(np.float64) * TWO_M32 - 2.0) * SQRT3
        base = {"normal": z, "square": z * z, "ties": np.floor(z * 4.0)}[kind]
    t = base * sigma
    return t + mu


def categorical_feature(dataset, c, n):
    w = np.array(CAT_W_REF if dataset == 0 else CAT_W_CUR[c], dtype=np.uint64)
    total = np.uint64(int(w.sum()))
    d = splitmix64(seed_of(dataset, 100 + c), n)
    r = ((d >> np.uint64(32)) * total) >> np.uint64(32)
    return np.searchsorted(np.cumsum(w), r, side="right").astype(np.int64)


# ----------------------------------------------------------------------------- helpers
class Lcg:
    """A tiny integer generator for the literal small samples (values are stored in the JSON)."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return self.s >> 33


def psi_q10_fit(ref, n_bins=10):
    s = np.sort(ref)
    n = len(s)
    edges = np.unique(s[[(k * n) // n_bins for k in range(1, n_bins)]])
    counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    return edges, counts / n


def q10_cur_shares(edges, cur):
    counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return counts / len(cur)


def hellinger(p, q):
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / np.sum(p)
    q = q / np.sum(q)
    return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / np.sqrt(2))


def feel_zeroes(p):
    p = np.array(p, dtype=np.float64, copy=True)
    m = p[p != 0].min()
    p[p == 0] = m / 10 ** 6 if m <= 0.0001 else 0.0001
    return p


def psi(p_ref, p_cur):
    p_ref, p_cur = feel_zeroes(p_ref), feel_zeroes(p_cur)
    return float(np.sum((p_ref - p_cur) * np.log(p_ref / p_cur)))


def evidently_binned(r, c):
    """evidently get_binned_data for numeric columns (as drift_bench.py replicates it)."""
    if len(np.unique(r)) > 20:
        bins = np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")
        return np.histogram(r, bins)[0] / len(r), np.histogram(c, bins)[0] / len(c), len(bins) - 1
    keys = np.union1d(np.unique(r), np.unique(c))
    p_ref = np.array([np.count_nonzero(r == k) for k in keys]) / len(r)
    p_cur = np.array([np.count_nonzero(c == k) for k in keys]) / len(c)
    return p_ref, p_cur, len(keys)


def ks_case(ref, cur):
    """ks_2samp(method='auto'); method records what scipy used (an exact attempt that fails
    falls back to the asymptotic distribution with a warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.ks_2samp(ref, cur)
    n1, n2 = len(ref), len(cur)
    method = "exact" if max(n1, n2) <= 10000 else "asymp"
    if method == "exact" and any("Exact calculation unsuccessful" in str(w.message) for w in caught):
        method = "exact_failed_asymp"
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "method": method,
            "location": float(res.statistic_location), "sign": int(res.statistic_sign)}


def f(x):
    """JSON-safe float (the C++ side reads 0 for an underflowed value)."""
    return float(x)


# ----------------------------------------------------------------------------- cases
def ks_literal_cases():
    out = []
    sizes = [(5, 5), (5, 7), (6, 9), (7, 5), (10, 10), (8, 12), (13, 7), (20, 15), (25, 25),
             (30, 50), (50, 50), (50, 37), (40, 10), (11, 49), (16, 24)]
    rng = Lcg(7)
    for idx, (n1, n2) in enumerate(sizes):
        for style in ("ties", "continuous", "shifted"):
            if style == "ties":  # few distinct values: many ties within and across samples
                ref = [float(rng.next() % 6) for _ in range(n1)]
                cur = [float(rng.next() % 6) for _ in range(n2)]
            elif style == "continuous":
                ref = [rng.next() / 2.0 ** 31 for _ in range(n1)]
                cur = [rng.next() / 2.0 ** 31 for _ in range(n2)]
            else:
                ref = [rng.next() / 2.0 ** 31 for _ in range(n1)]
                cur = [rng.next() / 2.0 ** 31 + 0.35 for _ in range(n2)]
            case = {"name": f"{style}_{n1}x{n2}", "ref": ref, "cur": cur}
            case.update(ks_case(np.array(ref), np.array(cur)))
            out.append(case)
    # Separated samples (smallest p), identical samples (D = 0), one value each.
    for n1, n2 in [(5, 5), (6, 4), (50, 50), (20, 30)]:
        ref = [float(i) for i in range(n1)]
        cur = [float(100 + i) for i in range(n2)]
        case = {"name": f"separated_{n1}x{n2}", "ref": ref, "cur": cur}
        case.update(ks_case(np.array(ref), np.array(cur)))
        out.append(case)
    for ref, cur, name in [([1.0] * 7, [1.0] * 9, "all_equal"), ([2.0], [3.0], "one_each"),
                           ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "identical")]:
        case = {"name": name, "ref": ref, "cur": cur}
        case.update(ks_case(np.array(ref), np.array(cur)))
        out.append(case)
    return out


def ks_stream_cases():
    """Prefixes of the peer's streams: feature j, n_ref rows of dataset 0, n_cur of dataset 1."""
    specs = [
        (6, 1000, 800), (0, 3000, 2000), (15, 5000, 5000), (8, 10000, 10000), (16, 10000, 9999),
        (5, 2500, 7500), (11, 4000, 6000), (13, 700, 10000), (1, 10000, 3),
        # asymptotic (max > 10000): en = round(n1 n2 / (n1 + n2)) walks through kstwo's branches
        (0, 20000, 3), (6, 20000, 7), (8, 20000, 40), (7, 20000, 60), (6, 20000, 140),
        (6, 20000, 141), (0, 20000, 300), (7, 20000, 1000), (5, 20000, 5000), (6, 20000, 20000),
        (0, 10001, 10001), (18, 30000, 25000), (16, 50000, 50000), (12, 100000, 100000),
        (9, 100000, 1000), (13, 15000, 150),
    ]
    out = []
    for j, n1, n2 in specs:
        ref = numeric_feature(0, j, n1)
        cur = numeric_feature(1, j, n2)
        case = {"feature": j, "n_ref": n1, "n_cur": n2}
        case.update(ks_case(ref, cur))
        out.append(case)
    return out


def kstwo_grid():
    out = []
    for n in [1, 2, 3, 5, 10, 20, 50, 100, 139, 140, 141, 200, 1000, 5000, 20000, 100000, 100001,
              400000, 2000000]:
        ds = set()
        for c in [0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 19.0]:
            d = c / math.sqrt(n)
            if 0 < d < 1:
                ds.add(d)
        for d in [0.6 / n, 0.9 / n, 1.0 - 1.0 / n + 0.1 / n, 0.5, 0.55, 0.75, 0.9]:
            if 0 < d < 1:
                ds.add(d)
        for d in sorted(ds):
            out.append({"n": n, "d": d, "sf": f(stats.kstwo.sf(d, n))})
    return out


def smirnov_grid():
    out = []
    for n in [5, 50, 140, 500, 1012, 1013, 5000, 50000, 500000]:
        for c in [0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]:
            d = c / math.sqrt(n)
            if 0 < d < 1:
                out.append({"n": n, "d": d, "sf": f(special.smirnov(n, d))})
        for d in [0.5, 0.8]:
            out.append({"n": n, "d": d, "sf": f(special.smirnov(n, d))})
    return out


def chi2_sf_grid():
    out = []
    for df in [1, 2, 3, 5, 10, 49, 100, 999, 10000, 100000]:
        xs = {1e-3, 0.1, 0.5, 1.0, 2.0, df / 2, df - 1, df, df + 1, 1.5 * df, 2 * df, 3 * df,
              df + 10 * math.sqrt(df), 50.0, 100.0, 500.0, 1000.0, 1400.0}
        for x in sorted(v for v in xs if v > 0):
            out.append({"df": df, "x": x, "sf": f(stats.chi2.sf(x, df))})
    return out


def contingency_cases():
    tables = {
        "2x2_yates": [[12, 5], [7, 14]],
        "2x2_small_diff": [[10, 10], [10, 11]],   # |expected - observed| < 0.5: correction clipped
        "2x2_large": [[5000, 5000], [5100, 4900]],
        "2x3": [[10, 20, 30], [15, 15, 30]],
        "2x4_unseen": [[40, 30, 30, 0], [35, 30, 25, 10]],  # category only in current
        "2x5_vanished": [[20, 20, 20, 20, 20], [0, 25, 25, 25, 25]],
        "2x10_tiny_p": [[100] * 10, [10, 190, 100, 100, 100, 100, 100, 100, 100, 100]],
        "2x3_unequal_n": [[3, 1, 1], [30, 40, 50]],
        "2x2_extreme": [[1000, 0], [0, 1000]],
    }
    out = []
    for name, t in tables.items():
        c2, p, dof, _ = stats.chi2_contingency(np.array(t))
        out.append({"name": name, "ref": t[0], "cur": t[1], "statistic": f(c2), "pvalue": f(p),
                    "dof": int(dof)})
    return out


def ztest_cases():
    out = []
    for rh, rn, ch, cn in [(30, 100, 45, 100), (500, 1000, 520, 1000), (1, 10, 9, 10),
                           (4000, 10000, 4100, 9000), (50, 100, 50, 100), (0, 50, 5, 60),
                           (100000, 200000, 96000, 200000)]:
        p1, p2 = rh / rn, ch / cn
        pooled = float(p1 * rn + p2 * cn) / (rn + cn)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1. / rn + 1. / cn))
        out.append({"ref_hits": rh, "ref_n": rn, "cur_hits": ch, "cur_n": cn, "z": f(z),
                    "pvalue": f(2 * stats.norm.sf(abs(z))),
                    "pvalue_evidently": f(2 * (1 - stats.norm.cdf(abs(z))))})
    return out


def wasserstein_cases():
    rng = Lcg(11)
    out = []
    for n1, n2 in [(5, 8), (20, 20), (33, 17), (100, 250)]:
        ref = [float(rng.next() % 9) / 4 for _ in range(n1)]
        cur = [float(rng.next() % 11) / 4 - 0.5 for _ in range(n2)]
        wd = float(stats.wasserstein_distance(ref, cur))
        out.append({"ref": ref, "cur": cur, "wasserstein": wd,
                    "wasserstein_norm": wd / max(float(np.std(ref)), 0.001)})
    out.append({"ref": [3.0] * 6, "cur": [3.0] * 4, "wasserstein": 0.0, "wasserstein_norm": 0.0})
    return out


def evidently_low_cardinality_cases():
    rng = Lcg(5)
    out = []
    for n1, n2, k in [(400, 300, 4), (2000, 1500, 12), (60, 90, 3)]:
        ref = [float(rng.next() % k) for _ in range(n1)]
        cur = [float(rng.next() % (k + 1)) for _ in range(n2)]  # one value unseen in ref
        p_ref, p_cur, nb = evidently_binned(np.array(ref), np.array(cur))
        out.append({"ref": ref, "cur": cur, "bins": int(nb), "psi": psi(p_ref, p_cur),
                    "jensenshannon": float(distance.jensenshannon(p_ref, p_cur)),
                    "hellinger": hellinger(p_ref, p_cur)})
    return out


def prefix_histogram_stats(rows):
    """Hellinger and Jensen-Shannon on keel's 10 reference-quantile bins (numeric) and on the
    categories (categorical), for the peer's first `rows` rows."""
    numeric = []
    for j in range(len(FEATURES)):
        ref = numeric_feature(0, j, rows)
        cur = numeric_feature(1, j, rows)
        edges, p_ref = psi_q10_fit(ref)
        p_cur = q10_cur_shares(edges, cur)
        numeric.append({"feature": j, "hellinger_q10": hellinger(p_ref, p_cur),
                        "jensenshannon_q10": float(distance.jensenshannon(p_ref, p_cur)),
                        "hellinger_evidently": hellinger(*evidently_binned(ref, cur)[:2])})
    categorical = []
    for c in range(2):
        rc = np.bincount(categorical_feature(0, c, rows), minlength=N_CATS)
        cc = np.bincount(categorical_feature(1, c, rows), minlength=N_CATS)
        z_ref, z_cur = rc[0], cc[0]
        p1, p2 = z_ref / rows, z_cur / rows
        pooled = float(p1 * rows + p2 * rows) / (2 * rows)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (2. / rows))
        categorical.append({"feature": c, "hellinger": hellinger(rc / rc.sum(), cc / cc.sum()),
                            "ztest_first_category_z": f(z),
                            "ztest_first_category_p": f(2 * stats.norm.sf(abs(z)))})
    return {"rows": rows, "numeric": numeric, "categorical": categorical}


def mpmath_references():
    """High-precision values (mpmath, 50 digits) where scipy itself is off by ~1e-12: the
    one-sample KS CDF near 1 (scipy evaluates 1 - Pomeranz in double) and far chi2 tails."""
    import mpmath as mp
    mp.mp.dps = 50

    def durbin_cdf(n, d):  # Durbin's matrix formula, evaluated exactly enough
        d = mp.mpf(d)
        k = int(mp.ceil(n * d))
        h = k - n * d
        m = 2 * k - 1
        H = mp.zeros(m, m)
        for i in range(m):
            for j in range(m):
                if i - j + 1 >= 0:
                    H[i, j] = mp.mpf(1) / mp.factorial(i - j + 1)
        for i in range(m):
            H[i, 0] -= h ** (i + 1) / mp.factorial(i + 1)
            H[m - 1, i] -= h ** (m - i) / mp.factorial(m - i)
        if 2 * h - 1 > 0:
            H[m - 1, 0] += (2 * h - 1) ** m / mp.factorial(m)
        s = (H ** n)[k - 1, k - 1]
        for i in range(1, n + 1):
            s = s * i / n
        return s

    kstwo = [{"n": n, "d": d, "sf": float(1 - durbin_cdf(n, d)), "scipy": float(stats.kstwo.sf(d, n))}
             for n, d in [(20, 2 / math.sqrt(20)), (50, 2 / math.sqrt(50)), (100, 0.2),
                          (140, 2 / math.sqrt(140))]]
    chi2 = [{"df": df, "x": x,
             "sf": float(mp.gammainc(mp.mpf(df) / 2, mp.mpf(x) / 2, mp.inf, regularized=True)),
             "scipy": float(stats.chi2.sf(x, df))}
            for df, x in [(10000, 15000.0), (999, 1498.5), (999, 2997.0), (5, 1400.0), (49, 83.67),
                          (100000, 103162.27766016837)]]
    return {"kstwo_sf": kstwo, "chi2_sf": chi2}


def main():
    doc = {
        "about": "Golden values for keel's drift statistics, made by make_golden.py (this "
                 "folder) with Debian's numpy/scipy; see README.md.",
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "scipy": scipy.__version__},
        "ks_literal": ks_literal_cases(),
        "ks_streams": ks_stream_cases(),
        "kstwo_sf": kstwo_grid(),
        "smirnov_sf": smirnov_grid(),
        "chi2_sf": chi2_sf_grid(),
        "chi2_contingency": contingency_cases(),
        "ztest": ztest_cases(),
        "wasserstein": wasserstein_cases(),
        "evidently_low_cardinality": evidently_low_cardinality_cases(),
        "prefix_histograms": prefix_histogram_stats(100000),
        "mpmath": mpmath_references(),
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
