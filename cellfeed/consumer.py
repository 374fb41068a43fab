"""The one module that consumes from RabbitMQ: an explicit pika callback chain with group commit.

    connect -> channel -> dead-letter exchange + queue -> update exchange -> host queue -> bind
    -> basic_qos(prefetch) -> basic_consume
    per delivery: decode (poison -> basic_reject -> dead-letter queue) -> journal.append
    per group: journal.write -> fsync in the sync thread -> back on the I/O loop:
    basic_ack(highest tag of the group, multiple=True) -> hand the group to the applier

Group commit is pipelined: one group's fsync runs in a thread of its own (os.fdatasync releases
the GIL) while the I/O loop goes on receiving into the next group, which is written the moment
the disk is free again.  So under load a group is whatever arrived during the previous fsync:
hundreds of deliveries when the feed is heavy (the fsyncs are amortized without a timer holding
anything back).  With the disk idle, a group is written
batch_interval seconds after its first delivery (2 ms by default; 0: at the end of the I/O
loop's current read), or at once when it reaches batch_size.  Stopping waits for the fsync in
flight and makes the last group durable before the connection closes.

A lost connection is re-opened with capped, jittered backoff; deliveries that were not yet
acknowledged come back from the broker and are harmless duplicates (versions).  A failed journal
write or fsync stops acknowledgements at once and ends the loop with ``fatal`` set.
"""
from __future__ import annotations

import collections
import errno
import functools
import logging
import threading
from dataclasses import dataclass

import pika
import pika.exceptions

from cellfeed import amqp, contract
from cellfeed.journal import JournalFailed

LOG = logging.getLogger(__name__)


@dataclass
class Topology:
    exchange: str          # the cells' update exchange (topic, durable)
    queue: str             # this API host's durable queue
    binding_key: str = "#"
    # oslo.messaging declares nova's exchange non-durable (amqp_durable_queues=False); a
    # declare with another durability is refused, so following nova needs False here.
    exchange_durable: bool = True

    @property
    def dead_letter_exchange(self) -> str:
        return self.queue + ".dlx"

    @property
    def dead_letter_queue(self) -> str:
        return self.queue + ".dead"

    def queue_arguments(self) -> dict:
        # Rejected (poison) deliveries go to the dead-letter exchange instead of being dropped.
        return {"x-dead-letter-exchange": self.dead_letter_exchange}


@dataclass
class Tuning:
    prefetch: int = 4000
    batch_size: int = 1000        # a group this large is written without waiting (disk idle)
    # Seconds a group waits for more while the disk is idle.  Each fdatasync costs CPU here
    # (~0.1-0.2 ms in this VM's block layer), and a light feed (1,000 deliveries/s) made one per
    # delivery: 2 ms halved the consumer's CPU (37.8% -> 20.5% of a core) for <= 2 ms of lag.
    batch_interval: float = 0.002
    backoff_initial: float = 0.25
    backoff_max: float = 30.0


def connect_reason(error: BaseException) -> str:
    """The innermost cause of a failed connection attempt, never empty.

    pika wraps a refused TCP connect three deep (AMQPConnectionError ->
    AMQPConnectionWorkflowFailed -> AMQPConnectorSocketConnectError -> OSError) and the outer
    one's str() is '', which is what the log showed."""
    current, seen = error, set()
    while id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            name = errno.errorcode.get(current.errno, "") if current.errno else ""
            return "%s%s" % (current.strerror or current, " (%s)" % name if name else "")
        inner = getattr(current, "exception", None)      # pika's AMQPConnectorWrappedError
        if inner is None:
            inner = (getattr(current, "exceptions", None) or [None])[-1]
        if inner is None:
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        current = inner
    text = str(current).strip()
    return "%s: %s" % (type(current).__name__, text) if text else type(current).__name__


class Syncer:
    """The thread that fsyncs written journal groups, one at a time, in order.

    The I/O loop learns of each result through ``add_callback_threadsafe``; a stopping consumer
    can instead wait for it here (``wait``).  A result is taken once (``result``)."""

    def __init__(self, journal, ioloop):
        self._journal = journal
        self._ioloop = ioloop
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._results: dict = {}
        self._thread = None
        self._closed = False

    def submit(self, ticket, callback):
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cellfeed-fsync",
                                                daemon=True)
                self._thread.start()
            self._queue.append((ticket, callback))
            self._cond.notify_all()

    def wait(self, ticket):
        with self._cond:
            while ticket not in self._results:
                self._cond.wait()

    def result(self, ticket):
        """The fsync's error (None: durable); only once the sync has returned."""
        with self._cond:
            return self._results.pop(ticket)

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self):
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                ticket, callback = self._queue.popleft()
            error = None
            try:
                self._journal.sync(ticket)
            except BaseException as exc:     # reported to the I/O loop, which stops
                error = exc
            with self._cond:
                self._results[ticket] = error
                self._cond.notify_all()
            try:
                self._ioloop.add_callback_threadsafe(functools.partial(callback, ticket))
            except Exception:   # the loop is closed: a waiting stop path takes the result
                LOG.debug("cellfeed: fsync result not posted (I/O loop closed)")


