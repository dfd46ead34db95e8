"""End-to-end tests of `keel export`: generated C and C++ against the engine.

Trains small models with the real keel binary into a temporary embedded store
(XGBoost binary, multiclass, regression and native-categorical, XGBoost
gblinear, keel linear), exports each one, compiles the generated
code with `cc -std=c99 -Wall -Wextra -pedantic -Werror -O2` (the C++ header with
`c++ -std=c++17`, one model under ASan/UBSan, two with clang), feeds it every row of
../shared/data/mlc_churn.csv and of a copy with blanks, missing markers and
unknown categories, and checks each output is bit-identical to the engine's
for the same row: `keel batch` on the same model, its CSV floats parsed
exactly (correctly rounded to float32 with fractions, no double rounding).
The LightGBM and XGBoost fixtures of tests/data (categorical splits, missing
types None/Zero/NaN, multiclass, poisson, cross-entropy) are covered the same
way. Each export's README sizes are held to the compiled object: the table
total against `size -A` .rodata (0.9 x rodata <= total <= rodata + 64), and on
x86-64 GCC 12 the code estimate within its stated 25% of .text and the stack
figure bounding the -fstack-usage call chain at -O2. Then the mlflow format
(python3-yaml reads MLmodel, python3-xgboost loads the model file and predicts
what the engine predicts) and the error paths.
No timings here: bench/export_bench.sh measures speed.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_export.py
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import concurrent.futures  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402
from fractions import Fraction  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keel_harness import REPO, keel_binary  # noqa: E402

SHARED = os.environ.get("KEEL_SHARED_DIR") or os.path.join(REPO, "..", "shared")
CHURN = os.path.normpath(os.path.abspath(os.path.join(SHARED, "data", "mlc_churn.csv")))
DATA = os.path.join(REPO, "tests", "data")
# keel's default missing markers (data::DefaultMissingMarkers), compared after trimming.
MISSING = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"}
WARN = ["-Wall", "-Wextra", "-pedantic", "-Werror"]
CC = shutil.which("cc")
CXX = shutil.which("c++")
CLANG = shutil.which("clang")
SIZE = shutil.which("size")


def _cc_is_x86_gcc12():
    """The README's code-size estimate and stack bound are for x86-64 GCC 12."""
    if not CC:
        return False
    def out(*args):
        return subprocess.run([CC, *args], capture_output=True, text=True).stdout
    return (out("-dumpfullversion").startswith("12.") and out("-dumpmachine").startswith("x86_64")
            and "clang" not in out("--version"))


X86_GCC12 = _cc_is_x86_gcc12()

# A generic driver: one raw record per stdin line, fields in input-column
# order separated by tabs: "-" missing (NaN / NULL), "D<hex double>" a number,
# "S<text>" a text. Prints the outputs of NAME_predict as hex floats, then
# "|" and the encoded vector; exits 3 if NAME_predict_encoded(NAME_encode(r))
# differs from NAME_predict(r).
C_DRIVER = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "@NAME@.h"

static char* next_field(char** p) {
  char* f = *p;
  char* tab = strchr(f, '\t');
  if (tab) {
    *tab = 0;
    *p = tab + 1;
  } else {
    *p = f + strlen(f);
  }
  return f;
}
void fill_NUMBER(double* dst, const char* f) {
  *dst = f[0] == '-' ? NAN : strtod(f + 1, NULL);
}
void fill_BOOLEAN(double* dst, const char* f) { fill_NUMBER(dst, f); }
void fill_TEXT(const char** dst, const char* f) { *dst = f[0] == '-' ? NULL : f + 1; }

