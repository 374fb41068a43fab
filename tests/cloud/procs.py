"""Processes of the test cloud: listening sockets, started services, loud failures, timings.

Every service gets a listening socket bound to port 0 *here*, handed to gunicorn as an inherited
descriptor (``--bind fd://N``): the port is known before the service starts (its peers' config
files name it) and no other test session can take it in between.  A service that exits or does not
answer in time raises ``ServiceFailed`` with the tail of its log, so a broken cloud fails the test
session loudly instead of timing out somewhere later.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

START_DEADLINE = float(os.environ.get("FASTNOVA_CLOUD_START_DEADLINE", "240"))


class ServiceFailed(RuntimeError):
    """A service of the test cloud would not start (the message carries its log's tail)."""


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def log_tail(path: Path, size: int = 6000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def run(cmd: list[str], log: Path, env: dict | None = None, timeout: float = 600) -> None:
    """A set-up step (db sync, cell mapping): its output appended to ``log``; failure is loud."""
    with open(log, "ab") as out:
        out.write(("\n$ %s\n" % " ".join(cmd)).encode())
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout)
    if proc.returncode != 0:
        raise ServiceFailed("%s exited %d:\n%s" % (" ".join(cmd[:3]), proc.returncode,
                                                   log_tail(log)))


class Service:
    """One long-running process of the cloud, in its own process group."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict | None = None,
                 pass_fds=()):
        self.name = name
        self.log = log
        self.started = time.monotonic()
        self.seconds = None            # start-up time, once it answers
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         pass_fds=tuple(pass_fds), start_new_session=True)

    def check(self):
        code = self.proc.poll()
        if code is not None:
            raise ServiceFailed("%s exited with %s during start-up; log %s:\n%s"
                                % (self.name, code, self.log, log_tail(self.log)))

    def ready(self, seconds: float | None = None):
        self.seconds = time.monotonic() - self.started if seconds is None else seconds

    def wait_http(self, url: str, ok=(200, 300, 401), deadline: float = START_DEADLINE):
        """Wait until ``url`` answers one of ``ok``; the service must stay alive meanwhile."""
        def answered():
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.status in ok
            except urllib.error.HTTPError as err:
                return err.code in ok
            except (OSError, ValueError):
                return False
        self.wait(answered, "answer %s" % url, deadline)

    def wait(self, condition, what: str, deadline: float = START_DEADLINE):
        end = time.monotonic() + deadline
        delay = 0.05
        while True:
            self.check()
            if condition():
                self.ready()
                return
            if time.monotonic() > end:
                raise ServiceFailed("%s did not %s within %.0f s; log %s:\n%s"
                                    % (self.name, what, deadline, self.log, log_tail(self.log)))
            time.sleep(delay)
            delay = min(0.5, delay * 1.5)

    def stop(self, grace: float = 10.0):
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)


# The OpenStack WSGI entry points parse sys.argv with oslo.config when they load (keystone's
# refuses gunicorn's own options), so each worker forgets the command line before it imports the
# application (post_fork runs before the worker loads it).
_GUNICORN_CONF = """import sys


def post_fork(server, worker):
    del sys.argv[1:]
"""


def gunicorn(bin_dir: Path, name: str, app: str, sock: socket.socket, log: Path, env: dict,
             workers: int = 1, threads: int = 2) -> Service:
    """A WSGI service under gunicorn, bound to ``sock`` (inherited by descriptor).

    ``--no-control-socket``: gunicorn 23+ otherwise listens on one per-user path
    (~/.gunicorn/gunicorn.ctl) that every gunicorn on the machine would fight over."""
    conf = log.parent / "gunicorn_conf.py"
    if not conf.exists():
        conf.write_text(_GUNICORN_CONF)
    cmd = [str(bin_dir / "gunicorn"), "-c", str(conf), "--bind", "fd://%d" % sock.fileno(),
           "--workers", str(workers), "--threads", str(threads), "--timeout", "300",
           "--graceful-timeout", "5", "--no-control-socket", "--name", name, app]
    return Service(name, cmd, log, env=env, pass_fds=(sock.fileno(),))
