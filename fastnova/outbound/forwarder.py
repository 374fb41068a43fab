"""The outbox forwarder: a supervised process per API host that moves casts to the cells.

It runs when ``--amqp`` is set (``fastnova serve`` supervises it): entries are published to the
cells' cast exchange in batches (one JSON array a message), each batch with a publisher confirm,
and deleted only after the confirm; with the broker away it retries with capped backoff and the
outbox grows (fastnova.outbound.outbox: bound and 503).  With no broker the workers' embedded simulated
cell (fastnova.outbound.simcell_embedded.EmbeddedCell) consumes the outbox instead.

With a PostgreSQL API database, the forwarder also runs the recovery pass (fastnova.db.recover)
at start and every ``RECOVER_SECONDS``: a command whose process died between its database commit
and its store write is completed from the row's pending cast.

And it gates the outbox on the database (``DbGate``): a command that overlapped its database
commit with its store write (fastnova.commands.runtime) queued its cast with ``db_version``, and
the cast goes to the cells only once the server's row has that version (one ``SELECT`` per pass
for the entries not yet seen released).  An entry still waiting after ``settle`` seconds (its
worker died before its statement, or the statement's outcome is unknown) is claimed in the store
(so its command can no longer withdraw it) and its row written from the entry with the
version-guarded upsert; then it goes.  A held entry holds its server's later entries too, so the
cells see a server's casts in order.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

import orjson

from fastnova.outbound import outbox
from fastnova.config import current as current_settings

LOG = logging.getLogger("fastnova.forwarder")

DEFAULT_EXCHANGE = "fastnova.cell-casts"
DEFAULT_QUEUE = "fastnova.cell-casts.cell1"
PER_MESSAGE = 200
RECOVER_SECONDS = 30.0
IDLE_POLL, BUSY_POLL = 0.05, 0.002
BACKOFF_MAX = 10.0


@dataclass
class Options:
    data_dir: str
    amqp_url: str | None = None
    exchange: str = DEFAULT_EXCHANGE
    queue: str = DEFAULT_QUEUE
    database: str | None = None
    db_schema: str | None = None
    api_host: str | None = None


def run(opts: Options) -> int:
    """Entry point in the supervised child (everything is opened here, after fork)."""
    logging.getLogger("pika").setLevel(logging.WARNING)
    fwd = Forwarder(opts)
    signal.signal(signal.SIGTERM, lambda *_: fwd.stop())
    signal.signal(signal.SIGINT, lambda *_: fwd.stop())
    try:
        fwd.run()
    finally:
        fwd.close()
    return 0


class Forwarder:
    def __init__(self, opts: Options):
        from fastnova.store.writer import StoreWriter
        self.opts = opts
        self.writer = StoreWriter.open(opts.data_dir)
        outbox.ensure(self.writer)
        self.running = True
        self.sink = AmqpSink(self.writer, opts)
        self.gate = DbGate(opts) if opts.database else None
        self.forwarded = 0
        self.next_recover = 0.0

    def stop(self):
        self.running = False

    def close(self):
        self.sink.close()
        if self.gate is not None:
            self.gate.close()
        self.writer.close()

    def run(self):
        LOG.info("forwarder %d: outbox of %s to RabbitMQ exchange %s", os.getpid(),
                 self.opts.data_dir, self.opts.exchange)
        while self.running:
            self._maybe_recover()
            moved = self.step()
            time.sleep(BUSY_POLL if moved else self.sink.idle(IDLE_POLL))

    def step(self) -> int:
        """One pass: forward what is waiting; the number of entries moved."""
        with self.writer.env.begin() as txn:
            entries = outbox.read(txn, self.writer.dbs, PER_MESSAGE * 5, self.sink.after)
        if entries and self.gate is not None:
            entries = self.gate.ready(self.writer, entries)
        moved = self.sink.forward(entries) if entries else 0
        moved += self.sink.tick()
        self.forwarded += moved
        return moved

    def _maybe_recover(self):
        if not self.opts.database or time.monotonic() < self.next_recover:
            return
        self.next_recover = time.monotonic() + RECOVER_SECONDS
        try:
            from fastnova.db.recover import recover
            fixed = recover(self.opts.database, self.writer, self.opts.api_host,
                            schema=self.opts.db_schema)
            if fixed:
                LOG.warning("recovery: completed %d commands whose store write was lost", fixed)
        except Exception:   # the database may be away; the next pass retries
            LOG.exception("recovery pass failed")


class DbGate:
    """Casts wait for their database rows (module doc)."""

    def __init__(self, opts: Options):
        from fastnova.db.recover import SETTLE
        self.opts = opts
        self.conn = None
        self.released: set[bytes] = set()
        self.settle = current_settings().get("recover_settle", SETTLE)
        self.rolled = 0

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def ready(self, writer, entries: list) -> list:
        """The entries that may go now, in order."""
        waiting = {key: orjson.loads(raw) for key, raw in entries
                   if key not in self.released and b'"db_version"' in raw}
        if waiting:
            self._check(writer, waiting)
        self.released.intersection_update(key for key, _ in entries)
        out, held = [], set()
        for key, raw in entries:
            if key in waiting and key not in self.released:
                held.add(waiting[key]["id"])
            elif held and (waiting[key] if key in waiting else orjson.loads(raw))["id"] in held:
                continue
            else:
                out.append((key, raw))
        return out

    def _check(self, writer, waiting: dict):
        try:
            have = self._versions({cast["id"] for cast in waiting.values()})
            now = time.time()
            stale = []
            for key, cast in waiting.items():
                if have.get(cast["id"], -1) >= cast["db_version"]:
                    self.released.add(key)
                elif now - cast.get("at", now) > self.settle:
                    stale.append(key)
            if stale:
                self._roll_forward(writer, stale)
        except Exception:   # the database away: everything waits; the next pass retries
            LOG.exception("forwarder: cannot check the database rows of queued casts")
            self.close()

    def _cursor(self):
        if self.conn is None:
            from fastnova.db.connect import connect
            self.conn = connect(self.opts.database, self.opts.db_schema)
            self.conn.autocommit = True
        return self.conn.cursor()

    def _versions(self, uuids) -> dict:
        with self._cursor() as cur:
            cur.execute("SELECT uuid, version FROM servers WHERE uuid = ANY(%s)", (list(uuids),))
            return dict(cur.fetchall())

    def _roll_forward(self, writer, keys):
        """Claim the entries, then write their rows (latest cast per server) in one statement."""
        from fastnova.db import aio
        with writer.batch() as b:
            claimed = outbox.claim(b, keys)
        latest = {}
        for _key, cast in claimed:
            held = latest.get(cast["id"])
            if held is None or cast["instance"]["version"] > held["instance"]["version"]:
                latest[cast["id"]] = cast
        if latest:
            params = [v for cast in latest.values()
                      for v in aio.upsert_params(cast["instance"], cast, cast.get("api_host"))]
            with self._cursor() as cur:
                cur.execute(aio.upsert_sql(len(latest)), params)
        self.released.update(key for key, _ in claimed)
        self.rolled += len(claimed)
        LOG.warning("forwarder: wrote the rows of %d commands whose database statement was "
                    "lost or unanswered", len(claimed))


class AmqpSink:
    """Publish entries with confirms; delete them only once confirmed."""

    after = None

    def __init__(self, writer, opts: Options):
        self.writer = writer
        self.opts = opts
        self.pub = None
        from cellfeed.amqp import Backoff       # in the forwarder's process: pika with it
        self.backoff = Backoff(0.2, BACKOFF_MAX)
        self.retry_at = 0.0

    def idle(self, poll):
        return max(poll, self.retry_at - time.monotonic())

    def _connect(self):
        from cellfeed.publish import Publisher      # opens its connection through cellfeed.amqp
        self.pub = Publisher(self.opts.amqp_url, self.opts.exchange)
        self.pub.channel.queue_declare(self.opts.queue, durable=True)
        self.pub.channel.queue_bind(self.opts.queue, self.opts.exchange, routing_key="#")

    def forward(self, entries) -> int:
        if time.monotonic() < self.retry_at:
            return 0
        moved = 0
        try:
            if self.pub is None:
                self._connect()
            for start in range(0, len(entries), PER_MESSAGE):
                chunk = entries[start:start + PER_MESSAGE]
                body = b"[" + b",".join(raw for _, raw in chunk) + b"]"
                self.pub.send_raw(body, routing_key="cast")
                self._delete([k for k, _ in chunk])
                moved += len(chunk)
            self.backoff.reset()
        except Exception as exc:   # broker away, channel closed, nack, unroutable
            LOG.warning("forwarder: cannot publish (%s); %d forwarded this pass, retrying",
                        exc, moved)
            self._drop()
            self.retry_at = time.monotonic() + self.backoff.next()
        return moved

    def _delete(self, keys):
        with self.writer.batch() as b:
            outbox.remove(b, keys)

    def tick(self) -> int:
        return 0

    def _drop(self):
        try:
            if self.pub is not None:
                self.pub.close()
        except Exception:
            pass
        self.pub = None

    def close(self):
        self._drop()
