"""The pre-fork master: binds, forks workers, keeps them alive, and answers operators' signals.

It is gunicorn's arbiter as operators know it:

  TERM        graceful: workers drain (stop accepting, finish answers in progress), exit 0
  INT, QUIT   fast: workers are killed at once
  HUP         reload: a new generation of workers starts, then the old one drains
  TTIN/TTOU   one worker more / one fewer
  CHLD        a dead worker is reaped and replaced

Signal handlers only enqueue; the loop below drains the queue.  The master creates the listening
socket and nothing else fork-sensitive: the store, event loops and connections are opened by the
children.  A worker whose heartbeat file is not touched for ``timeout`` seconds (its event loop is
stuck) is killed and replaced.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import tempfile
import time

from fastnova.worker import worker_main

LOG = logging.getLogger("fastnova.master")
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
           signal.SIGTTOU, signal.SIGCHLD)
BOOT_FAILURES_MAX = 5          # a worker that dies this many times in a row at boot: give up
GRACEFUL_TIMEOUT = 30.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Master:
    def __init__(self, sock, options, workers: int, timeout: float = 30.0, children=()):
        self.sock = sock
        self.options = options
        self.wanted = workers
        self.timeout = timeout
        self.workers = {}              # pid -> heartbeat path
        self.children = list(children)  # extra supervised processes: (name, start_fn) pairs
        self.child_pids = {}           # pid -> (name, start_fn)
        self.queue = []
        self.pipe_r, self.pipe_w = os.pipe()
        os.set_blocking(self.pipe_r, False)
        os.set_blocking(self.pipe_w, False)
        self.boot_failures = 0
        self.stopping = False

    # -- signals -------------------------------------------------------------------------------

    def _on_signal(self, signum, _frame):
        self.queue.append(signum)
        try:
            os.write(self.pipe_w, b".")
        except OSError:
            pass

    def _install_signals(self):
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    # -- main loop -----------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        LOG.info("master %d listening on %s with %d workers", os.getpid(),
                 self.sock.getsockname(), self.wanted)
        for name, start in self.children:
            self._start_child(name, start)
        self._spawn_missing()
        while True:
            try:
                select.select([self.pipe_r], [], [], 1.0)
            except InterruptedError:
                pass
            self._drain_pipe()
            while self.queue:
                code = self._handle(self.queue.pop(0))
                if code is not None:
                    return code
            self._reap()
            if self.boot_failures >= BOOT_FAILURES_MAX:
                LOG.error("workers keep failing at boot; stopping")
                self._stop(graceful=False)
                return 3
            self._check_heartbeats()
            self._spawn_missing()

    def _handle(self, sig):
        if sig == signal.SIGCHLD:
            return None
        if sig == signal.SIGTERM:
            self._stop(graceful=True)
            return 0
        if sig in (signal.SIGINT, signal.SIGQUIT):
            self._stop(graceful=False)
            return 0
        if sig == signal.SIGHUP:
            self._reload()
        elif sig == signal.SIGTTIN:
            self.wanted += 1
            LOG.info("TTIN: %d workers", self.wanted)
        elif sig == signal.SIGTTOU:
            if self.wanted > 1:
                self.wanted -= 1
                oldest = min(self.workers, key=lambda pid: self.workers[pid][1])
                self._kill(oldest, signal.SIGTERM)
            LOG.info("TTOU: %d workers", self.wanted)
        return None

    def _drain_pipe(self):
        try:
            while os.read(self.pipe_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -- workers -------------------------------------------------------------------------------

    def _spawn_missing(self):
        while not self.stopping and len(self.workers) < self.wanted:
            self._spawn()

    def _spawn(self):
        fd, hb = tempfile.mkstemp(prefix="fastnova-hb-")
        os.close(fd)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.close(self.pipe_r)
                os.close(self.pipe_w)
                code = worker_main(self.sock, self.options, hb)
            finally:
                os._exit(code)
        self.workers[pid] = (hb, time.monotonic())
        LOG.info("worker %d started", pid)

    def _reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if pid in self.workers:
                hb, started = self.workers.pop(pid)
                _unlink(hb)
                if not self.stopping:
                    LOG.warning("worker %d exited with %d", pid, code)
                    early = time.monotonic() - started < 2.0 and code != 0
                    self.boot_failures = self.boot_failures + 1 if early else 0
            elif pid in self.child_pids:
                name, start = self.child_pids.pop(pid)
                if not self.stopping:
                    LOG.warning("%s %d exited with %d; restarting", name, pid, code)
                    time.sleep(1.0)
                    self._start_child(name, start)

    def _check_heartbeats(self):
        now = time.time()
        for pid, (hb, started) in list(self.workers.items()):
            try:
                beat = os.stat(hb).st_mtime
            except FileNotFoundError:
                continue
            if now - beat > self.timeout and time.monotonic() - started > self.timeout:
                LOG.error("worker %d missed its heartbeat for %.0fs: killing", pid, now - beat)
                self._kill(pid, signal.SIGKILL)

    def _kill(self, pid, sig):
        try:
            os.kill(pid, sig)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def _reload(self):
        old = list(self.workers)
        LOG.info("HUP: starting a new generation, draining %d old workers", len(old))
        for _ in range(self.wanted):
            self._spawn()
        for pid in old:
            self._kill(pid, signal.SIGTERM)

    # -- supervised children (cellfeed) --------------------------------------------------------

    def _start_child(self, name, start):
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.close(self.pipe_r)
                os.close(self.pipe_w)
                self.sock.close()
                for sig in SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                code = start()
            finally:
                os._exit(code if isinstance(code, int) else 0)
        self.child_pids[pid] = (name, start)
        LOG.info("%s %d started", name, pid)

    # -- stopping ------------------------------------------------------------------------------

    def _stop(self, graceful: bool):
        self.stopping = True
        sig = signal.SIGTERM if graceful else signal.SIGKILL
        for pid in list(self.workers) + list(self.child_pids):
            self._kill(pid, sig)
        deadline = time.monotonic() + (GRACEFUL_TIMEOUT if graceful else 5.0)
        while (self.workers or self.child_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
            self._reap()
        for pid in list(self.workers) + list(self.child_pids):
            self._kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        self._reap()
        self.sock.close()
        LOG.info("master %d stopped", os.getpid())


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
