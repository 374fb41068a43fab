"""A worker process: one uvloop loop serving HTTP from the shared listening socket.

Everything fork-sensitive is created here, after fork: the event loop, the read-only LMDB
environment.  The worker proves it is alive by touching its heartbeat file from the event loop
(a blocked loop stops touching it and the master replaces the worker).  TERM drains: stop
accepting, close idle connections, let answers in progress finish, exit 0.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

from fastnova.api.app import App
from fastnova.api.protocol import HttpProtocol
from fastnova.loop import new_loop
from fastnova.store.reader import StoreReader

LOG = logging.getLogger("fastnova.worker")
HEARTBEAT_INTERVAL = 1.0
DRAIN_TIMEOUT = 30.0


class Stats:
    __slots__ = ("connections", "requests")

    def __init__(self):
        self.connections = 0
        self.requests = 0


class Worker:
    def __init__(self, sock, options, heartbeat_path: str | None):
        self.sock = sock
        self.options = options
        self.heartbeat_path = heartbeat_path
        self.protocols = set()
        self.stats = Stats()
        self.server = None
        self.loop = None

    def run(self) -> int:
        self.loop = loop = new_loop()
        reader = StoreReader(self.options.data_dir)
        app = App(reader, server_name=self.options.server_name,
                  public_endpoint=self.options.public_endpoint)
        self.server = loop.run_until_complete(
            loop.create_server(lambda: self._protocol(app), sock=self.sock, backlog=2048))
        loop.add_signal_handler(signal.SIGTERM, self.drain)
        loop.add_signal_handler(signal.SIGINT, lambda: os._exit(0))
        loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(0))
        self._beat()
        try:
            loop.run_forever()
        finally:
            reader.close()
        LOG.info("worker %d stopped after %d connections, %d requests", os.getpid(),
                 self.stats.connections, self.stats.requests)
        return 0

    def _protocol(self, app):
        proto = _Tracked(app, self.loop, self.stats, self.protocols)
        return proto

    def _beat(self):
        if self.heartbeat_path:
            try:
                os.utime(self.heartbeat_path)
            except OSError:
                pass
        self.loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    def drain(self):
        LOG.info("worker %d draining %d connections", os.getpid(), len(self.protocols))
        self.server.close()
        for proto in list(self.protocols):
            proto.drain()
        self.loop.call_later(DRAIN_TIMEOUT, self.loop.stop)
        self._stop_when_empty()

    def _stop_when_empty(self):
        if not self.protocols:
            self.loop.stop()
        else:
            self.loop.call_later(0.05, self._stop_when_empty)


class _Tracked(HttpProtocol):
    """HttpProtocol that registers itself so TERM can drain every open connection."""

    def __init__(self, app, loop, stats, registry):
        super().__init__(app, loop, stats)
        self.registry = registry

    def connection_made(self, transport):
        self.registry.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc):
        self.registry.discard(self)
        super().connection_lost(exc)


def worker_main(sock, options, heartbeat_path) -> int:
    """Entry point in the child after fork; never returns to the master's code."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        return Worker(sock, options, heartbeat_path).run()
    except Exception:
        LOG.exception("worker %d failed", os.getpid())
        return 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
