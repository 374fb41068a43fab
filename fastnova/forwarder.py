"""The outbox forwarder: a supervised process per API host that moves casts to the cells.

It runs when ``--amqp`` is set (``fastnova serve`` supervises it): entries are published to the
cells' cast exchange in batches (one JSON array a message), each batch with a publisher confirm,
and deleted only after the confirm; with the broker away it retries with capped backoff and the
outbox grows (fastnova.outbox: bound and 503).  With no broker the workers' embedded simulated
cell (fastnova.simcell.EmbeddedCell) consumes the outbox instead.

With a PostgreSQL API database, the forwarder also runs the recovery pass (fastnova.db.recover)
at start and every ``RECOVER_SECONDS``: a command whose process died between its database commit
and its store write is completed from the row's pending cast.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

from fastnova import outbox

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
        self.writer = StoreWriter(opts.data_dir)
        outbox.ensure(self.writer)
        self.running = True
        self.sink = AmqpSink(self.writer, opts)
        self.forwarded = 0
        self.next_recover = 0.0

    def stop(self):
        self.running = False

    def close(self):
        self.sink.close()
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


class AmqpSink:
    """Publish entries with confirms; delete them only once confirmed."""

    after = None

    def __init__(self, writer, opts: Options):
        self.writer = writer
        self.opts = opts
        self.pub = None
        self.backoff = 0.0
        self.retry_at = 0.0

    def idle(self, poll):
        return max(poll, self.retry_at - time.monotonic())

    def _connect(self):
        from cellfeed.publish import Publisher
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
            self.backoff = 0.0
        except Exception as exc:   # broker away, channel closed, nack, unroutable
            LOG.warning("forwarder: cannot publish (%s); %d forwarded this pass, retrying",
                        exc, moved)
            self._drop()
            self.backoff = min(BACKOFF_MAX, max(0.2, self.backoff * 2))
            self.retry_at = time.monotonic() + self.backoff
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
