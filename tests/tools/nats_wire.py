"""A small NATS client speaking the text protocol, for keel's tests and benchmarks.

No third-party package and no libnats: a blocking socket read by the caller's
thread, so the tests check keel against an independent implementation of the
protocol. It covers what the streaming tests need: publish (with headers),
subscribe, request/reply, and JetStream's JSON API ($JS.API.*): streams,
consumers, acknowledged publishes (pipelined), pull fetches and reading a
stream back.

    with NatsServer() as srv:
        nc = Nats(srv.port)
        js = JetStream(nc)
        js.add_stream("EVENTS", ["events.>"])
        js.publish_many([("events.a", b"{}", {"Nats-Msg-Id": "1"})])
        msgs = js.read_stream("EVENTS")       # [Msg], in stream order

One Nats object is used by one thread at a time.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import deque


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """nats-server -js on a free loopback port with a temporary store directory."""

    def __init__(self, binary="nats-server"):
        self.binary = shutil.which(binary) or "/usr/sbin/nats-server"
        self.port = None
        self.dir = None
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="keel-nats-")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd",
             os.path.join(self.dir, "store")], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nats-server exited: " + self.read_log())
            try:
                Nats(self.port, timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start: " + self.read_log())

    def read_log(self):
        with open(os.path.join(self.dir, "server.log")) as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Msg:
    __slots__ = ("subject", "sid", "reply", "headers", "data", "status", "description", "seq")

    def __init__(self, subject, sid, reply, headers, data, status=None, description=None):
        self.subject, self.sid, self.reply = subject, sid, reply
        self.headers, self.data = headers, data
        self.status, self.description = status, description
        self.seq = None

    def json(self):
        return json.loads(self.data)

    def js_meta(self):
        """JetStream metadata from the reply subject ($JS.ACK...), or None."""
        if not self.reply or not self.reply.startswith("$JS.ACK."):
            return None
        t = self.reply.split(".")
        if len(t) == 9:  # $JS.ACK.stream.consumer.delivered.sseq.cseq.ts.pending
            base = 2
        else:  # $JS.ACK.domain.account.stream.consumer.delivered.sseq.cseq.ts.pending.token
            base = 4
        return {"stream": t[base], "consumer": t[base + 1], "delivered": int(t[base + 2]),
                "stream_seq": int(t[base + 3]), "consumer_seq": int(t[base + 4]),
                "pending": int(t[base + 6])}


class NatsError(Exception):
    pass


class NoResponders(NatsError):
    pass


class Nats:
    def __init__(self, port, host="127.0.0.1", timeout=10, name="keel-test"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.out = bytearray()
        line = self._line(time.time() + timeout)
        if not line.startswith(b"INFO "):
            raise NatsError("expected INFO, got %r" % line)
        self.info = json.loads(line[5:])
        connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                   "protocol": 1, "name": name, "lang": "python-wire", "version": "1"}
        self.out += b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n"
        self.flush()
        deadline = time.time() + timeout
        while True:
            line = self._line(deadline)
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode())
        self.next_sid = 1
        self.queues = {}
        self.inbox = "_INBOX." + uuid.uuid4().hex
        self.inbox_sid = self.subscribe(self.inbox + ".*")
        self.replies = {}
        self.next_req = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- wire ----
    def flush(self):
        if self.out:
            self.sock.sendall(self.out)
            self.out.clear()

    def _fill(self, deadline):
        remaining = deadline - time.time()
        if remaining <= 0:
            raise TimeoutError("nats: timed out")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("nats: timed out")
        if not chunk:
            raise NatsError("connection closed by the server")
        self.buf += chunk

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill(deadline)

    def _bytes(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n + 2]
        return data

    def _read_op(self, deadline):
        """Reads one protocol operation; routes messages. Returns when one was read."""
        line = self._line(deadline)
        if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
            parts = line.decode().split(" ")
            if parts[0] == "MSG":
                subject, sid = parts[1], int(parts[2])
                reply = parts[3] if len(parts) == 5 else None
                payload = self._bytes(int(parts[-1]), deadline)
                msg = Msg(subject, sid, reply, {}, payload)
            else:
                subject, sid = parts[1], int(parts[2])
                reply = parts[3] if len(parts) == 6 else None
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._bytes(total, deadline)
                headers, status, desc = parse_headers(raw[:hlen])
                msg = Msg(subject, sid, reply, headers, raw[hlen:], status, desc)
            if sid == self.inbox_sid:
                self.replies[subject] = msg
            else:
                self.queues.setdefault(sid, deque()).append(msg)
        elif line == b"PING":
            self.out += b"PONG\r\n"
            self.flush()
        elif line.startswith(b"-ERR"):
            raise NatsError(line.decode())
        # +OK, PONG, INFO: nothing to do

    # ---- API ----
    def publish(self, subject, data=b"", reply=None, headers=None):
        if isinstance(data, str):
            data = data.encode()
        r = (" " + reply) if reply else ""
        if headers:
            h = encode_headers(headers)
            self.out += ("HPUB %s%s %d %d\r\n" % (subject, r, len(h), len(h) + len(data))).encode()
            self.out += h + data + b"\r\n"
        else:
            self.out += ("PUB %s%s %d\r\n" % (subject, r, len(data))).encode() + data + b"\r\n"
        if len(self.out) > (1 << 16):
            self.flush()

    def subscribe(self, subject):
        sid = self.next_sid
        self.next_sid += 1
        self.queues[sid] = deque()
        self.out += ("SUB %s %d\r\n" % (subject, sid)).encode()
        self.flush()
        return sid

    def unsubscribe(self, sid):
        self.out += ("UNSUB %d\r\n" % sid).encode()
        self.flush()
        self.queues.pop(sid, None)

    def next_msg(self, sid, timeout=None):
        self.flush()
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        q = self.queues.setdefault(sid, deque())
        while not q:
            self._read_op(deadline)
        return q.popleft()

    def new_reply(self):
        self.next_req += 1
        return "%s.%d" % (self.inbox, self.next_req)

    def wait_reply(self, reply, timeout=None):
        self.flush()
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        while reply not in self.replies:
            self._read_op(deadline)
        return self.replies.pop(reply)

    def request(self, subject, data=b"", timeout=None, headers=None):
        reply = self.new_reply()
        self.publish(subject, data, reply, headers)
        msg = self.wait_reply(reply, timeout)
        if msg.status == "503":
            raise NoResponders("no responders on " + subject)
        return msg

    def ping(self, timeout=None):
        """Round trip: everything sent before is processed by the server."""
        self.out += b"PING\r\n"
        self.flush()
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        # A PONG is consumed by _read_op as a no-op; watch for it here.
        while True:
            line_end = self.buf.find(b"\r\n")
            if line_end >= 0 and bytes(self.buf[:line_end]) == b"PONG":
                del self.buf[:line_end + 2]
                return
            if line_end >= 0:
                self._read_op(deadline)
            else:
                self._fill(deadline)


def encode_headers(headers):
    h = b"NATS/1.0\r\n"
    for k, v in headers.items():
        h += ("%s: %s\r\n" % (k, v)).encode()
    return h + b"\r\n"


def parse_headers(raw):
    lines = raw.decode(errors="replace").split("\r\n")
    first = lines[0].split(" ", 2)
    status = first[1] if len(first) > 1 else None
    desc = first[2] if len(first) > 2 else None
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers[k.strip()] = v.strip()
    return headers, status, desc


class JsError(NatsError):
    def __init__(self, error):
        super().__init__("%s (code %s, err_code %s)" % (error.get("description"),
                                                         error.get("code"),
                                                         error.get("err_code")))
        self.error = error


class JetStream:
    def __init__(self, nc, prefix="$JS.API"):
        self.nc = nc
        self.prefix = prefix

    def api(self, op, body=None, timeout=None):
        data = json.dumps(body).encode() if body is not None else b""
        r = self.nc.request(self.prefix + "." + op, data, timeout)
        d = json.loads(r.data)
        if "error" in d:
            raise JsError(d["error"])
        return d

    # Streams.
    def add_stream(self, name, subjects, **config):
        cfg = {"name": name, "subjects": list(subjects), "storage": "file",
               "retention": "limits", "discard": "old", "num_replicas": 1}
        cfg.update(config)
        return self.api("STREAM.CREATE." + name, cfg)

    def update_stream(self, name, subjects, **config):
        cfg = {"name": name, "subjects": list(subjects), "storage": "file",
               "retention": "limits", "num_replicas": 1}
        cfg.update(config)
        return self.api("STREAM.UPDATE." + name, cfg)

    def stream_info(self, name):
        return self.api("STREAM.INFO." + name)

    def delete_stream(self, name):
        return self.api("STREAM.DELETE." + name)

    # Consumers.
    def add_durable(self, stream, durable, **config):
        cfg = {"durable_name": durable, "ack_policy": "explicit", "deliver_policy": "all"}
        cfg.update(config)
        return self.api("CONSUMER.DURABLE.CREATE.%s.%s" % (stream, durable),
                        {"stream_name": stream, "config": cfg})

    def consumer_info(self, stream, name):
        return self.api("CONSUMER.INFO.%s.%s" % (stream, name))

    def delete_consumer(self, stream, name):
        return self.api("CONSUMER.DELETE.%s.%s" % (stream, name))

    def fetch_one(self, stream, durable, timeout=5):
        """One message from a pull consumer (waits up to timeout), or None.

        Messages of a pull request arrive under their own subject on the
        request's reply inbox, so each fetch listens on a fresh inbox."""
        inbox = "_PULL." + uuid.uuid4().hex
        sid = self.nc.subscribe(inbox)
        body = {"batch": 1, "expires": int(timeout * 1e9)}
        self.nc.publish("%s.CONSUMER.MSG.NEXT.%s.%s" % (self.prefix, stream, durable),
                        json.dumps(body).encode(), inbox)
        try:
            msg = self.nc.next_msg(sid, timeout + 1)
        except TimeoutError:
            msg = None
        self.nc.unsubscribe(sid)
        return None if msg is None or msg.status else msg

    def ack(self, msg, kind=b"+ACK"):
        self.nc.publish(msg.reply, kind)
        self.nc.flush()

    # Publishing.
    def publish(self, subject, data, headers=None, timeout=None):
        r = self.nc.request(subject, data, timeout, headers)
        d = json.loads(r.data)
        if "error" in d:
            raise JsError(d["error"])
        return d

    def publish_many(self, items, window=1000, timeout=30):
        """Publishes (subject, data, headers) items, `window` at a time in flight; returns acks."""
        acks = []
        items = list(items)
        for start in range(0, len(items), window):
            replies = []
            for subject, data, headers in items[start:start + window]:
                reply = self.nc.new_reply()
                replies.append(reply)
                self.nc.publish(subject, data, reply, headers)
            for reply in replies:
                msg = self.nc.wait_reply(reply, timeout)
                if msg.status == "503":
                    raise NoResponders("no stream captures the subject")
                d = json.loads(msg.data)
                if "error" in d:
                    raise JsError(d["error"])
                acks.append(d)
        return acks

    # Reading back.
    def read_stream(self, stream, subject=None, timeout=30):
        """Every message of `stream` (matching `subject`), in stream order, through an
        ephemeral push consumer without acks. Each Msg gets .seq (stream sequence)."""
        deliver = "_DELIVER." + uuid.uuid4().hex
        sid = self.nc.subscribe(deliver)
        cfg = {"deliver_subject": deliver, "ack_policy": "none", "deliver_policy": "all",
               "replay_policy": "instant", "inactive_threshold": int(30e9)}
        if subject:
            cfg["filter_subject"] = subject
        info = self.api("CONSUMER.CREATE." + stream, {"stream_name": stream, "config": cfg})
        expected = info["num_pending"]
        out = []
        deadline = time.time() + timeout
        while len(out) < expected:
            msg = self.nc.next_msg(sid, max(0.01, deadline - time.time()))
            meta = msg.js_meta()
            if meta is None:
                continue  # heartbeats, flow control
            msg.seq = meta["stream_seq"]
            out.append(msg)
        self.nc.unsubscribe(sid)
        try:
            self.delete_consumer(stream, info["name"])
        except NatsError:
            pass
        return out
