"""A worker process: one uvloop loop serving HTTP from its slot's listening socket.

Its connections are read and written through an edge-triggered epoll set that the loop watches
(fastnova/_ext/_edge.pyx: requests are then served in the order they arrived), or through
uvloop's own transports with FASTNOVA_EDGE_IO=0 or without the compiled extension.

Everything fork-sensitive is created here, after fork: the event loop, the read-only LMDB
environment.  The worker proves it is alive by touching its heartbeat file from the event loop
(a blocked loop stops touching it and the master replaces the worker).  The same periodic tick
enforces the connections' timeouts, so a request costs no timer of its own.  TERM drains: stop
accepting, close idle connections, let answers in progress finish, exit 0.  INT/QUIT exit at once.

Connections per worker are limited (``serve --max-connections``, default from RLIMIT_NOFILE,
see ``max_connections``).  At the limit the worker stops accepting until one of its connections
closes: new clients wait in the listening socket's backlog, then in the kernel's SYN retries, as
they do with nova-api (eventlet's accept loop blocks while its green pool is full) and with nginx
(which stops accepting when it runs short of worker_connections).  Accepting and closing them
would turn a burst into errors; a client in the backlog is served as soon as there is room.

Exit codes: 0 after a drain, WORKER_BOOT_ERROR when the worker could not start serving (the master
counts those and gives up after a few in a row), 1 when the loop failed later.
"""
from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import resource
import signal
import socket
import sys

from fastnova.serve import malloc
from fastnova._ext import compiled
from fastnova.config import current as current_settings
from fastnova.api.app import App
from fastnova.api.upstream import Upstream
from fastnova.api.protocol import READ_SIZE, WRITE_HIGH, WRITE_LOW, HttpProtocol, Limits
from fastnova.serve.loop import new_loop
from fastnova.serve.master import WORKER_BOOT_ERROR
from fastnova.store.env import open_env
from fastnova.store.reader import StoreReader

LOG = logging.getLogger("fastnova.worker")
HEARTBEAT_INTERVAL = 1.0


def recorder(options, identity=None):
    """This worker's counters (its slot of the master's metrics region) and access log
    (fastnova/serve/observe.py; the compiled twin unless the pure one is chosen)."""
    from fastnova.serve import metrics, observe
    slot = metrics.attach(getattr(options, "metrics_area", None),
                          getattr(options, "metrics_slot", None))
    path = getattr(options, "access_log", None)
    access = observe.AccessLog(path, identity) if path else None
    cls = compiled("_observe", "Recorder") or observe.Recorder
    return cls(slot, access)


