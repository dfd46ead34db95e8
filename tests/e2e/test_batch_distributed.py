"""End-to-end tests of `keel batch --distributed` and `keel worker`.

A real nats-server (JetStream on, a temporary store) and real keel processes:
a coordinator splits the input into partitions on a work-queue stream, worker
processes score them, and the coordinator writes the output in input order.
The reference is the same job run by the local `keel batch`: the distributed
output and reject file must be byte-for-byte the same. A worker is killed
(SIGKILL) while it holds a partition, and the job still finishes with every
row exactly once.

Run: KEEL_SHARED_DIR=../shared /usr/bin/python3 tests/e2e/test_batch_distributed.py
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
from keel_harness import KeelServer, keel_binary  # noqa: E402
from nats_wire import JetStream, Nats, NatsError, NatsServer, free_port  # noqa: E402
from test_serving import CHURN, set_alias, train  # noqa: E402

SHARED = {}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="keel-dbatch-")
    k = KeelServer().start()
    SHARED.update(tmp=tmp, k=k)
    try:
        train(k, tmp, 20)
        set_alias(k, "churn", "champion", 1)
    finally:
        k.stop()  # batch jobs and workers read the store and artifact root directly
    SHARED["nats"] = NatsServer().start()


def tearDownModule():
    if "nats" in SHARED:
        SHARED["nats"].stop()
    if "k" in SHARED:
        shutil.rmtree(SHARED["k"].data_dir, ignore_errors=True)
    if "tmp" in SHARED:
        shutil.rmtree(SHARED["tmp"], ignore_errors=True)


class Worker:
    """A `keel worker` process; its stderr is collected by a thread."""

    def __init__(self, case, *args):
        self.lines = []
        self.ready = threading.Event()
        cmd = [keel_binary(), "--store-uri", case.k.store_uri, "--artifact-root",
               case.k.artifact_root, "worker", "--nats", case.nats.url, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.ready.wait(60):
            self.proc.kill()
            raise AssertionError("worker not ready: " + "".join(self.lines))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if "ready on" in line:
                self.ready.set()

    def partitions_done(self):
        return sum(1 for line in self.lines if re.search(r"partition \d+: \d+ rows in", line))

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.reader.join(10)
        if not self.proc.stderr.closed:
            self.proc.stderr.close()


class DistributedCase(unittest.TestCase):

    def on_subject(self, stream, subject):
        """Messages stored in `stream` on `subject`."""
        info = self.js.api("STREAM.INFO." + stream, {"subjects_filter": subject})
        return sum(info["state"].get("subjects", {}).values())

    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.k, cls.nats = SHARED["tmp"], SHARED["k"], SHARED["nats"]
        cls.nc = Nats(cls.nats.port)
        cls.js = JetStream(cls.nc)
        with open(CHURN) as f:
            lines = f.read().splitlines()
        cls.header, cls.rows = lines[0], lines[1:]

    @classmethod
    def tearDownClass(cls):
        cls.nc.close()

    def setUp(self):
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            w.kill()

    def worker(self, *args):
        w = Worker(self, *args)
        self.workers.append(w)
        return w

    def keel(self, *args, timeout=300):
        cmd = [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
               self.k.artifact_root, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def write(self, name, text, compress=False):
        path = os.path.join(self.tmp, name)
        if compress:
            with gzip.open(path, "wt") as f:
                f.write(text)
        else:
            with open(path, "w") as f:
                f.write(text)
        return path

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def local_and_distributed(self, input_path, *args, partition_rows=37):
        """Runs the job locally and distributed; returns both outputs (and rejects)."""
        base = os.path.splitext(os.path.basename(input_path))[0]
        local = os.path.join(self.tmp, base + ".local.csv")
        dist = os.path.join(self.tmp, base + ".dist.csv")
        p = self.keel("batch", "churn@champion", "--input", input_path, "--output", local,
                      "--no-track", "--monitor-sample", "0", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.keel("batch", "churn@champion", "--input", input_path, "--output", dist,
                      "--distributed", "--nats", self.nats.url, "--partition-rows",
                      str(partition_rows), "--window", "4", "--stall-timeout-s", "60", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return local, dist, p.stderr


class ScoringTest(DistributedCase):

    def test_output_and_rejects_match_the_local_job(self):
        """Three workers, many partitions, bad rows, a quoted field holding a line
        break and blank lines: the output and the reject file are the local job's."""
        for _ in range(3):
            self.worker("--ack-wait-ms", "5000")
        cols = [c.strip('"') for c in self.header.split(",")]
        body = list(self.rows[:1500])
        bad = body[10].split(",")
        bad[cols.index("total_day_minutes")] = "abc"
        body[10] = ",".join(bad)
        body[200] = '"KS",1,2'                     # a ragged row
        quoted = body[300].split(",")
        quoted[cols.index("state")] = '"K\nS"'      # a record over two lines
        body[300] = ",".join(quoted)
        body.insert(700, "")                        # blank lines are not records
        body.insert(701, "")
        path = self.write("in.csv", self.header + "\n" + "\n".join(body) + "\n")
        local, dist, err = self.local_and_distributed(path, "--id-column", "state",
                                                      "--keep-columns", "account_length",
                                                      "--max-rejects", "10")
        self.assertEqual(self.read(dist), self.read(local))
        self.assertEqual(self.read(dist + ".rejects.csv"), self.read(local + ".rejects.csv"))
        rejects = self.read(dist + ".rejects.csv").decode().splitlines()
        # Lines are the input's: header line 1, data row i on line i + 2.
        self.assertTrue(rejects[1].startswith("12,"), rejects)
        self.assertTrue(rejects[2].startswith("202,"), rejects)
        m = re.search(r"(\d+) rows in, (\d+) scored, (\d+) rejected.*?(\d+) partitions by "
                      r"(\d+) workers", err)
        self.assertIsNotNone(m, err)
        self.assertEqual(int(m.group(1)), 1500)
        self.assertEqual(int(m.group(3)), 2)
        self.assertEqual(int(m.group(4)), -(-1500 // 37))
        self.assertGreaterEqual(int(m.group(5)), 2, err)  # the work was shared
        # The job's tasks and results left the streams.
        job = re.search(r"job ([0-9a-f]+)", err).group(1)
        self.assertEqual(self.on_subject("KEEL_BATCH", f"keel.batch.tasks.{job}"), 0)
        self.assertEqual(self.on_subject("KEEL_BATCH_RESULTS", f"keel.batch.results.{job}"), 0)
        for w in self.workers:
            self.assertEqual(w.stop(), 0, "".join(w.lines))

    def test_gzip_input_json_lines_and_an_empty_input(self):
        self.worker()
        text = self.header + "\n" + "\n".join(self.rows[:400]) + "\n"
        local, dist, _ = self.local_and_distributed(self.write("in.csv.gz", text, True),
                                                    partition_rows=64)
        self.assertEqual(self.read(dist), self.read(local))
        # One partition holds the whole input.
        local, dist, _ = self.local_and_distributed(
            self.write("one.csv", text), "--keep-columns", "state", partition_rows=1000)
        self.assertEqual(self.read(dist), self.read(local))
        cols = [c.strip('"') for c in self.header.split(",")]
        jsonl = []
        for row in self.rows[:300]:
            rec = {}
            for c, v in zip(cols, row.split(",")):
                v = v.strip('"')
                if c == "churn":
                    continue
                try:
                    rec[c] = float(v)
                except ValueError:
                    rec[c] = v
            jsonl.append(rec)
        path = self.write("in.jsonl", "\n".join(json.dumps(r) for r in jsonl) + "\n")
        local, dist, _ = self.local_and_distributed(path, partition_rows=50)
        self.assertEqual(self.read(dist), self.read(local))
        local, dist, _ = self.local_and_distributed(self.write("empty.csv", self.header + "\n"))
        self.assertEqual(self.read(dist), self.read(local))
        # CRLF line ends, a quoted id with doubled quotes and a comma, no final line end.
        rows = list(self.rows[:120])
        rows[40] = '"K""S,X"' + rows[40][rows[40].index(","):]
        path = os.path.join(self.tmp, "crlf.csv")
        with open(path, "wb") as f:
            f.write(("\r\n".join([self.header] + rows)).encode())
        local, dist, _ = self.local_and_distributed(path, "--id-column", "state",
                                                    "--max-rejects", "5", partition_rows=7)
        self.assertEqual(self.read(dist), self.read(local))
        self.assertIn(b'"K""S,X"', self.read(dist))
        # Lone-CR line ends and a byte-order mark; blank CR lines between records.
        path = os.path.join(self.tmp, "cr.csv")
        with open(path, "wb") as f:
            f.write(b"\xef\xbb\xbf" + ("\r".join([self.header] + rows[:50] + ["", ""] +
                                                rows[50:]) + "\r").encode())
        local, dist, err = self.local_and_distributed(path, "--id-column", "state",
                                                      "--max-rejects", "5", partition_rows=9)
        self.assertEqual(self.read(dist), self.read(local))
        self.assertIn("120 rows in", err)


class FailureTest(DistributedCase):

    def assertOneLine(self, p, *parts):
        self.assertNotEqual(p.returncode, 0)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        for part in parts:
            self.assertIn(part, lines[0])

    def dist(self, path, out, *args):
        return self.keel("batch", "churn@champion", "--input", path, "--output", out,
                         "--no-track", "--distributed", "--nats", self.nats.url, *args)

    def test_bad_jobs_fail_with_one_line_and_leave_no_output(self):
        path = self.write("f.csv", self.header + "\n" + "\n".join(self.rows[:100]) + "\n")
        out = os.path.join(self.tmp, "f.out.csv")
        # No workers: the job gives up after the stall timeout.
        p = self.dist(path, out, "--stall-timeout-s", "2")
        self.assertOneLine(p, "no partition finished in 2 s", "keel worker")
        self.assertFalse(os.path.exists(out))
        # A header without a model input fails before anything is published.
        cols = [c.strip('"') for c in self.header.split(",")]
        i = cols.index("total_day_minutes")
        cut = [",".join(c for j, c in enumerate(r.split(",")) if j != i)
               for r in [self.header] + self.rows[:10]]
        p = self.dist(self.write("cut.csv", "\n".join(cut) + "\n"), out)
        self.assertOneLine(p, "total_day_minutes")
        # Flags that do not apply.
        self.assertOneLine(self.dist(path, out, "--monitor-sample", "0.5"), "--monitor-sample")
        self.assertOneLine(self.dist(path, "-"), "--output")
        dead = free_port()  # nobody listens there
        p = self.keel("batch", "churn@champion", "--input", path, "--output", out, "--no-track",
                      "--distributed", "--nats", f"nats://127.0.0.1:{dead}")
        self.assertOneLine(p, f"cannot connect to NATS at nats://127.0.0.1:{dead}")
        # Too many rejects: the job fails naming the first; no output.
        self.worker()
        body = list(self.rows[:200])
        for r in (5, 150, 151):
            body[r] = '"KS",1,2'
        p = self.dist(self.write("rej.csv", self.header + "\n" + "\n".join(body) + "\n"), out,
                      "--max-rejects", "2", "--partition-rows", "40")
        self.assertOneLine(p, "3 rows rejected", "first: line 7")
        self.assertFalse(os.path.exists(out))
        # Its remaining tasks were purged (the worker may still finish the one
        # it holds; its result is dropped with the stream's one-day limit).
        deadline = time.time() + 30
        while self.js.stream_info("KEEL_BATCH")["state"]["messages"] and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.js.stream_info("KEEL_BATCH")["state"]["messages"], 0)
        # A task whose coordinator is gone (no results consumer) is dropped unscored.
        w = self.workers[-1]
        self.js.publish("keel.batch.tasks.0badc0de", b"junk",
                        headers={"Keel-Job": "0badc0de", "Keel-Partition": "0"})
        deadline = time.time() + 30
        while self.js.stream_info("KEEL_BATCH")["state"]["messages"] and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.js.stream_info("KEEL_BATCH")["state"]["messages"], 0)
        self.assertEqual(w.stop(), 0)
        self.assertIn("1 dropped", w.lines[-1])

    def test_malformed_csv_names_the_line_of_the_whole_input(self):
        """A quote that never closes and a character after a closing quote: the
        distributed job fails as the local one does, naming the same line."""
        self.worker()
        out = os.path.join(self.tmp, "m.out.csv")
        body = list(self.rows[:300])
        body[250] = '"KS"x' + body[250][body[250].index(","):]
        path = self.write("after.csv", self.header + "\n" + "\n".join(body) + "\n")
        local = self.keel("batch", "churn@champion", "--input", path, "--output", out,
                          "--no-track", "--monitor-sample", "0")
        self.assertNotEqual(local.returncode, 0)
        self.assertIn(f"{path}:252:", local.stderr)
        p = self.dist(path, out, "--partition-rows", "40")
        self.assertOneLine(p, f"{path}:252:", "partition 6")
        self.assertFalse(os.path.exists(out))
        body = list(self.rows[:300])
        body[-1] = '"' + body[-1].replace('"', "")  # opens at line 301, never closes
        path = self.write("open.csv", self.header + "\n" + "\n".join(body) + "\n")
        local = self.keel("batch", "churn@champion", "--input", path, "--output", out,
                          "--no-track", "--monitor-sample", "0")
        self.assertIn("unterminated quote starting at line 301", local.stderr)
        p = self.dist(path, out, "--partition-rows", "40")
        self.assertOneLine(p, "unterminated quote starting at line 301")
        self.assertFalse(os.path.exists(out))

    def test_worker_killed_mid_partition(self):
        """SIGKILL a worker while JetStream shows it holding a partition: the
        partition is redelivered, and the output has every row exactly once."""
        body = (self.rows * 30)[:100000]
        path = self.write("big.csv", self.header + "\n" + "\n".join(body) + "\n")
        local = os.path.join(self.tmp, "big.local.csv")
        dist = os.path.join(self.tmp, "big.dist.csv")
        p = self.keel("batch", "churn@champion", "--input", path, "--output", local,
                      "--no-track", "--monitor-sample", "0", "--id-column", "state")
        self.assertEqual(p.returncode, 0, p.stderr)
        # A queue of its own: what other tests' workers held does not count.
        queue = ["--batch-stream", "KILLQ", "--results-stream", "KILLR", "--subject-prefix",
                 "kill.batch"]
        victim = self.worker("--ack-wait-ms", "1500", *queue)
        job = subprocess.Popen(
            [keel_binary(), "--store-uri", self.k.store_uri, "--artifact-root",
             self.k.artifact_root, "batch", "churn@champion", "--input", path, "--output", dist,
             "--id-column", "state", "--distributed", "--nats", self.nats.url,
             "--partition-rows", "2000", "--window", "8", "--no-track", *queue],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            killed = False
            deadline = time.time() + 120
            while time.time() < deadline and not killed:
                info = self.consumer()
                if victim.partitions_done() >= 2 and info and info["num_ack_pending"] >= 1:
                    # Freeze it, let what it had written reach the server, and
                    # kill it only if it holds a partition whose result it has
                    # not published: that partition can then reach the output
                    # only by redelivery. (A result published but not acked may
                    # finish the job before the ack wait, with no redelivery.)
                    victim.proc.send_signal(signal.SIGSTOP)
                    info, results = self.settled()
                    if info and results is not None and info["num_ack_pending"] >= 1 and \
                            results == info["delivered"]["consumer_seq"] - info["num_ack_pending"]:
                        held = dict(info, results_published=results)
                        victim.kill()
                        killed = True
                    else:
                        victim.proc.send_signal(signal.SIGCONT)
                time.sleep(0.01)
            self.assertTrue(killed, "".join(victim.lines))
            self.assertIsNone(job.poll())
            # The survivors finish the job, the held partition included.
            survivors = [self.worker("--ack-wait-ms", "1500", *queue),
                         self.worker("--ack-wait-ms", "1500", *queue)]
            out, err = job.communicate(timeout=240)
        finally:
            if job.poll() is None:
                job.kill()
        self.assertEqual(job.returncode, 0, err)
        self.assertEqual(self.read(dist), self.read(local))
        m = re.search(r"(\d+) redelivered, (\d+) duplicate", err)
        self.assertIsNotNone(m, err)
        # The held partition, whose result the victim never published, reached
        # a survivor as a second delivery.
        redelivered = 0
        for w in survivors:
            self.assertEqual(w.stop(), 0)
            stats = re.search(r"(\d+) redelivered", w.lines[-1])
            self.assertIsNotNone(stats, w.lines)
            redelivered += int(stats.group(1))
        self.assertGreaterEqual(redelivered, 1, err + "".join(victim.lines) + "".join(
            survivors[0].lines) + "".join(survivors[1].lines) + str(held))
        print(f"\n  {err.strip()}", file=sys.stderr)

    def consumer(self):
        try:
            return self.js.consumer_info("KILLQ", "keel-batch-workers")
        except NatsError:
            return None

    def settled(self):
        """The consumer's state and the results stored, once two readings 0.2 s
        apart agree (what a frozen worker had written has reached the server)."""
        last = None
        deadline = time.time() + 5
        while time.time() < deadline:
            time.sleep(0.2)
            info, results = self.consumer(), self.results_published()
            now = (info and (info["delivered"]["consumer_seq"], info["num_ack_pending"]), results)
            if now == last:
                return info, results
            last = now
        return None, None

    def results_published(self):
        """How many results were ever stored on KILLR (only this test's job uses it)."""
        try:
            return self.js.stream_info("KILLR")["state"]["last_seq"]
        except NatsError:
            return None


if __name__ == "__main__":
    unittest.main()
