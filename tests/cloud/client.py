"""A small HTTP client for the cloud tests: one request per connection, JSON in and out, and the
field-by-field comparison of fastnova's server documents with nova-api's."""
from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

from tests.server import REPO, Server, spawn_serve


class Answer:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return "<Answer %d %r>" % (self.status, self.body[:300])


def call(base: str, method: str, path: str, token: str, body=None, version: str = "2.1",
         headers: dict | None = None) -> Answer:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        hdrs = {"X-Auth-Token": token, "OpenStack-API-Version": "compute " + version,
                "Accept": "application/json"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn.request(method, parts.path.rstrip("/") + path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(delay)
        delay = min(0.2, delay * 1.5)


def fastnova(*args, timeout: float = 300) -> str:
    """Run the ``fastnova`` command line (import-nova, reconcile): its output; failure raises."""
    proc = subprocess.run([sys.executable, "-m", "fastnova.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError("fastnova %s exited %d:\n%s%s" % (args[0], proc.returncode,
                                                             proc.stdout, proc.stderr[-4000:]))
    return proc.stdout + proc.stderr


def differences(ours, theirs, our_base: str, their_base: str, path: str = "") -> list[str]:
    """Field-by-field differences of two JSON documents; links are compared with each side's
    own base URL taken out (fastnova's links name fastnova, nova's name nova)."""
    if isinstance(ours, str) and isinstance(theirs, str):
        ours, theirs = ours.replace(our_base, "BASE"), theirs.replace(their_base, "BASE")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs)):
            where = "%s.%s" % (path, key)
            if key not in ours:
                out.append("%s: missing in fastnova (nova: %r)" % (where, theirs[key]))
            elif key not in theirs:
                out.append("%s: only in fastnova (%r)" % (where, ours[key]))
            else:
                out.extend(differences(ours[key], theirs[key], our_base, their_base, where))
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        out = []
        for i, (a, b) in enumerate(zip(ours, theirs)):
            out.extend(differences(a, b, our_base, their_base, "%s[%d]" % (path, i)))
        return out
    return [] if ours == theirs else ["%s: fastnova %r, nova %r" % (path, ours, theirs)]


@contextlib.contextmanager
def serving(extra_args, workers: int = 2, timeout: float = 60.0):
    """``fastnova serve`` (tests/server.py's spawn_serve) with supervised children beside its
    workers (cellfeed in front mode): ready once it listens and ``workers`` workers said so."""
    tmp = tempfile.mkdtemp(prefix="fastnova-front-")
    srv = Server(spawn_serve(tmp, workers, 0, extra_args), tmp, workers)
    try:
        port = srv.wait_for(lambda: re.search(r"listening on [^ ]+:(\d+) ", srv.log()),
                            timeout, "the master to listen")
        srv.port = int(port.group(1))
        srv.url = "http://%s:%d" % (srv.host, srv.port)
        srv.wait_for(lambda: len(re.findall(r"worker \d+ ready", srv.log())) >= workers,
                     timeout, "%d ready workers" % workers)
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def front_of(cloud, data_dir: str, queue: str, extra=(), workers: int = 2):
    """fastnova in front mode before the cloud, as docs/deploy.md has it: import-nova first (the
    servers and flavors nova has), then ``serve --commands upstream`` following its
    notifications into queue ``queue``."""
    fastnova("import-nova", "--api-db", cloud.api_db_url, "--data-dir", data_dir)
    args = ["--data-dir", data_dir, "--commands", "upstream", "--upstream", cloud.nova_url,
            "--amqp", cloud.amqp_url, "--feed-queue", queue, "--feed-nice", "0", *extra]
    with serving(args, workers=workers) as srv:
        srv.data_dir = data_dir             # the store this server really serves
        srv.wait_for(lambda: "cellfeed: consuming" in srv.log() or None, timeout=60,
                     what="cellfeed to consume nova's notifications")
        yield srv


def own_write_overtaken(data_dir: str, sid: str) -> bool:
    """Has a notification newer than front mode's own last write of ``sid`` been applied?  (The
    store's version of the server is no longer the one front mode marked as its own.)"""
    import lmdb
    import orjson
    from fastnova.store import env as store_env, layout as L
    env = lmdb.open(store_env.store_path(data_dir), readonly=True, lock=False,
                    max_dbs=len(L.ALL_DBS) + 2)
    try:
        with env.begin() as txn:
            raw = txn.get(sid.encode(), db=env.open_db(L.DB_RECORDS, txn=txn, create=False))
            mark = txn.get(b"front_version:" + sid.encode(),
                           db=env.open_db(L.DB_META, txn=txn, create=False))
    finally:
        env.close()
    return raw is not None and (mark is None or orjson.loads(raw)["version"] != int(mark))


def let_notifications_land(front, sid: str, timeout: float = 10.0) -> None:
    """Synchronisation, not a check: wait (at most ``timeout``) until nova's notification of the
    command just answered has overtaken front mode's own write of it.  A notification of an
    earlier change that nova emitted within front mode's margin of the next command, and that
    arrives after that command's write, still outranks it (fastnova/api/front.py): a client
    issuing commands faster than notifications travel can see the earlier state until the next
    notification.  Tests of the command path wait here between commands so that the race
    documented there does not decide them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not own_write_overtaken(front.data_dir, sid):
        time.sleep(0.05)
