"""Shared pieces of the command tests: a nova-style HTTP client, a server launcher that also
runs the supervised forwarder/cellfeed children, a unique PostgreSQL schema, unique broker names,
and a TCP proxy that counts request/response round trips at the socket.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib


from tests.server import REPO, spawn_serve  # noqa: E402
from tests.services import AMQP_URL, PG_URL, needs_broker, needs_pg  # noqa: F401,E402
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
PROJECT = "6f70656e737461636b20342065766572"     # a demo project
TOKEN = "demo:" + PROJECT


class Server:
    def __init__(self, proc, tmp):
        self.proc, self.tmp = proc, tmp
        self.data_dir = os.path.join(tmp, "data")
        self.log_path = os.path.join(tmp, "serve.log")
        self.host, self.port = "127.0.0.1", None

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def call(self, method, path, body=None, token=TOKEN, mv="2.79", raw=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        hdrs = {"X-Auth-Token": token, "OpenStack-API-Version": "compute " + mv}
        hdrs.update(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            out = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, \
                (json.loads(out) if out else None)
        finally:
            conn.close()

    def create(self, name="vm", flavor="1", **extra):
        server = {"name": name, "flavorRef": flavor, "imageRef": IMAGE, "networks": "auto"}
        server.update(extra)
        return self.call("POST", "/v2.1/servers", {"server": server})

    def show(self, uuid, **kw):
        status, _, body = self.call("GET", "/v2.1/servers/" + uuid, **kw)
        return body["server"] if status == 200 else status

    def wait_status(self, uuid, want, timeout=20.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.show(uuid)
            got = got["status"] if isinstance(got, dict) else got
            if got == want:
                return got
            time.sleep(0.05)
        raise AssertionError("server %s is %s, not %s\n%s" % (uuid, got, want, self.log()[-3000:]))


@contextlib.contextmanager
def serve(*args, workers=1, demo=3, env=None, timeout=30.0):
    """``fastnova serve`` in a subprocess on a free port (children allowed, unlike
    tests/server.py, which expects every child of the master to be a worker)."""
    tmp = tempfile.mkdtemp(prefix="fastnova-cmd-")
    proc = spawn_serve(tmp, workers, demo, args, env)
    srv = Server(proc, tmp)
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = srv.log()
            port = re.search(r"listening on [^ ]+:(\d+) ", text)
            if port and len(re.findall(r"worker \d+ ready", text)) >= workers:
                srv.port = int(port.group(1))
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + text[-3000:])
            time.sleep(0.05)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def pg_schema():
    """A unique PostgreSQL schema, migrated with ``fastnova db sync``, dropped afterwards."""
    import psycopg2
    name = "fn_test_" + uuidlib.uuid4().hex[:10]
    subprocess.run([sys.executable, "-m", "fastnova.cli", "db", "sync", "--database", PG_URL,
                    "--db-schema", name], cwd=REPO, check=True,
                   env=dict(os.environ, PYTHONPATH=REPO))
    try:
        yield name
    finally:
        conn = psycopg2.connect(PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute('DROP SCHEMA "%s" CASCADE' % name)
        conn.close()


def pg_rows(schema, sql, params=()):
    import psycopg2
    conn = psycopg2.connect(PG_URL, options="-c search_path=" + schema)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


class Names:
    """Unique exchanges and queues for one test, deleted afterwards."""

    def __init__(self):
        tag = uuidlib.uuid4().hex[:10]
        self.updates = "test.cmd.updates." + tag
        self.feed_queue = "test.cmd.feed." + tag
        self.casts = "test.cmd.casts." + tag
        self.cast_queue = "test.cmd.casts.q." + tag

    def serve_args(self):
        return ["--amqp", AMQP_URL, "--cast-exchange", self.casts, "--cast-queue",
                self.cast_queue, "--feed-exchange", self.updates, "--feed-queue",
                self.feed_queue]

    def cellsim(self, step=0.05):
        return subprocess.Popen(
            [sys.executable, "-m", "cellfeed.cli", "cell-sim", "--amqp", AMQP_URL,
             "--exchange", self.updates, "--cast-exchange", self.casts, "--cast-queue",
             self.cast_queue, "--step", str(step)], cwd=REPO,
            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def cleanup(self):
        import pika
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        for queue in (self.feed_queue, self.feed_queue + ".dead", self.cast_queue):
            ch.queue_delete(queue)
        for exchange in (self.updates, self.casts, self.feed_queue + ".dlx"):
            ch.exchange_delete(exchange)
        conn.close()


class RoundTripProxy:
    """A TCP forwarder that counts round trips: each time the client sends after the server
    has answered (or first) is one more request/response turn on the wire."""

    def __init__(self, target_host="127.0.0.1", target_port=5432):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.turns = 0
        self.statements = 0     # PostgreSQL Query/Parse messages the clients sent
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            state = {"last": None, "buf": b"", "startup": True}
            threading.Thread(target=self._pipe, args=(client, upstream, "c", state),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, "s", state),
                             daemon=True).start()

    def _pipe(self, src, dst, side, state):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    if side == "c" and state["last"] != "c":
                        self.turns += 1
                    state["last"] = side
                    seen = self.statements
                    if side == "c":
                        self._parse(state, data)
                    if self._hold(state, side, dst, data, self.statements > seen):
                        continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _hold(self, state, side, dst, data, statement) -> bool:
        """Keep ``data`` back instead of sending it (HoldingProxy); called under the lock."""
        return False

    def _parse(self, state, data):
        """Count the statements in the client's stream of PostgreSQL protocol messages."""
        buf = state["buf"] + data
        while True:
            if state["startup"]:      # untyped: SSLRequest / StartupMessage
                if len(buf) < 8:
                    break
                size = int.from_bytes(buf[:4], "big")
                if len(buf) < size:
                    break
                code = int.from_bytes(buf[4:8], "big")
                buf = buf[size:]
                if code == 196608:
                    state["startup"] = False
                continue
            if len(buf) < 5:
                break
            size = int.from_bytes(buf[1:5], "big")
            if len(buf) < size + 1:
                break
            if buf[:1] in (b"Q", b"P"):
                self.statements += 1
            buf = buf[size + 1:]
        state["buf"] = buf

    def dsn(self, dsn=PG_URL):
        out = dsn.replace("127.0.0.1:5432", "127.0.0.1:%d" % self.port)
        return out + ("&" if "?" in out else "?") + "sslmode=disable"


