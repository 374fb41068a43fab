"""What a cell calls to send updates: persistent messages, publisher confirms, mandatory routing.

``publish()`` returns only once the broker has confirmed every message (it has them on disk, for
durable queues), and raises if the broker refused one or could route it nowhere — a cell must not
believe an update reached the API hosts when no queue took it.

Confirms are waited for one message at a time (pika's BlockingChannel), ~0.9k messages/s on the
reference machine; a cell that sends more should batch updates into messages
(``per_message``): the contract accepts a JSON array, and 100 updates a message move ~50-100x
more updates per second through the same confirms.
"""
from __future__ import annotations

import pika
import pika.exceptions

from cellfeed import amqp, contract
from cellfeed.consumer import Topology

PERSISTENT = 2


class PublishError(RuntimeError):
    """The broker did not take a message (nack, or no queue bound for it)."""


class Publisher:
    def __init__(self, url: str, exchange: str, confirm: bool = True):
        self.exchange = exchange
        self.connection = amqp.blocking(url)
        self.channel = self.connection.channel()
        self.channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        self.confirm = confirm
        if confirm:
            self.channel.confirm_delivery()
        self._props = pika.BasicProperties(content_type=contract.CONTENT_TYPE,
                                           delivery_mode=PERSISTENT)

    def declare_queue(self, queue: str, binding_key: str = "#"):
        """Create an API host's queue ahead of its consumer, so nothing published is dropped."""
        topo = Topology(exchange=self.exchange, queue=queue, binding_key=binding_key)
        self.channel.exchange_declare(topo.dead_letter_exchange, exchange_type="fanout",
                                      durable=True)
        self.channel.queue_declare(topo.dead_letter_queue, durable=True)
        self.channel.queue_bind(topo.dead_letter_queue, topo.dead_letter_exchange)
        self.channel.queue_declare(queue, durable=True, arguments=topo.queue_arguments())
        self.channel.queue_bind(queue, self.exchange, routing_key=binding_key)

    def send(self, updates: dict | list[dict]):
        """One message (an update or a batch); with confirms, returns once it is confirmed."""
        self.send_raw(contract.encode(updates), contract.routing_key(updates))

    def send_raw(self, body: bytes, routing_key: str = "raw"):
        """A message body as is (tests use it to send poison)."""
        try:
            self.channel.basic_publish(self.exchange, routing_key, body,
                                       properties=self._props, mandatory=self.confirm)
        except pika.exceptions.UnroutableError as exc:
            raise PublishError("no queue is bound for %r on %s" % (routing_key, self.exchange)) \
                from exc
        except pika.exceptions.NackError as exc:
            raise PublishError("the broker refused a message: %s" % exc) from exc

    def close(self):
        if self.connection.is_open:
            self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()


def publish(url: str, exchange: str, updates: list[dict], per_message: int = 1) -> int:
    """Send updates, ``per_message`` to a message, each confirmed; returns messages sent."""
    sent = 0
    with Publisher(url, exchange) as pub:
        for chunk in chunks(updates, per_message):
            pub.send(chunk[0] if per_message == 1 else chunk)
            sent += 1
    return sent


def chunks(items: list, size: int):
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + max(1, size)]
