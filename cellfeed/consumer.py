"""The one module that consumes from RabbitMQ: an explicit pika callback chain with group commit.

    connect -> channel -> dead-letter exchange + queue -> update exchange -> host queue -> bind
    -> basic_qos(prefetch) -> basic_consume
    per delivery: decode (poison -> basic_reject -> dead-letter queue) -> journal.append
    per group (batch_size deliveries or batch_interval seconds): journal.commit (fsync)
    -> basic_ack(highest tag of the group, multiple=True) -> hand the group to the applier

A lost connection is re-opened with capped, jittered backoff; deliveries that were not yet
acknowledged come back from the broker and are harmless duplicates (versions).  A failed journal
write or fsync stops acknowledgements at once and ends the loop with ``fatal`` set.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import pika
import pika.exceptions

from cellfeed import contract
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
    batch_size: int = 1000        # deliveries per fsync group, at most
    batch_interval: float = 0.005  # seconds a group waits for more deliveries, at most
    backoff_initial: float = 0.25
    backoff_max: float = 30.0


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
        self._timer = None
        self._reconnect_timer = None
        self._attempt = 0
        self._stopping = False
        self.fatal: BaseException | None = None
        self.consuming = False
        self.dead_lettered = 0
        self.connections = 0

    # -- connection ---------------------------------------------------------------------------

    def start(self):
        self._reconnect_timer = None
        LOG.info("cellfeed: connecting to %s:%s", self._params.host, self._params.port)
        self._connection = pika.SelectConnection(
            self._params, on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed, custom_ioloop=self._ioloop)

    def _on_connection_open(self, connection):
        self.connections += 1
        if self._stopping:
            connection.close()
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection, error):
        LOG.warning("cellfeed: cannot connect: %s", error)
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
        self._flush()
        if self._stopping:
            self._on_stopped()
        else:
            self._schedule_reconnect()

    def _schedule_reconnect(self):
        t = self._tuning
        delay = min(t.backoff_max, t.backoff_initial * (2 ** self._attempt))
        delay *= random.uniform(0.5, 1.0)   # jitter: API hosts must not reconnect in lockstep
        self._attempt = min(self._attempt + 1, 16)
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
        self._attempt = 0
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
        if len(self._group) >= self._tuning.batch_size:
            self._flush()
        elif self._timer is None:
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
        """Make the pending group durable, acknowledge it, hand it to the applier."""
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        if not self._group or self.fatal is not None:
            return
        try:
            self._journal.commit()
        except JournalFailed as exc:
            self._fail(exc)
            return
        group, tag, channel = self._group, self._group_tag, self._group_channel
        self._group, self._group_tag, self._group_channel = [], 0, None
        if channel is self._channel and channel is not None and channel.is_open:
            channel.basic_ack(tag, multiple=True)
        if not self._handoff(group):
            self._fail(RuntimeError("the store applier stopped"))

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
        self._flush()
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