int main(int argc, char** argv) {
  static char line[1 << 16];
  const int show_encoded = argc > 1;
  (void)argv;
  while (fgets(line, sizeof line, stdin)) {
    @NAME@_input in;
    float x[@UPPER@_NUM_FEATURES], out[@UPPER@_NUM_OUTPUTS], again[@UPPER@_NUM_OUTPUTS];
    char* p = line;
    int i;
    line[strcspn(line, "\n")] = 0;
#define FILL(field, name, kind) fill_##kind(&in.field, next_field(&p));
    @UPPER@_INPUTS(FILL)
#undef FILL
    @NAME@_predict(&in, out);
    @NAME@_encode(&in, x);
    @NAME@_predict_encoded(x, again);
    if (memcmp(out, again, sizeof out) != 0) return 3;
    for (i = 0; i < @UPPER@_NUM_OUTPUTS; ++i) printf("%a ", (double)out[i]);
    printf("|");
    for (i = 0; show_encoded && i < @UPPER@_NUM_FEATURES; ++i) printf(" %a", (double)x[i]);
    printf("\n");
  }
  return 0;
}
"""

CPP_DRIVER = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "@NAME@.hpp"

static char* next_field(char** p) {
  char* f = *p;
  char* tab = std::strchr(f, '\t');
  if (tab) {
    *tab = 0;
    *p = tab + 1;
  } else {
    *p = f + std::strlen(f);
  }
  return f;
}
void fill_NUMBER(double* dst, const char* f) {
  if (f[0] != '-') *dst = std::strtod(f + 1, nullptr);  // else: Input's default, NaN
}
void fill_BOOLEAN(double* dst, const char* f) { fill_NUMBER(dst, f); }
void fill_TEXT(const char** dst, const char* f) {
  *dst = f[0] == '-' ? nullptr : f + 1;
}

int main() {
  static char line[1 << 16];
  while (std::fgets(line, sizeof line, stdin)) {
    @NAME@::Input in;
    float out[@NAME@::kNumOutputs];
    char* p = line;
    line[std::strcspn(line, "\n")] = 0;
#define FILL(field, name, kind) fill_##kind(&in.field, next_field(&p));
    @UPPER@_INPUTS(FILL)
#undef FILL
    @NAME@::Predict(in, out);
    for (float v : out) std::printf("%a ", static_cast<double>(v));
    std::printf("|\n");
  }
  return 0;
}
"""


def f32_bits_of_texts(texts):
    """The float32 nearest each decimal text (ties to even), as bit patterns.

    keel writes outputs as the shortest text that reads back as the same
    float32. Reading a text through a double can round twice, which only
    matters when the double lies next to the midpoint of two float32s: those
    few are rounded once, exactly, with fractions.
    """
    d = np.array([float(t) for t in texts], dtype=np.float64)
    c = d.astype(np.float32)
    up = np.nextafter(c, np.float32(np.inf)).astype(np.float64)
    dn = np.nextafter(c, np.float32(-np.inf)).astype(np.float64)
    cd = c.astype(np.float64)
    tol = np.abs(d) * 2.0 ** -40
    near = (np.abs(d - (cd + up) / 2) <= tol) | (np.abs(d - (cd + dn) / 2) <= tol)
    near |= ~np.isfinite(cd) | (cd == 0)
    bits = c.view(np.uint32).copy()
    for i in np.nonzero(near)[0]:
        q = Fraction(texts[i])
        cands = [c[i], np.float32(up[i]), np.float32(dn[i])]
        best = min(cands, key=lambda v: (abs(Fraction(float(v)) - q),
                                         int(np.array(v).view(np.uint32)) & 1))
        bits[i] = np.array(best, dtype=np.float32).view(np.uint32)
    return bits


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def parse_header_inputs(header_text, upper):
    """(field, column, kind) of the X-macro in a generated header."""
    m = re.search(r"#define " + upper + r"_INPUTS\(X\)((?:.*\\\n)*.*)\n", header_text)
    assert m, "no X-macro"
    out = []
    for field, col, kind in re.findall(r'X\((\w+), "((?:[^"\\]|\\.)*)", (NUMBER|BOOLEAN|TEXT)\)',
                                       m.group(1)):
        out.append((field, bytes(col, "ascii").decode("unicode_escape"), kind))
    return out


def loose_bool(text):
    t = text.strip().lower()
    if t in ("true", "yes", "1"):
        return 1.0
    if t in ("false", "no", "0"):
        return 0.0
    raise ValueError(text)


