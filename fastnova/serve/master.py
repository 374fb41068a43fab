"""The pre-fork master: binds, forks workers, keeps them alive, and answers operators' signals.

It is gunicorn's arbiter as operators know it:

  TERM        graceful: workers drain (stop accepting, finish answers in progress), exit 0
  INT, QUIT   fast: workers are told to quit at once (then killed), exit 0
  HUP         reload: a new generation of workers starts; once it is ready the old one drains
  TTIN/TTOU   one worker more / one fewer
  CHLD        a dead worker is reaped and replaced

Signal handlers only enqueue; the loop below drains the queue.  The master creates the listening
sockets and nothing else fork-sensitive: the store, event loops and connections are opened by the
children.  A worker whose heartbeat file is not touched for ``timeout`` seconds (its event loop is
stuck) is killed and replaced.

Listening: one SO_REUSEPORT socket per worker *slot*, all held by the master.  The kernel hashes
each new connection to one slot's accept queue, so connections spread evenly; because the master
keeps every slot's socket open, the queue of a worker that dies or reloads survives and its
successor accepts what was waiting.  Measured with ``wrk -t2 -c64 -d4s`` on loopback (2 cores,
3 runs, connections per worker): one shared accept socket gave 4 workers 6/7/25/29, 0/2/13/52
and 1/2/11/53 (an idle worker while another holds 80%: epoll wakes every worker and the first
one accepts a burst); per-slot SO_REUSEPORT gave 12/16/16/23, 15/15/18/19, 11/14/21/21, i.e. the
binomial spread of a hash.  With 2 workers both were even enough (shared 28/39, 25/42, 33/34;
slots 29/38, 30/37, 26/41).  The price of slots: a slot closed by TTOU resets the few connections
the kernel queued on it in the instant before the worker's copy closes, unless the kernel
migrates them (net.ipv4.tcp_migrate_req=1).
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

from fastnova.serve.glue import Notifier, set_title
from fastnova.serve.restarts import RestartPolicy

LOG = logging.getLogger("fastnova.master")
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
           signal.SIGTTOU, signal.SIGCHLD)
BOOT_FAILURES_MAX = 5          # this many boot failures in a row (no worker got ready): give up
HALT_BOOT_ERROR = 3            # the master's exit code then (gunicorn's WORKER_BOOT_ERROR too)
WORKER_BOOT_ERROR = 3          # a worker's exit code when it could not start serving
GRACEFUL_TIMEOUT = 30.0
FAST_STOP_TIMEOUT = 2.0
TICK = 0.5                     # seconds between heartbeat checks when no signal arrives


def _slot_socket(host: str, port: int) -> socket.socket:
    """A listening socket in the SO_REUSEPORT group of host:port (port 0: pick one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Listeners:
    """The master's listening sockets, one per worker slot, all bound to the same address."""

    def __init__(self, host: str, port: int):
        first = _slot_socket(host, port)
        self.host = host
        self.port = first.getsockname()[1]   # the real port when asked for 0
        self.by_slot = {0: first}

    def get(self, slot: int) -> socket.socket:
        if slot not in self.by_slot:
            self.by_slot[slot] = _slot_socket(self.host, self.port)
        return self.by_slot[slot]

    def close(self, slot: int):
        sock = self.by_slot.pop(slot, None)
        if sock is not None:
            sock.close()

    def close_all(self):
        for slot in list(self.by_slot):
            self.close(slot)

    def close_others(self, keep: int | None):
        """In a child: drop every slot but its own, so a slot the master closes really closes."""
        for slot in list(self.by_slot):
            if slot != keep:
                self.by_slot.pop(slot).close()


def bind(host: str, port: int) -> Listeners:
    return Listeners(host, port)


class WorkerInfo:
    __slots__ = ("pid", "slot", "heartbeat", "started", "ready", "retiring", "termed", "mslot")

    def __init__(self, pid, slot, heartbeat, mslot=None):
        self.mslot = mslot             # its slot of the metrics region (fastnova.serve.metrics)
        self.pid = pid
        self.slot = slot
        self.heartbeat = heartbeat
        self.started = time.monotonic()
        self.ready = False
        self.retiring = False          # replaced by a newer worker (HUP) or dropped (TTOU)
        self.termed = False            # told to drain


class Master:
    def __init__(self, listeners: Listeners, options, workers: int, timeout: float = 30.0,
                 children=(), graceful_timeout: float = GRACEFUL_TIMEOUT):
        self.listeners = listeners
        self.options = options
        self.wanted = workers
        self.timeout = timeout
        self.graceful_timeout = graceful_timeout
        self.workers: dict[int, WorkerInfo] = {}
        self.children = list(children)  # extra supervised processes: (name, start_fn) pairs
        self.child_pids = {}           # pid -> (name, start_fn, started at)
        self.child_restarts = RestartPolicy()
        self.child_due = []            # (monotonic time, name, start_fn): restarts waiting
        self.queue = []
        self.pipe_r, self.pipe_w = os.pipe()
        os.set_blocking(self.pipe_r, False)
        os.set_blocking(self.pipe_w, False)
        self.boot_failures = 0
        self.stopping = False
        self.notifier = Notifier()
        self.metrics = getattr(options, "metrics_area", None)
        self.announced = False         # READY=1 sent for the current generation

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
        set_title("master")
        LOG.info("master %d listening on %s:%d with %d workers", os.getpid(),
                 self.listeners.host, self.listeners.port, self.wanted)
        for name, start in self.children:
            self._start_child(name, start)
        self._spawn_missing()
        while True:
            try:
                select.select([self.pipe_r], [], [], TICK)
            except InterruptedError:
                pass
            self._drain_pipe()
            while self.queue:
                code = self._handle(self.queue.pop(0))
                if code is not None:
                    return code
            self._reap()
            self._restart_due_children()
            if self.boot_failures >= BOOT_FAILURES_MAX:
                LOG.error("worker failed to boot %d times in a row (see the worker errors "
                          "above); halting with exit code %d", self.boot_failures,
                          HALT_BOOT_ERROR)
                self._stop(graceful=False)
                return HALT_BOOT_ERROR
            self._check_heartbeats()
            self._retire_when_ready()
            self._spawn_missing()
            self._announce()
            self.notifier.tick()

    def _announce(self):
        """READY=1 once every wanted worker of the current generation serves (again, after a
        reload, once the old generation is told to drain)."""
        if self.announced:
            return
        current = self._current()
        if len(current) < self.wanted or not all(w.ready for w in current):
            return
        if any(w.retiring and not w.termed for w in self.workers.values()):
            return
        self.announced = True
        self.notifier.ready(len(current))

    def _handle(self, sig):
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
            self._shrink()
        return None                    # SIGCHLD: the loop reaps after the queue

    def _drain_pipe(self):
        try:
            while os.read(self.pipe_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -- workers -------------------------------------------------------------------------------

    def _current(self):
        return [w for w in self.workers.values() if not w.retiring]

    def _spawn_missing(self):
        if self.stopping:
            return
        taken = {w.slot for w in self._current()}
        for slot in range(self.wanted):
            if slot not in taken:
                if self.boot_failures:
                    # A worker that just failed at boot: don't fork-storm while it keeps failing.
                    time.sleep(min(1.0, 0.1 * self.boot_failures))
                self._spawn(slot)

    def _spawn(self, slot: int):
        sock = self.listeners.get(slot)
        fd, hb = tempfile.mkstemp(prefix="fastnova-hb-")
        os.close(fd)
        os.utime(hb, (0, 0))           # mtime 0 = "not ready"; the worker's first beat sets it
        mslot = self.metrics.take() if self.metrics is not None else None
        pid = os.fork()
        if pid == 0:
            code = WORKER_BOOT_ERROR
            try:
                self.options.metrics_slot = mslot
                os.close(self.pipe_r)
                os.close(self.pipe_w)
                self.listeners.close_others(slot)
                set_title("worker %d" % slot)
                # Imported here, after fork: the worker module brings the store (lmdb) and the
                # event loop (uvloop), which the master must never load (fork-clean).
                from fastnova.serve.worker import worker_main
                code = worker_main(sock, self.options, hb)
            finally:
                os._exit(code)
        self.workers[pid] = WorkerInfo(pid, slot, hb, mslot)
        LOG.info("worker %d started (slot %d)", pid, slot)

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
                self._worker_exited(self.workers.pop(pid), code)
            elif pid in self.child_pids:
                name, start, started = self.child_pids.pop(pid)
                if not self.stopping:
                    ran = time.monotonic() - started
                    delay = self.child_restarts.exited(name, ran)
                    LOG.warning("%s %d exited with %d after %.1fs; restarting in %.1fs", name,
                                pid, code, ran, delay)
                    self.child_due.append((time.monotonic() + delay, name, start))

    def _worker_exited(self, info: WorkerInfo, code: int):
        _unlink(info.heartbeat)
        if self.metrics is not None:
            self.metrics.give_back(info.mslot)
        if self.stopping or (info.retiring and code == 0):
            LOG.info("worker %d exited with %d", info.pid, code)
            return
        if self.metrics is not None:
            self.metrics.restarted()
        if code == WORKER_BOOT_ERROR and not info.ready:
            self.boot_failures += 1
            LOG.error("worker %d failed to boot (%d in a row)", info.pid, self.boot_failures)
        else:
            LOG.warning("worker %d exited with %d; replacing it", info.pid, code)

    def _check_heartbeats(self):
        now = time.time()
        for info in list(self.workers.values()):
            try:
                beat = os.stat(info.heartbeat).st_mtime
            except FileNotFoundError:
                continue
            if beat > 0 and not info.ready:
                info.ready = True
                self.boot_failures = 0
            if info.ready and now - beat > self.timeout:
                LOG.error("worker %d missed its heartbeat for %.1fs: killing it", info.pid,
                          now - beat)
                self._kill(info.pid, signal.SIGKILL)
            elif not info.ready and time.monotonic() - info.started > self.timeout:
                LOG.error("worker %d not ready after %.1fs: killing it", info.pid, self.timeout)
                self._kill(info.pid, signal.SIGKILL)

    def _term(self, info: WorkerInfo):
        info.termed = True
        self._kill(info.pid, signal.SIGTERM)

    def _kill(self, pid, sig):
        try:
            os.kill(pid, sig)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def _reload(self):
        old = self._current()
        LOG.info("HUP: starting a new generation; %d old workers drain once it is ready",
                 len(old))
        for info in old:
            info.retiring = True       # TERMed by _retire_when_ready
        self.notifier.reloading()
        self.announced = False
        self._spawn_missing()

    def _retire_when_ready(self):
        """TERM retiring workers once the whole generation that replaces them is ready."""
        retiring = [w for w in self.workers.values() if w.retiring and not w.termed]
        if not retiring:
            return
        current = self._current()
        if len(current) < self.wanted or not all(w.ready for w in current):
            return
        for info in retiring:
            self._term(info)

    def _shrink(self):
        if self.wanted <= 1:
            LOG.info("TTOU: already at 1 worker")
            return
        self.wanted -= 1
        for info in self._current():
            if info.slot >= self.wanted:
                info.retiring = True
                self._term(info)
        # The worker holds its copy until it stops accepting; the slot then leaves the group.
        self.listeners.close(self.wanted)
        LOG.info("TTOU: %d workers", self.wanted)

    # -- supervised children (cellfeed) --------------------------------------------------------

    def _restart_due_children(self):
        now = time.monotonic()
        due = [entry for entry in self.child_due if entry[0] <= now]
        self.child_due = [entry for entry in self.child_due if entry[0] > now]
        for _, name, start in due:
            if not self.stopping:
                self._start_child(name, start)

    def _start_child(self, name, start):
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.close(self.pipe_r)
                os.close(self.pipe_w)
                self.listeners.close_others(None)
                for sig in SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                set_title(name)
                code = start()
            finally:
                os._exit(code if isinstance(code, int) else 0)
        self.child_pids[pid] = (name, start, time.monotonic())
        LOG.info("%s %d started", name, pid)

    # -- stopping ------------------------------------------------------------------------------

    def _stop(self, graceful: bool):
        """Close our listening sockets first (new connections are refused, not left queued),
        then TERM (drain) or QUIT (exit now) everyone, and KILL whoever outlives the deadline."""
        self.stopping = True
        self.notifier.stopping()
        self.listeners.close_all()
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for pid in list(self.workers) + list(self.child_pids):
            self._kill(pid, sig)
        timeout = self.graceful_timeout if graceful else FAST_STOP_TIMEOUT
        deadline = time.monotonic() + timeout
        while (self.workers or self.child_pids) and time.monotonic() < deadline:
            time.sleep(0.02)
            self._reap()
        for pid in list(self.workers) + list(self.child_pids):
            LOG.warning("%d still running after %.0fs: killing it", pid, timeout)
            self._kill(pid, signal.SIGKILL)
        while self.workers or self.child_pids:
            pid, _ = os.waitpid(-1, 0)
            info = self.workers.pop(pid, None)
            if info is not None:
                _unlink(info.heartbeat)
            self.child_pids.pop(pid, None)
        LOG.info("master %d stopped", os.getpid())


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