class HoldingProxy(RoundTripProxy):
    """A RoundTripProxy that can hold back the answer to one statement: once ``arm()``ed, the
    next statement that writes reaches PostgreSQL (which runs and commits it) but its answer
    waits in the proxy until ``release()``, so the test can act between a command's database
    commit and what the command does next.  One held statement at a time.  Reads pass (the
    embedded cell's recovery pass may query at any moment; holding it would hold the wrong
    statement)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.armed = False
        self.holding = None           # the held connection's state: its "held" answers
        self.cond = threading.Condition(self.lock)

    def arm(self):
        with self.lock:
            self.armed, self.holding = True, None

    def wait_held(self, timeout=10.0):
        """Until the statement's answer is held: it has run (and, in autocommit, committed)."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.holding is not None and
                                      self.holding.get("held"), timeout), "no statement came"

    def release(self):
        with self.lock:
            for dst, data in self.holding.pop("held"):
                dst.sendall(data)

    def _hold(self, state, side, dst, data, statement) -> bool:
        if side == "c" and statement and self.armed and not _reads_only(data):
            self.armed = False
            state["held"] = []
            self.holding = state
            self.cond.notify_all()
        elif side == "s" and "held" in state:
            state["held"].append((dst, data))
            self.cond.notify_all()
            return True
        return False


def _reads_only(data: bytes) -> bool:
    """A simple-query message ('Q', length, SQL) whose SQL is a SELECT."""
    return data[:1] == b"Q" and data[5:].lstrip()[:6].upper() == b"SELECT"


def outbox_depth(srv) -> int:
    """Entries waiting in a running server's store outbox (read-only, beside the server)."""
    import lmdb
    env = lmdb.open(os.path.join(srv.data_dir, "store"), readonly=True, lock=False,
                    max_dbs=32)
    try:
        db = env.open_db(b"outbox", create=False)
        with env.begin() as txn:
            return txn.stat(db)["entries"]
    finally:
        env.close()
