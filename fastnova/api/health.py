"""``/healthcheck`` as oslo.middleware's healthcheck answers it (nova's api-paste.ini mounts it).

GET: 200 with the reasons as plain text (``OK``) when every check passes, else 503 with the
failing reasons; HEAD: 204 or 503 without a body.  ``Accept: application/json`` gets
``{"detailed": false, "reasons": [...]}``, or, for an admin token (or with the
``healthcheck_detailed`` setting), the detailed form: each check's reason, details and class,
plus the process's Python, platform and collector counts, as oslo's detailed JSON has them.
No token is needed: load balancers send none.

Checks, in order (each a reason; the first failing ones decide the status):
  DisableByFile  the file named by ``healthcheck_disable_file`` exists: 503 ``DISABLED BY FILE``
  Store          a read transaction of the store opens
  Feed           when a cell feed runs here: it is up and its lag is under ``health_feed_lag``
  Outbox         casts waiting for the forwarder are under ``health_outbox_depth``
  Database       when fastnova has a database: it answers ``SELECT 1`` (in a thread, 2 s bound)
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import sys
import time

from fastnova.config import current as current_settings

PLAIN = b"text/plain; charset=UTF-8"
JSON_TYPE = b"application/json; charset=UTF-8"
PATHS = ("/healthcheck", "/healthcheck/")
ROUTE = 100                    # its route label in the metrics (fastnova.serve.metrics)
DB_TIMEOUT = 2
DB_CACHE_SECONDS = 1.0         # a busy poller costs one query a second, not one a request


class Result:
    __slots__ = ("available", "reason", "details", "kind")

    def __init__(self, available: bool, reason: str, details: str = "", kind: str = ""):
        self.available = available
        self.reason = reason
        self.details = details
        self.kind = kind


class Health:
    """One per worker; ``answer`` gives (status, body, content type, extra headers) or an
    awaitable of it (the database check runs in a thread)."""

    def __init__(self, app, settings=None):
        self.app = app
        self.settings = settings or current_settings()
        self.data_dir = os.path.dirname(app.reader.env.path().rstrip("/"))
        self._db_result = None
        self._db_checked = 0.0

    def answer(self, req):
        checks = [self._disabled(), self._store(), self._feed(), self._outbox()]
        if self.settings.database:
            return self._with_database(req, checks)
        return self._respond(req, checks)

    async def _with_database(self, req, checks):
        checks.append(await self._database())
        return self._respond(req, checks)

    # -- the checks --------------------------------------------------------------------------

    def _disabled(self) -> Result:
        path = self.settings.healthcheck_disable_file
        if path and os.path.exists(path):
            return Result(False, "DISABLED BY FILE", "Path %r was found" % path, "DisableByFile")
        return Result(True, "OK", "Path %r was not found" % path if path else
                      "no disable file configured", "DisableByFile")

    def _store(self) -> Result:
        reader = self.app.reader
        try:
            with reader.begin() as txn:
                servers = txn.stat(reader.records)["entries"]
            info = reader.env.info()
        except Exception as exc:        # the store cannot be read: exactly what to report
            return Result(False, "store unreadable", str(exc), "Store")
        return Result(True, "OK", "%d servers, map %d of %d bytes used" % (
            servers, info["last_pgno"] * reader.env.stat()["psize"], info["map_size"]),
            "Store")

    def _feed(self) -> Result:
        try:
            from cellfeed import status as feed_status
        except ImportError:             # a cellfeed without a status file: nothing to read
            return Result(True, "OK", "the feed reports no status", "Feed")
        status = feed_status.read(self.data_dir)
        if status.state == "absent":
            if self.settings.amqp:
                return Result(False, "feed absent", "no cell feed reports on %s"
                              % self.data_dir, "Feed")
            return Result(True, "OK", "no cell feed: the embedded cell writes the store", "Feed")
        if not status.up():
            return Result(False, "feed down", "state %s, last word %.0fs ago%s" % (
                status.state, status.age(), ": " + status.reason if status.reason else ""),
                "Feed")
        bound = self.settings.health_feed_lag
        if status.lag_seconds > bound:
            return Result(False, "feed lagging", "%.1fs behind (bound %.1fs), %d entries "
                          "journaled and not applied" % (status.lag_seconds, bound,
                                                         status.journal_depth), "Feed")
        return Result(True, "OK", "%.3fs behind, %d entries journaled and not applied"
                      % (status.lag_seconds, status.journal_depth), "Feed")

    def _outbox(self) -> Result:
        from fastnova.outbound import outbox
        reader = self.app.reader
        try:
            with reader.begin() as txn:
                depth = outbox.depth(txn, reader.dbs)
        except Exception as exc:
            return Result(False, "outbox unreadable", str(exc), "Outbox")
        bound = self.settings.health_outbox_depth
        if depth > bound:
            return Result(False, "outbox too deep", "%d casts waiting (bound %d)"
                          % (depth, bound), "Outbox")
        return Result(True, "OK", "%d casts waiting" % depth, "Outbox")

    async def _database(self) -> Result:
        now = time.monotonic()
        if self._db_result is None or now - self._db_checked > DB_CACHE_SECONDS:
            loop = asyncio.get_running_loop()
            self._db_result = await loop.run_in_executor(None, _ping, self.settings.database)
            self._db_checked = time.monotonic()
        return self._db_result

    # -- the answer ----------------------------------------------------------------------------

    def _respond(self, req, checks):
        healthy = all(c.available for c in checks)
        failing = [c for c in checks if not c.available]
        shown = failing or checks[:1]
        if req.method == "HEAD":
            return (204 if healthy else 503), b"", PLAIN, b""
        status = 200 if healthy else 503
        if not _wants_json(req.accept):
            text = "\n".join(dict.fromkeys(c.reason for c in shown))
            return status, text.encode(), PLAIN, b""
        if self._detailed(req):
            body = {"detailed": True, "python_version": sys.version,
                    "now": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                    "platform": platform.platform(),
                    "gc": {"counts": list(gc.get_count()), "threshold": list(gc.get_threshold())},
                    "reasons": [{"reason": c.reason, "details": c.details, "class": c.kind}
                                for c in checks],
                    "greenthreads": [], "threads": []}
        else:
            body = {"detailed": False, "reasons": [c.reason for c in shown]}
        return status, json.dumps(body, indent=4, sort_keys=True).encode(), JSON_TYPE, b""

    def _detailed(self, req) -> bool:
        if self.settings.healthcheck_detailed:
            return True
        if not req.token:
            return False
        try:
            ctx = self.app.authenticate(req.token)
        except Exception:               # a bad token only loses the details, never a 401
            return False
        return bool(getattr(ctx, "is_admin", False))


def _wants_json(accept) -> bool:
    """oslo's order of offers is text/plain, text/html, application/json: JSON only when the
    client accepts it and not plain text."""
    if not accept:
        return False
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "application/json" in kinds and "text/plain" not in kinds and "*/*" not in kinds


def _ping(url: str) -> Result:
    try:
        import psycopg2
        conn = psycopg2.connect(url, connect_timeout=DB_TIMEOUT)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        finally:
            conn.close()
    except Exception as exc:
        return Result(False, "database unreachable", str(exc).strip().splitlines()[0]
                      if str(exc).strip() else type(exc).__name__, "Database")
    return Result(True, "OK", "SELECT 1 answered", "Database")