def max_connections(nofile: int | None = None) -> int:
    """The default per-worker connection limit: the descriptor limit (RLIMIT_NOFILE, soft) less
    what the worker needs besides connections (store, listening socket, epoll, log, database
    and upstream connections): an eighth of it, at least 64."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile == resource.RLIM_INFINITY:
            nofile = 1 << 20
    return max(16, nofile - max(64, nofile // 8))


class Worker:
    def __init__(self, sock, options, heartbeat_path: str | None):
        self.sock = sock
        self.options = options
        self.heartbeat_path = heartbeat_path
        self.limits = Limits.from_options(options)
        self.max_connections = getattr(options, "max_connections", None) or max_connections()
        self.graceful_timeout = float(getattr(options, "graceful_timeout", 30.0))
        self.protocols = set()
        self.stats = None              # the recorder, made at boot (it may open the log)
        self.server = None
        self.loop = None
        self.reader = None
        self.fast = None
        self.draining = False
        self.master_pid = os.getppid()
        # Timeouts are enforced by a sweep; tick often enough that each fires within ~25%.
        self.tick = max(0.05, min(HEARTBEAT_INTERVAL, self.limits.shortest() / 4))

    def boot(self):
        malloc.tune()
        self.loop = loop = new_loop()
        # One environment for the worker's reads and its commands' writes (one LMDB open per
        # process); it must exist: serve prepared it before the first fork.
        env = open_env(self.options.data_dir, create=False)
        self.reader = StoreReader(env, db_flavour=getattr(self.options, "db_flavour", "mysql"))
        # Reader slots of workers that died holding a read transaction (kill -9, OOM) stay
        # taken in the lock file until someone checks for dead pids; do it at every start.
        stale = self.reader.env.reader_check()
        if stale:
            LOG.warning("worker %d cleared %d stale LMDB reader slots", os.getpid(), stale)
        upstream = getattr(self.options, "upstream", None)
        from fastnova.auth import build
        self.policy, authenticate = build(self.options)
        app = App(self.reader, server_name=self.options.server_name,
                  public_endpoint=self.options.public_endpoint,
                  upstream=Upstream(upstream) if upstream else None,
                  authenticate=authenticate, policy=self.policy,
                  commands=getattr(self.options, "commands", "local"))
        self.fast = app.fast
        self.app = app
        self.stats = recorder(self.options, app._identity)
        poller = edge_poller(loop)
        tracked = _Tracked if poller is not None else _UvTracked
        self.server = Acceptor(loop, self.sock,
                               lambda: tracked(app, loop, self.stats, self.limits,
                                               self.protocols, self),
                               poller=poller, limit=self.max_connections,
                               count=self.protocols.__len__)
        loop.add_signal_handler(signal.SIGTERM, self.drain)
        loop.add_signal_handler(signal.SIGINT, _quit)
        loop.add_signal_handler(signal.SIGQUIT, _quit)

    def serve(self) -> int:
        LOG.info("worker %d ready", os.getpid())
        # What boot made (modules, memos, the app) lives as long as the worker: move it out of
        # the collector's generations, so a full collection only walks objects made since.
        gc.freeze()
        self._tick()
        try:
            self.loop.run_forever()
        finally:
            self.reader.close()
            self.stats.close()         # the access log's last lines
        LOG.info("worker %d stopped after %d connections, %d requests", os.getpid(),
                 self.stats.connections, self.stats.requests)
        return 0

    def _tick(self):
        if self.heartbeat_path:
            try:
                os.utime(self.heartbeat_path)
            except OSError:
                pass
        if os.getppid() != self.master_pid and not self.draining:
            LOG.error("worker %d: master %d is gone; draining", os.getpid(), self.master_pid)
            self.drain()
        if self.fast is not None:
            # The fast path holds a store snapshot between requests; let an idle worker drop it
            # once the store has moved on, so old pages are not pinned for more than a tick.
            self.fast.release_if_stale()
        if self.policy.reload_if_changed():
            self.app.forget_callers()       # their policy answers were memoised
        self.stats.tick()              # the access log's waiting lines, in one write
        now = self.loop.time()
        for proto in list(self.protocols):
            proto.check(now)
        self.loop.call_later(self.tick, self._tick)

    def drain(self):
        if self.draining:
            return
        self.draining = True
        LOG.info("worker %d draining %d connections", os.getpid(), len(self.protocols))
        self.server.close()
        for proto in list(self.protocols):
            proto.drain()
        self.loop.call_later(self.graceful_timeout, self._drain_expired)
        self._stop_when_empty()

    def _drain_expired(self):
        LOG.warning("worker %d: %d connections still open after %.0fs; closing them",
                    os.getpid(), len(self.protocols), self.graceful_timeout)
        self.loop.stop()

    def _stop_when_empty(self):
        if not self.protocols and not self.server.opening:
            self.loop.stop()
        else:
            self.loop.call_later(0.02, self._stop_when_empty)


def _quit():
    logging.shutdown()
    os._exit(0)


class Acceptor:
    """Accepts every connection waiting on the slot's listening socket, each time it is ready.

    uvloop's own server (libuv) accepts one connection per loop iteration.  An iteration lasts
    as long as the answers it builds: with 64 clients asking for 1,000-server pages that is
    ~0.2-0.4 s, so a new set of 64 connections took ~64 iterations to be accepted and the last
    waited seconds before its first request was even read (bench/page_tail.py showed heads of
    4-5 s at p99 while every answer, once read, took under 35 ms).  Here the whole accept queue
    is taken at once (up to BATCH a wake-up; the slot's SO_REUSEPORT socket is this worker's
    alone, so nothing is taken from the other workers), and each socket becomes a transport in
    the same iteration.
    """

    BATCH = 512
    RETRY_AFTER = 0.5      # seconds without accepting after running out of descriptors

    def __init__(self, loop, sock, factory, poller=None, limit=None, count=None):
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.poller = poller            # fastnova._ext._edge.EdgePoller, or uvloop's transports
        self.fd = sock.fileno()
        self.open = True
        self.opening = 0                # accepted, transport not made yet (a drain waits)
        self.limit = limit              # connections at most (module docstring), or None
        self.count = count              # -> open connections
        self.full = False               # not accepting: at the limit
        sock.setblocking(False)
        loop.add_reader(self.fd, self._ready)

    def _at_limit(self) -> bool:
        return self.limit is not None and self.count() + self.opening >= self.limit

    def _stop_at_limit(self):
        self.full = True
        self.loop.remove_reader(self.fd)
        LOG.warning("worker %d: %d connections, its limit; not accepting until one closes",
                    os.getpid(), self.limit)

    def closed_one(self):
        """A connection closed: accept again if the limit had stopped it."""
        if self.full and self.open and not self._at_limit():
            self.full = False
            self.loop.add_reader(self.fd, self._ready)

    def _ready(self):
        for _ in range(self.BATCH):
            if self._at_limit():
                self._stop_at_limit()
                return
            try:
                conn, _peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue                     # the client gave up while queued
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    LOG.error("worker %d cannot accept connections: %s; retrying in %.1fs",
                              os.getpid(), exc, self.RETRY_AFTER)
                    self.loop.remove_reader(self.fd)
                    self.loop.call_later(self.RETRY_AFTER, self._resume)
                    return
                LOG.error("worker %d: accept failed: %s", os.getpid(), exc)
                return
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if self.poller is not None:
                try:
                    self.poller.connect(conn, self.factory)
                except OSError as exc:   # the peer reset before it was registered
                    LOG.debug("connection dropped before it was set up: %s", exc)
                    conn.close()
                continue
            self.opening += 1
            self.loop.create_task(self._open(conn))

    def _resume(self):
        if self.open and not self.full:
            self.loop.add_reader(self.fd, self._ready)

    async def _open(self, conn):
        try:
            transport, _ = await self.loop.connect_accepted_socket(self.factory, conn)
            # As the edge transport: a client that does not read holds little (protocol.py).
            transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        except Exception as exc:  # the peer reset before its transport existed
            LOG.debug("connection dropped before it was set up: %s", exc)
            conn.close()
        finally:
            self.opening -= 1

    def close(self):
        """Stop accepting (a drain); what is queued is left to the slot's next worker."""
        if self.open:
            self.open = False
            if not self.full:
                self.loop.remove_reader(self.fd)