def driver_lines(records, inputs, null_for_markers=False):
    """Driver input lines for CSV records (dicts of text) and the inputs' kinds.

    Numbers: missing markers -> "-", else the double keel parses (float()
    and keel's parser are both correctly rounded). Texts: an empty field ->
    NULL; other text (missing markers included) is passed as it is, so the
    generated lookup has to treat them as keel does.
    """
    lines = []
    for rec in records:
        fields = []
        for _field, col, kind in inputs:
            v = rec.get(col)
            if v is None or (v.strip() in MISSING and (kind != "TEXT" or null_for_markers
                                                      or v == "")):
                fields.append("-")
            elif kind == "TEXT":
                fields.append("S" + v)
            elif kind == "BOOLEAN":
                fields.append("D" + loose_bool(v).hex())
            else:
                fields.append("D" + float(v).hex())
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def make_blanks_csv(path):
    """mlc_churn.csv with blanks, missing markers and unknown categories."""
    with open(CHURN, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    for i, r in enumerate(rows[1:]):
        if i % 7 == 3:
            r[col["total_day_minutes"]] = ""
        if i % 11 == 5:
            r[col["state"]] = ""
        if i % 13 == 2:
            r[col["international_plan"]] = "NA"
        if i % 17 == 4:
            r[col["state"]] = "ZZ"  # never seen in training
        if i % 19 == 6:
            r[col["account_length"]] = "NA"
        if i % 23 == 8:
            r[col["total_eve_calls"]] = ""
        if i % 29 == 9:
            r[col["voice_mail_plan"]] = "maybe"
        if i % 31 == 10:
            r[col["total_intl_charge"]] = " 2.5 "
    with open(path, "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_MINIMAL).writerows(rows)


def section_sizes(obj):
    """{section: bytes} from `size -A`."""
    out = subprocess.run([SIZE, "-A", obj], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = sizes.get(parts[0], 0) + int(parts[1])
    return sizes


def readme_number(readme, pattern):
    m = re.search(pattern, readme)
    assert m, pattern
    return int(m.group(1).replace(",", ""))


def read_records(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class ExportTest(unittest.TestCase):
    engine_cache = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="keel-export-")
        cls.store = "sqlite:///" + os.path.join(cls.tmp, "keel.db").lstrip("/")
        cls.artifacts = os.path.join(cls.tmp, "artifacts")
        cls.blanks = os.path.join(cls.tmp, "churn_blanks.csv")
        make_blanks_csv(cls.blanks)
        cls.records = read_records(CHURN) + read_records(cls.blanks)
        cls.eval_csv = os.path.join(cls.tmp, "eval.csv")
        with open(cls.eval_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(cls.records[0].keys()))
            w.writeheader()
            w.writerows(cls.records)
        # (registered name, keel train arguments). Small models: the point is
        # the arithmetic, not accuracy; blanks in the training data make
        # XGBoost learn default directions for missing values.
        specs = [
            ("churn", ["--data", cls.blanks, "--target", "churn", "--param", "n_estimators=25",
                       "--param", "max_depth=4"]),
            ("area", ["--data", CHURN, "--target", "area_code", "--param", "n_estimators=6",
                      "--param", "max_depth=3"]),
            ("charge", ["--data", cls.blanks, "--target", "total_day_charge", "--drop", "churn",
                        "--param", "n_estimators=15", "--param", "max_depth=4"]),
            ("native", ["--data", cls.blanks, "--target", "churn", "--categorical", "native",
                        "--param", "n_estimators=15", "--param", "max_depth=4"]),
            ("gblin", ["--data", CHURN, "--target", "churn", "--model", "xgboost-linear",
                       "--param", "n_estimators=10"]),
            ("lin", ["--data", CHURN, "--target", "total_day_charge", "--drop", "churn",
                     "--model", "linear"]),
        ]
        # The first run creates the store and the experiment alone: concurrent
        # `keel train`s on a fresh embedded store race on both (AlreadyExists,
        # "database is locked"); afterwards two at a time are fine.
        cls.train(*specs[0])
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: cls.train(*s), specs[1:]))
        cls.keel_ok("models", "alias", "churn@champion", "1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def keel(cls, *args, cwd=None):
        cmd = [keel_binary(), "--store-uri", cls.store, "--artifact-root", cls.artifacts, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)

    @classmethod
    def keel_ok(cls, *args):
        p = cls.keel(*args)
        assert p.returncode == 0, f"keel {args} -> {p.returncode}: {p.stderr}"
        return p

    @classmethod
    def train(cls, name, args):
        cls.keel_ok("train", *args, "--register", name, "--experiment", "export")

    # --- helpers ---------------------------------------------------------------

    def export(self, ref, out, *args):
        p = self.keel("export", ref, "--output", out, *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def engine(self, ref, csv_path):
        """keel batch outputs per row, as float32 bit patterns (cached per model and file)."""
        key = (ref, csv_path)
        if key not in ExportTest.engine_cache:
            ExportTest.engine_cache[key] = self.run_engine(ref, csv_path)
        return ExportTest.engine_cache[key]

    def run_engine(self, ref, csv_path):
        out = os.path.join(self.tmp, "scores-%s-%s" % (re.sub(r"\W", "_", ref),
                                                       os.path.basename(csv_path)))
        p = self.keel("batch", ref, "--input", csv_path, "--output", out, "--max-rejects", "0")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, newline="") as f:
            rows = list(csv.reader(f))[1:]
        k = len(rows[0])
        bits = f32_bits_of_texts([v for r in rows for v in r]).reshape(len(rows), k)
        return [list(map(int, r)) for r in bits]

    def compile_c(self, d, name, extra=(), cc=None, tag=""):
        upper = name.upper()
        src = os.path.join(d, "driver.c")
        with open(src, "w") as f:
            f.write(C_DRIVER.replace("@NAME@", name).replace("@UPPER@", upper))
        exe = os.path.join(d, "driver" + tag)
        p = subprocess.run([cc or CC, "-std=c99", *WARN, "-O2", *extra, "-I", d, "-o", exe, src,
                            os.path.join(d, name + ".c"), "-lm"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return exe

    def compile_cpp(self, d, name):
        src = os.path.join(d, "driver.cc")
        with open(src, "w") as f:
            f.write(CPP_DRIVER.replace("@NAME@", name).replace("@UPPER@", name.upper()))
        exe = os.path.join(d, "driver-cpp")
        p = subprocess.run([CXX, "-std=c++17", *WARN, "-O2", "-I", d, "-o", exe, src],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return exe

    def run_driver(self, exe, lines, encoded=False):
        """(outputs as float32 bits, encoded vectors when asked) per line."""
        p = subprocess.run([exe] + (["encoded"] if encoded else []), input=lines,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"{exe}: {p.returncode} {p.stderr}")
        outs, enc = [], []
        for line in p.stdout.splitlines():
            left, _, right = line.partition("|")
            outs.append([f32_bits(float.fromhex(v)) for v in left.split()])
            if encoded:
                enc.append([float.fromhex(v) for v in right.split()])
        return outs, enc

    def assertSameBits(self, got, want, what):
        self.assertEqual(len(got), len(want), what)
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        if bad:
            i = bad[0]
            g = [struct.unpack("<f", struct.pack("<I", b))[0] for b in got[i]]
            w = [struct.unpack("<f", struct.pack("<I", b))[0] for b in want[i]]
            self.fail(f"{what}: {len(bad)} of {len(want)} rows differ; first row {i}: "
                      f"generated {g} != engine {w}")

    def check_readme_sizes(self, d, name, cpp=False):
        """The generated README's sizes against the compiled code.

        Data: the generator's table total against the .rodata sections of the
        -Os object (0.9 x rodata <= reported, for the padding compilers add;
        reported <= rodata + 64, for a tiny table folded into the code). Code:
        the README's estimate within its stated 25% of .text, and stack: its
        figure bounds the deepest call chain -fstack-usage reports at -O2 --
        both stated for x86-64 GCC 12, so checked there only.
        """
        if not SIZE or not (CXX if cpp else CC):
            return
        with open(os.path.join(d, "README.md")) as f:
            readme = f.read()
        reported = readme_number(readme, r"\| \*\*total\*\* \| \| \*\*([\d,]+)\*\* \|")
        code = readme_number(readme, r"Code: about ([\d,]+) bytes of machine code \(`\.text`\) "
                                     r"as x86-64 GCC 12 compiles [^\n]* at `-Os`")
        stack = readme_number(readme, r"Stack: about ([\d,]+) bytes per `")
        self.assertIn("an upper bound of what GCC 12 uses at `-O2` on x86-64", readme)
        if cpp:
            src = os.path.join(d, "use_size.cc")
            with open(src, "w") as f:
                f.write(f'#include "{name}.hpp"\nvoid f(const {name}::Input& i, float* o) '
                        f'{{ {name}::Predict(i, o); }}\n')
            cmd = [CXX, "-std=c++17", "-ffp-contract=off", "-c", src]
        else:
            cmd = [CC, "-std=c99", "-ffp-contract=off", "-c", os.path.join(d, name + ".c")]
        obj = os.path.join(d, "size-Os.o")
        subprocess.run(cmd + ["-Os", "-o", obj], check=True)
        sizes = section_sizes(obj)
        rodata = sum(v for k, v in sizes.items()
                     if k.startswith(".rodata") and not k.startswith(".rodata.cst"))
        text = sum(v for k, v in sizes.items() if k.startswith(".text"))
        self.assertLessEqual(0.9 * rodata, reported, f"{name}: .rodata {rodata}")
        self.assertLessEqual(reported, rodata + 64, f"{name}: .rodata {rodata}")
        if not X86_GCC12:
            return
        self.assertLessEqual(0.75 * text, code, f"{name}: .text {text}")
        self.assertLessEqual(code, 1.25 * text, f"{name}: .text {text}")
        obj2 = os.path.join(d, "size-O2.o")
        subprocess.run(cmd + ["-O2", "-fstack-usage", "-o", obj2], check=True)
        frames = {}
        with open(obj2[:-2] + ".su") as f:
            for line in f:
                where, size, kind = line.rstrip("\n").split("\t")
                self.assertTrue(kind.startswith("static"), line)
                fn = where.rsplit(":", 1)[1]
                frames[fn[len(name) + 1:] if fn.startswith(name + "_") else fn] = int(size)
        if cpp:
            chain = sum(frames.values())  # everything: an upper bound
        else:
            g = frames.get
            chain = g("predict", 0) + max(
                g("encode", 0) + g("find_", 0),
                g("predict_encoded", 0) + max(g("trees_", 0) + g("go_right_", 0),
                                              g("linear_", 0)))
        self.assertGreater(chain, 0)
        self.assertLessEqual(chain, stack, f"{name}: stack frames {frames}")
        self.assertLessEqual(stack, 2 * chain + 256, f"{name}: stack frames {frames}")

    def check_model(self, ref, name, records, eval_csv, cpp=False, sanitize=False,
                    encoded=False, clang=False):
        """Exports `ref` as C, compiles, compares every record with keel batch."""
        d = os.path.join(self.tmp, "out-" + name)
        self.export(ref, d, "--format", "c", "--name", name)
        self.assertEqual(sorted(os.listdir(d)), sorted([name + ".h", name + ".c", "README.md"]))
        with open(os.path.join(d, name + ".h")) as f:
            inputs = parse_header_inputs(f.read(), name.upper())
        lines = driver_lines(records, inputs)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # the machine has 2 cores
            want_f = pool.submit(self.engine, ref, eval_csv)
            exe = self.compile_c(d, name)
            want = want_f.result()
        got, enc = self.run_driver(exe, lines, encoded)
        self.assertSameBits(got, want, f"{ref} as C")
        self.check_readme_sizes(d, name)
        if sanitize:
            san, _ = self.run_driver(
                self.compile_c(d, name, ("-fsanitize=address,undefined",
                                         "-fno-sanitize-recover=all"), tag="-san"), lines)
            self.assertSameBits(san, want, f"{ref} as C under ASan/UBSan")
        if clang and CLANG:
            got_clang, _ = self.run_driver(
                self.compile_c(d, name, ("-ffp-contract=off",), cc=CLANG, tag="-clang"), lines)
            self.assertSameBits(got_clang, want, f"{ref} as C compiled by clang")
        if cpp and CXX:
            dh = os.path.join(self.tmp, "out-" + name + "-hpp")
            self.export(ref, dh, "--format", "cpp-header", "--name", name)
            self.assertEqual(sorted(os.listdir(dh)), sorted([name + ".hpp", "README.md"]))
            # The C++ Input starts missing: fill_NUMBER leaves "-" fields alone.
            got_cpp, _ = self.run_driver(self.compile_cpp(dh, name), lines)
            self.assertSameBits(got_cpp, want, f"{ref} as C++ header")
            self.check_readme_sizes(dh, name, cpp=True)
        return enc, want

    # --- trained models --------------------------------------------------------------

    @unittest.skipUnless(CC, "no C compiler")
    def test_binary_onehot_with_missing_values(self):
        encoded, _ = self.check_model("churn@champion", "churn_bin", self.records,
                                      self.eval_csv, cpp=True, encoded=True)
        # The blank rows do reach NaN inputs.
        self.assertTrue(np.isnan(np.array(encoded)).any())

    @unittest.skipUnless(CC, "no C compiler")
    def test_multiclass(self):
        self.check_model("area/1", "area_multi", self.records, self.eval_csv)

    @unittest.skipUnless(CC, "no C compiler")
    def test_regression(self):
        self.check_model("charge/1", "charge_reg", self.records, self.eval_csv)

    @unittest.skipUnless(CC, "no C compiler")
    def test_native_categorical_splits(self):
        self.check_model("native/1", "native_cat", self.records, self.eval_csv, cpp=True,
                         sanitize=True, clang=True)
        with open(os.path.join(self.tmp, "out-native_cat", "native_cat.c")) as f:
            self.assertIn("cat_bits_", f.read())  # the model does split on categories

    @unittest.skipUnless(CC, "no C compiler")
    def test_linear_models(self):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(self.check_model, "gblin/1", "gblin", self.records, self.eval_csv,
                                cpp=True),  # XGBoost gblinear: float sums
                    pool.submit(self.check_model, "lin/1", "lin_reg", self.records,
                                self.eval_csv, clang=True)]  # keel linear: double sums
        # keel's logistic model is the same code with a sigmoid: unit tests.
            for job in jobs:
                job.result()  # re-raises a failed assertion

    # --- fixtures: LightGBM and XGBoost files from tests/data ---------------------------

    def check_fixture(self, model_file, rows_csv, name, x_prefix, cpp=False):
        path = os.path.join(DATA, model_file)
        d = os.path.join(self.tmp, "out-" + name)
        self.export(path, d, "--name", name)
        with open(os.path.join(d, name + ".h")) as f:
            inputs = parse_header_inputs(f.read(), name.upper())
        with open(os.path.join(DATA, rows_csv), newline="") as f:
            src = list(csv.DictReader(f))
        # Rename the fixture's input columns (x0.. or the file's names) to the
        # model's feature names, keep only those.
        cols = [k for k in src[0] if re.fullmatch(x_prefix, k)]
        self.assertEqual(len(cols), len(inputs), (cols, inputs))
        records = [{inp[1]: r[c] for inp, c in zip(inputs, cols)} for r in src]
        eval_csv = os.path.join(self.tmp, name + ".csv")
        with open(eval_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[i[1] for i in inputs])
            w.writeheader()
            w.writerows(records)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            want_f = pool.submit(self.engine, path, eval_csv)
            exe = self.compile_c(d, name)
            want = want_f.result()
        got, _ = self.run_driver(exe, driver_lines(records, inputs))
        self.assertSameBits(got, want, f"{model_file} as C")
        if cpp and CXX:
            dh = d + "-hpp"
            self.export(path, dh, "--name", name, "--format", "cpp-header")
            got_cpp, _ = self.run_driver(self.compile_cpp(dh, name),
                                         driver_lines(records, inputs))
            self.assertSameBits(got_cpp, want, f"{model_file} as C++ header")

    @unittest.skipUnless(CC, "no C compiler")
    def test_lightgbm_fixtures(self):
        jobs = []
        for model, rows, cpp in [("lgb_binary_numerical", "lgb_binary_numerical.csv", True),
                                 ("lgb_binary_categorical", "lgb_binary_categorical.csv", False),
                                 ("lgb_multiclass_softmax", "lgb_multiclass_softmax.csv", False),
                                 ("lgb_multiclassova", "lgb_multiclassova.csv", False),
                                 ("lgb_poisson_average", "lgb_poisson_average.csv", False),
                                 ("lgb_regression_v4", "lgb_regression_v4.csv", False),
                                 ("lgb_cross_entropy", "lgb_cross_entropy.csv", False),
                                 ("treelite_model_with_constant_tree",
                                  "treelite_model_with_constant_tree.csv", False)]:
            jobs.append((model, ("lightgbm/" + model + ".txt", "lightgbm/" + rows,
                                 model.replace("treelite_model_with_", "tl_"), r"x\d+", cpp)))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [(model, pool.submit(self.check_fixture, *args)) for model, args in jobs]
            for model, future in futures:
                with self.subTest(model=model):
                    future.result()

    @unittest.skipUnless(CC, "no C compiler")
    def test_xgboost_categorical_fixture(self):
        for f in ("small_cat.json", "small_cat.ubj"):
            with self.subTest(file=f):
                self.check_fixture("xgboost/" + f, "xgboost/small_cat_expected.csv",
                                   "small_cat_" + f[-4:].strip("."), r"num_a|num_b|cat_c",
                                   cpp=f.endswith("json"))

    # --- the mlflow format -------------------------------------------------------------

    @unittest.skipUnless(CC, "no C compiler")
    def test_mlflow_directory(self):
        import pandas as pd
        import xgboost as xgb
        import yaml
        d = os.path.join(self.tmp, "mlflow-churn")
        p = self.export("churn@champion", d, "--format", "mlflow")
        self.assertIn("MLmodel", p.stdout)
        self.assertEqual(sorted(os.listdir(d)), ["MLmodel", "conda.yaml", "model.json",
                                                 "python_env.yaml", "requirements.txt"])
        with open(os.path.join(d, "MLmodel")) as f:
            mlmodel = yaml.safe_load(f)
        pyfunc = mlmodel["flavors"]["python_function"]
        self.assertEqual(pyfunc["loader_module"], "mlflow.xgboost")
        self.assertEqual(pyfunc["data"], "model.json")
        for env in pyfunc["env"].values():
            self.assertTrue(os.path.isfile(os.path.join(d, env)), env)
        flavor = mlmodel["flavors"]["xgboost"]
        self.assertEqual(flavor["model_class"], "xgboost.core.Booster")
        self.assertEqual(flavor["model_format"], "json")
        self.assertEqual(flavor["xgb_version"], xgb.__version__)
        self.assertIn(flavor["data"], os.listdir(d))
        self.assertEqual(mlmodel["model_size_bytes"],
                         os.path.getsize(os.path.join(d, "model.json")))
        self.assertRegex(mlmodel["model_uuid"], r"^[0-9a-f]{32}$")
        self.assertTrue(mlmodel["run_id"])
        with open(os.path.join(d, "requirements.txt")) as f:
            self.assertIn(f"xgboost=={xgb.__version__}", f.read().split())
        with open(os.path.join(d, "python_env.yaml")) as f:
            self.assertIn("-r requirements.txt", yaml.safe_load(f)["dependencies"])
        with open(os.path.join(d, "conda.yaml")) as f:
            self.assertEqual(yaml.safe_load(f)["name"], "mlflow-env")
        inputs = json.loads(mlmodel["signature"]["inputs"])
        outputs = json.loads(mlmodel["signature"]["outputs"])
        self.assertEqual(outputs, [{"type": "tensor",
                                    "tensor-spec": {"dtype": "float32", "shape": [-1]}}])
        names = [c["name"] for c in inputs]
        self.assertTrue(all(c["type"] == "double" and c["required"] for c in inputs))
        # What mlflow.xgboost's pyfunc does: Booster.load_model(data), then
        # predict(DMatrix(DataFrame with the signature's columns)). The
        # encoded rows come from the generated encoder (equal to keel's).
        dc = os.path.join(self.tmp, "out-mlflow-c")
        self.export("churn@champion", dc, "--name", "mlf")
        with open(os.path.join(dc, "mlf.h")) as f:
            hinputs = parse_header_inputs(f.read(), "MLF")
        _, encoded = self.run_driver(self.compile_c(dc, "mlf"),
                                     driver_lines(self.records, hinputs), encoded=True)
        booster = xgb.Booster()
        booster.load_model(os.path.join(d, pyfunc["data"]))
        # keel's model files may carry no feature names; when they do, they
        # are the signature's.
        self.assertIn(booster.feature_names, (None, names))
        self.assertEqual(len(names), len(encoded[0]))
        self.assertIn("international_plan=yes", names)
        frame = pd.DataFrame(np.array(encoded, dtype=np.float64), columns=names)
        pred = booster.predict(xgb.DMatrix(frame))
        want = self.engine("churn@champion", self.eval_csv)
        self.assertSameBits([[f32_bits(v)] for v in pred.astype(np.float32)], want,
                            "libxgboost on the exported MLflow model")

    def test_mlflow_refuses_other_formats(self):
        d = os.path.join(self.tmp, "mlflow-lgb")
        p = self.keel("export", os.path.join(DATA, "lightgbm", "lgb_binary_numerical.txt"),
                      "--format", "mlflow", "--output", d)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn("XGBoost", p.stderr)
        self.assertFalse(os.path.exists(d))
        p = self.keel("export", "lin/1", "--format", "mlflow", "--output", d)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("keel-linear", p.stderr)

    # --- naming, output directory and errors -----------------------------------------------

    def test_default_name_readme_and_determinism(self):
        d = os.path.join(self.tmp, "churn_model")
        p = self.export("churn@champion", d + "/", "--format", "c")
        self.assertIn("churn version 1", p.stdout)
        self.assertEqual(sorted(os.listdir(d)), ["README.md", "churn_model.c", "churn_model.h"])
        with open(os.path.join(d, "README.md")) as f:
            readme = f.read()
        for needle in ("## Sizes", "| **total** |", "size -A churn_model.o", "## Exactness",
                       "`churn_model_predict`", "-ffp-contract=off", "`-ffast-math`",
                       "x86-64 GCC 12"):
            self.assertIn(needle, readme)
        # The table sizes are computed exactly: their sum is the README total.
        rows = re.findall(r"^\| [^*|][^|]* \| ([\d,]+) \| ([\d,]+) \|$", readme, re.M)
        self.assertGreater(len(rows), 3)
        self.assertEqual(sum(int(b.replace(",", "")) for _, b in rows),
                         readme_number(readme, r"\| \*\*total\*\* \| \| \*\*([\d,]+)\*\*"))
        self.check_readme_sizes(d, "churn_model")
        # The same model exports to the same bytes.
        d2 = os.path.join(self.tmp, "churn_model_again")
        self.export("churn/1", d2, "--name", "churn_model")
        for f in ("churn_model.h", "churn_model.c"):
            with open(os.path.join(d, f)) as a, open(os.path.join(d2, f)) as b:
                self.assertEqual(a.read().replace("churn/1", "churn@champion"), b.read().replace(
                    "churn/1", "churn@champion"), f)

    def assertOneLineError(self, p, *needles):
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, "")
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertTrue(p.stderr.startswith("keel: error: "), p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_bad_input(self):
        out = os.path.join(self.tmp, "bad", "x")
        p = self.keel("export", "churn@champion", "--format", "rust", "--output", out)
        self.assertOneLineError(p, "unknown export format 'rust'", "c, cpp-header, mlflow")
        self.assertEqual(p.returncode, 2)
        p = self.keel("export", "nosuchmodel@champion", "--output", out)
        self.assertOneLineError(p, "nosuchmodel")
        p = self.keel("export", "churn@nosuchalias", "--output", out)
        self.assertOneLineError(p, "nosuchalias")
        p = self.keel("export", "churn@champion", "--output", out, "--name", "9lives")
        self.assertOneLineError(p, "9lives")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad")))
        # Unwritable: under a regular file, and under /proc.
        blocker = os.path.join(self.tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("x")
        p = self.keel("export", "churn@champion", "--output", os.path.join(blocker, "out"))
        self.assertOneLineError(p, "blocker")
        p = self.keel("export", "churn@champion", "--output", "/proc/keel-export-test/out")
        self.assertOneLineError(p, "/proc")
        # An existing non-empty directory is kept unless --force.
        existing = os.path.join(self.tmp, "existing")
        os.makedirs(existing)
        with open(os.path.join(existing, "keep.txt"), "w") as f:
            f.write("keep")
        p = self.keel("export", "churn@champion", "--output", existing)
        self.assertOneLineError(p, "not empty", "--force")
        self.assertEqual(os.listdir(existing), ["keep.txt"])
        self.export("churn@champion", existing, "--force", "--name", "forced")
        self.assertEqual(sorted(os.listdir(existing)), ["README.md", "forced.c", "forced.h"])
        leftovers = [n for n in os.listdir(self.tmp) if n.startswith((".tmp-", ".old-"))]
        self.assertEqual(leftovers, [])


if __name__ == "__main__":
    unittest.main()
