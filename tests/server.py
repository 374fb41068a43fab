"""Run the real ``fastnova serve`` for a test: a subprocess on a free loopback port.

    from tests.server import running_server

    with running_server(workers=2, demo=50) as srv:
        status, headers, body = srv.get("/v2.1/servers")      # admin:admin token by default
        srv.url, srv.port, srv.pid, srv.data_dir             # "http://127.0.0.1:PORT", ...
        srv.worker_pids()                                    # live workers, from /proc
        srv.log()                                            # the server's stdout+stderr so far

Each server gets a fresh temporary directory (store in ``data_dir``, log beside it), binds port 0
(the master logs the port it got) and is ready when every worker has logged "ready".  On exit it
is stopped with TERM (then KILL after ``stop_timeout``); ``srv.stop()`` does the same earlier and
returns the master's exit code.  ``env`` adds environment variables, e.g. short timeouts:
``env={"FASTNOVA_HEADER_TIMEOUT": "1"}`` (see fastnova/serve/__init__.py).
"""
from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN = "admin:admin"


class Server:
    def __init__(self, proc, tmp, workers):
        self.proc = proc
        self.pid = proc.pid
        self.tmp = tmp
        self.data_dir = os.path.join(tmp, "data")
        self.log_path = os.path.join(tmp, "serve.log")
        self.workers = workers
        self.host = "127.0.0.1"
        self.port = None
        self.url = None

    # -- observation ---------------------------------------------------------------------------

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def worker_pids(self) -> set[int]:
        """Live children of the master that are workers (not the metrics process, cellfeed or
        the forwarder: their process titles say so), read from /proc."""
        return {pid for pid in children_of(self.pid) if not _other_child(pid)}

    def ready_pids(self) -> set[int]:
        ready = {int(p) for p in re.findall(r"worker (\d+) ready", self.log())}
        return self.worker_pids() & ready

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError("server exited with %s while waiting for %s:\n%s"
                                     % (self.proc.returncode, what, self.log()[-3000:]))
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s:\n%s" % (what, self.log()[-3000:]))

    def wait_workers(self, n: int, exclude=(), timeout: float = 10.0) -> set[int]:
        """Wait until exactly n workers are alive and ready, none of them in ``exclude``."""
        excluded = set(exclude)

        def ok():
            pids = self.ready_pids()
            alive = self.worker_pids()
            good = len(pids) == n and alive == pids and not pids & excluded
            return pids if good else None
        return self.wait_for(ok, timeout, "%d ready workers" % n)

    def request_counts(self) -> dict[int, tuple[int, int]]:
        """pid -> (connections, requests), from the line each worker logs when it stops."""
        found = re.findall(r"worker (\d+) stopped after (\d+) connections, (\d+) requests",
                           self.log())
        return {int(p): (int(c), int(r)) for p, c, r in found}

    # -- action --------------------------------------------------------------------------------

    def get(self, path: str, token: str | None = ADMIN, headers=None, timeout: float = 5.0):
        """One GET on a fresh connection: (status, {lower-case name: value}, body bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if token:
                hdrs.setdefault("X-Auth-Token", token)
            conn.request("GET", path, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    _kill(pid)
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` until it is true (returned) or ``timeout`` seconds pass (an
    AssertionError): tests wait for what they need, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.01)


def accept_queue(port: int) -> int:
    """Connections waiting to be accepted on loopback listening sockets bound to ``port``
    (for a LISTEN socket, /proc/net/tcp's rx_queue column is its accept queue)."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    waiting += int(fields[4].split(":")[1], 16)
    return waiting


def wait_accepted(port: int, timeout: float = 30.0):
    """Wait until every connection made to ``port`` has been accepted by the server."""
    wait_until(lambda: accept_queue(port) == 0, timeout, "the accept queue of :%d to empty" % port)


def children_of(ppid: int) -> set[int]:
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid and fields[0] != "Z":
            out.add(int(name))
    return out


def _other_child(pid: int) -> bool:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            title = f.read()
    except OSError:
        return False
    return title.startswith(b"fastnova: ") and not title.startswith(b"fastnova: worker")


def _kill(pid):
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def spawn_serve(tmp: str, workers: int, demo: int, extra_args=(), env=None):
    """``fastnova serve`` on a free loopback port: store in TMP/data, output in TMP/serve.log."""
    cmd = [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:0",
           "--workers", str(workers), "--data-dir", os.path.join(tmp, "data"),
           "--demo", str(demo), *extra_args]
    full_env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    with open(os.path.join(tmp, "serve.log"), "wb") as log:
        return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def running_server(workers: int = 2, demo: int = 50, extra_args=(), env=None,
                   start_timeout: float = 30.0, stop_timeout: float = 15.0):
    tmp = tempfile.mkdtemp(prefix="fastnova-test-")
    proc = spawn_serve(tmp, workers, demo, extra_args, env)
    srv = Server(proc, tmp, workers)
    try:
        port = srv.wait_for(lambda: re.search(r"listening on [^ ]+:(\d+) ", srv.log()),
                            start_timeout, "the master to listen")
        srv.port = int(port.group(1))
        srv.url = "http://%s:%d" % (srv.host, srv.port)
        srv.wait_workers(workers, timeout=start_timeout)
        yield srv
    finally:
        srv.stop(stop_timeout)
        shutil.rmtree(tmp, ignore_errors=True)