class _Tracked(HttpProtocol):
    """HttpProtocol that registers itself so the tick and TERM reach every open connection."""

    def __init__(self, app, loop, stats, limits, registry, worker):
        super().__init__(app, loop, stats, limits)
        self.registry = registry
        self.worker = worker

    def connection_made(self, transport):
        self.registry.add(self)
        super().connection_made(transport)
        if self.worker.draining:
            # Accepted just before TERM: answer what it sent, then close (never cut it).
            self.draining = True

    def connection_lost(self, exc):
        self.registry.discard(self)
        super().connection_lost(exc)
        if self.worker.server is not None:
            self.worker.server.closed_one()


_READ = bytearray(READ_SIZE)
_READ_VIEW = memoryview(_READ)


class _UvTracked(_Tracked, asyncio.BufferedProtocol):
    """On uvloop's transports: read at most READ_SIZE at a time, as the edge transport does
    (uvloop's own reads are up to 256 KB, and the unparsed rest of a read is held while the
    client does not read its answers).  One buffer serves every connection: uvloop fills it and
    calls buffer_updated at once."""

    def get_buffer(self, sizehint):
        return _READ_VIEW

    def buffer_updated(self, nbytes):
        self.data_received(bytes(_READ_VIEW[:nbytes]))


def edge_poller(loop):
    """The worker's edge-triggered connection set (fastnova/_ext/_edge.pyx says why), or None
    for uvloop's own transports: FASTNOVA_EDGE_IO=0, FASTNOVA_PURE=1, or the extension is not
    built."""
    if not current_settings().edge_io:
        return None
    poller = compiled("_edge", "EdgePoller")
    return None if poller is None else poller(loop)


def worker_main(sock, options, heartbeat_path) -> int:
    """Entry point in the child after fork; never returns to the master's code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    worker = Worker(sock, options, heartbeat_path)
    try:
        try:
            worker.boot()
        except Exception:
            LOG.exception("worker %d failed to boot", os.getpid())
            return WORKER_BOOT_ERROR
        try:
            return worker.serve()
        except Exception:
            LOG.exception("worker %d failed", os.getpid())
            return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
