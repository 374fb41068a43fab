"""Shared pieces of the cellfeed tests: real broker names, a consumer process, a store reader,
and a TCP forwarder that cuts connections on demand (pika's tests/misc/forward_server.py idea).

Everything is real: RabbitMQ at $FASTNOVA_AMQP_URL (default the local guest broker), LMDB in a
temporary data dir, the consumer a separate ``python -m cellfeed.cli run`` process.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib

import pika

from cellfeed import contract
from cellfeed.publish import Publisher
from tests.services import AMQP_URL, needs_broker  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Names:
    """A unique exchange and queue per test, deleted (with the dead-letter pair) afterwards."""

    def __init__(self):
        tag = uuidlib.uuid4().hex[:10]
        self.exchange = "test.cellfeed.%s" % tag
        self.queue = "test.cellfeed.%s.q" % tag

    def cleanup(self):
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        for queue in (self.queue, self.queue + ".dead"):
            ch.queue_delete(queue)
        for exchange in (self.exchange, self.queue + ".dlx"):
            ch.exchange_delete(exchange)
        conn.close()

    def publisher(self, confirm=True) -> Publisher:
        pub = Publisher(AMQP_URL, self.exchange, confirm=confirm)
        pub.declare_queue(self.queue)
        return pub

    def queue_depth(self, queue=None) -> int:
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            frame = conn.channel().queue_declare(queue or self.queue, passive=True)
            return frame.method.message_count
        finally:
            conn.close()

    def get_all(self, queue) -> list:
        """Drain a queue (the dead-letter queue): [(properties, body)]."""
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch, out = conn.channel(), []
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            out.append((props, body))
        conn.close()
        return out


class FeedProcess:
    """``cellfeed run`` in its own process, as the fastnova master runs it."""

    def __init__(self, data_dir, names: Names, *extra, url=AMQP_URL):
        self.args = [sys.executable, "-m", "cellfeed.cli", "run", "--amqp", url,
                     "--data-dir", str(data_dir), "--exchange", names.exchange,
                     "--queue", names.queue, *extra]
        self.log_path = os.path.join(str(data_dir), "cellfeed-%d.log" % time.monotonic_ns())
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=REPO)
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO)
        return self

    def output(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_consuming(self, timeout=20):
        wait_for(lambda: "consuming" in self.output() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, self.output()

    def stop(self, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()


class Store:
    """Read-only view of the store, opened per call so the writer process can come and go."""

    def __init__(self, data_dir):
        self.data_dir = str(data_dir)

    def _reader(self):
        from fastnova.store.reader import StoreReader
        return StoreReader.open(self.data_dir)

    def exists(self) -> bool:
        # The consumer creates the store (and its named databases) when it starts.
        import lmdb
        if not os.path.exists(os.path.join(self.data_dir, "store", "data.mdb")):
            return False
        try:
            self._reader().close()
            return True
        except lmdb.Error:
            return False

    def records(self) -> dict:
        import orjson
        if not self.exists():
            return {}
        reader = self._reader()
        try:
            with reader.begin() as txn, txn.cursor(db=reader.records) as cur:
                return {k.decode(): orjson.loads(v) for k, v in cur}
        finally:
            reader.close()

    def flavor(self, flavorid):
        reader = self._reader()
        try:
            with reader.begin() as txn:
                return reader.flavor_record(txn, str(flavorid).encode())
        finally:
            reader.close()

    def position(self) -> int:
        from cellfeed.applier import META_POSITION
        from fastnova.store import layout as L
        if not self.exists():
            return 0
        reader = self._reader()
        try:
            with reader.begin() as txn:
                raw = txn.get(META_POSITION, db=reader.dbs[L.DB_META])
                return int(raw) if raw else 0
        finally:
            reader.close()


def wait_for(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met within %.0fs" % timeout)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def server(uuid, version, project="p1", **fields) -> dict:
    rec = {"id": uuid, "version": version, "project_id": project, "user_id": "u1",
           "name": "vm-%s-v%d" % (uuid[:8], version), "created_at": "2024-05-01T10:00:00",
           "vm_state": "active", "power_state": 1,
           "flavor": {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1}}
    rec.update(fields)
    return rec


def upsert(uuid, version, **fields) -> dict:
    return contract.server_upsert(server(uuid, version, **fields))


class ForwardProxy:
    """A TCP forwarder between the consumer and the broker; ``cut()`` drops every connection
    (both directions, at once) as a network failure would, and ``pause`` refuses new ones."""

    def __init__(self, target=("127.0.0.1", 5672)):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepting = True
        self.accepted = 0
        self._pairs: list = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def url(self) -> str:
        return "amqp://guest:guest@127.0.0.1:%d/%%2F" % self.port

    def _accept_loop(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.accepting:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.accepting = False
        self.listener.close()
        self.cut()