class FeedConsumer:
    def __init__(self, params: pika.connection.Parameters, topology: Topology, journal,
                 handoff, ioloop, tuning: Tuning, on_stopped, decoder=None):
        self._params = params
        self._topology = topology
        self._journal = journal
        self._handoff = handoff          # callable([(lsn, updates)]): to the applier
        self._ioloop = ioloop
        self._tuning = tuning
        self._on_stopped = on_stopped    # called once the consumer is completely down
        # body -> validated updates, for a foreign format (cellfeed.nova_notifications)
        self._decoder = decoder
        self._connection = None
        self._channel = None
        self._consumer_tag = None
        self._group: list = []
        self._group_tag = 0
        self._group_channel = None
        self._syncer = Syncer(journal, ioloop)
        self._inflight = None            # (ticket, group, tag, channel) being fsynced
        self._timer = None
        self._reconnect_timer = None
        self._backoff = amqp.Backoff(tuning.backoff_initial, tuning.backoff_max,
                                     jitter=True)
        self._stopping = False
        self.fatal: BaseException | None = None
        self.consuming = False
        self.dead_lettered = 0
        self.connections = 0

    # -- connection ---------------------------------------------------------------------------

    def start(self):
        self._reconnect_timer = None
        LOG.info("cellfeed: connecting to %s:%s", self._params.host, self._params.port)
        self._connection = amqp.select(self._params, self._on_connection_open,
                                       self._on_connection_open_error,
                                       self._on_connection_closed, self._ioloop)

    def _on_connection_open(self, connection):
        self.connections += 1
        if self._stopping:
            connection.close()
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection, error):
        LOG.warning("cellfeed: cannot connect to %s:%s: %s", self._params.host,
                    self._params.port, connect_reason(error))
        self._connection = None
        self._after_disconnect()

    def _on_connection_closed(self, _connection, reason):
        LOG.log(logging.INFO if self._stopping else logging.WARNING,
                "cellfeed: connection closed: %s", reason)
        self._connection = self._channel = None
        self.consuming = False
        self._after_disconnect()

    def _after_disconnect(self):
        # A pending group is durable once flushed even though it can no longer be acked:
        # the broker will redeliver it and versions make the copies harmless.
        if self._stopping:
            self._settle()
            self._on_stopped()
        else:
            self._flush()
            self._schedule_reconnect()

    def _schedule_reconnect(self):
        delay = self._backoff.next()
        LOG.info("cellfeed: reconnecting in %.2fs", delay)
        self._reconnect_timer = self._ioloop.call_later(delay, self.start)

    # -- channel and topology -----------------------------------------------------------------

    def _on_channel_open(self, channel):
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        topo = self._topology
        channel.exchange_declare(topo.dead_letter_exchange, exchange_type="fanout",
                                 durable=True, callback=self._on_dlx_ok)

    def _on_dlx_ok(self, _frame):
        self._channel.queue_declare(self._topology.dead_letter_queue, durable=True,
                                    callback=self._on_dlq_ok)

    def _on_dlq_ok(self, _frame):
        topo = self._topology
        self._channel.queue_bind(topo.dead_letter_queue, topo.dead_letter_exchange,
                                 callback=self._on_dlq_bound)

    def _on_dlq_bound(self, _frame):
        self._channel.exchange_declare(self._topology.exchange, exchange_type="topic",
                                       durable=self._topology.exchange_durable,
                                       callback=self._on_exchange_ok)

    def _on_exchange_ok(self, _frame):
        args = self._topology.queue_arguments()
        self._channel.queue_declare(self._topology.queue, durable=True, arguments=args,
                                    callback=self._on_queue_ok)

    def _on_queue_ok(self, _frame):
        topo = self._topology
        self._channel.queue_bind(topo.queue, topo.exchange, routing_key=topo.binding_key,
                                 callback=self._on_bound)

    def _on_bound(self, _frame):
        self._channel.basic_qos(prefetch_count=self._tuning.prefetch, callback=self._on_qos_ok)

    def _on_qos_ok(self, _frame):
        if self._stopping:
            self._channel.close()
            return
        self._consumer_tag = self._channel.basic_consume(self._topology.queue,
                                                         self._on_message)
        self.consuming = True
        self._backoff.reset()
        LOG.info("cellfeed: consuming %s (prefetch %d)", self._topology.queue,
                 self._tuning.prefetch)

    def _on_channel_closed(self, channel, reason):
        LOG.log(logging.INFO if self._stopping else logging.WARNING,
                "cellfeed: channel closed: %s", reason)
        self._flush()
        self._channel = None
        self.consuming = False
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_consumer_cancelled(self, _frame):
        LOG.warning("cellfeed: the broker cancelled the consumer (queue deleted?)")
        if self._channel is not None and self._channel.is_open:
            self._channel.close()

    # -- deliveries and group commit ----------------------------------------------------------

    def _on_message(self, channel, method, _properties, body):
        if self.fatal is not None:
            return
        try:
            updates = (self._decoder or contract.decode)(body)
        except contract.ContractError as exc:
            self._dead_letter(channel, method, str(exc))
            return
        if not updates:         # nothing for the store (a foreign format's other events)
            channel.basic_ack(method.delivery_tag)
            return
        try:
            # The validated updates, not the body: read back without validating again.
            lsn = self._journal.append(contract.encode_journal(updates))
        except JournalFailed as exc:
            self._fail(exc)
            return
        self._group.append((lsn, updates))
        self._group_tag, self._group_channel = method.delivery_tag, channel
        if self._inflight is not None:
            return                       # the disk is busy: this group goes when it is free
        if len(self._group) >= self._tuning.batch_size:
            self._flush()
        elif self._timer is None:
            # A zero delay still lets the rest of the loop's current read join the group.
            self._timer = self._ioloop.call_later(self._tuning.batch_interval, self._on_timer)

    def _dead_letter(self, channel, method, reason: str):
        # requeue=False hands the message to the queue's dead-letter exchange; the broker adds
        # an x-death header (reason "rejected").  Our reason goes to the log.
        self.dead_lettered += 1
        LOG.warning("cellfeed: dead-lettering delivery %d (routing key %r): %s",
                    method.delivery_tag, method.routing_key, reason)
        channel.basic_reject(method.delivery_tag, requeue=False)

    def _on_timer(self):
        self._timer = None
        self._flush()

    def _flush(self):
        """Write the pending group and have the sync thread fsync it (one group at a time)."""
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        if not self._group or self.fatal is not None or self._inflight is not None:
            return
        try:
            ticket = self._journal.write()
        except JournalFailed as exc:
            self._fail(exc)
            return
        self._inflight = (ticket, self._group, self._group_tag, self._group_channel)
        self._group, self._group_tag, self._group_channel = [], 0, None
        self._syncer.submit(ticket, self._on_synced)

    def _on_synced(self, ticket):
        """On the I/O loop, once a group's fsync has returned: acknowledge it, hand it to the
        applier, and write the group that gathered meanwhile."""
        if self._inflight is None or self._inflight[0] is not ticket:
            return                       # a stop path took this result already
        _, group, tag, channel = self._inflight
        self._inflight = None
        try:
            self._journal.synced(ticket, self._syncer.result(ticket))
        except JournalFailed as exc:
            self._fail(exc)
            return
        if self.fatal is not None:
            return
        if channel is self._channel and channel is not None and channel.is_open:
            channel.basic_ack(tag, multiple=True)
        if not self._handoff(group):
            self._fail(RuntimeError("the store applier stopped"))
            return
        if self._group:
            self._flush()

    def _settle(self):
        """Stop paths: wait for the fsync in flight and make the pending group durable, here,
        before the connection goes."""
        while self.fatal is None and (self._inflight is not None or self._group):
            if self._inflight is None:
                self._flush()
                if self._inflight is None:
                    return
            ticket = self._inflight[0]
            self._syncer.wait(ticket)
            self._on_synced(ticket)
        if self._inflight is not None:   # failed meanwhile: take the result, ack nothing
            ticket = self._inflight[0]
            self._syncer.wait(ticket)
            self._inflight = None
            try:
                self._journal.synced(ticket, self._syncer.result(ticket))
            except JournalFailed:
                pass

    def close(self):
        """End the sync thread (after the loop has stopped)."""
        self._syncer.close()

    # -- stopping -----------------------------------------------------------------------------

    def stop(self):
        """Graceful stop: cancel the consumer, flush and ack the last group, close."""
        if self._stopping:
            return
        self._stopping = True
        if self._reconnect_timer is not None:
            self._ioloop.remove_timeout(self._reconnect_timer)
            self._reconnect_timer = None
        if self._connection is None:
            self._on_stopped()
        elif self._channel is not None and self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag, callback=self._on_cancel_ok)
        else:
            self._close_connection()

    def _on_cancel_ok(self, _frame):
        self._settle()
        self._close_connection()

    def _close_connection(self):
        conn = self._connection
        if conn is None or conn.is_closing or conn.is_closed:
            return
        try:
            conn.close()
        except pika.exceptions.ConnectionWrongStateError:
            # Still opening: pika refuses close() then; the open callbacks see _stopping.
            pass

    def abort(self, exc: BaseException):
        """Stop without acknowledging anything more (the journal or the store failed)."""
        self._fail(exc)

    def _fail(self, exc: BaseException):
        if self.fatal is None:
            self.fatal = exc
            LOG.critical("cellfeed: FATAL: %s", exc)
        self._group, self._group_tag, self._group_channel = [], 0, None
        if self._stopping:
            return
        self.stop()
