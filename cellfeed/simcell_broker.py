"""``cellfeed cell-sim --amqp URL``: a simulated nova cell over RabbitMQ.

It consumes the API hosts' casts (fastnova.outbound.forwarder publishes them, a JSON array a message, to
the cast exchange; this declares and reads the cell's durable queue) and plays each one as a
nova compute would (fastnova.outbound.simcell_embedded workflows: BUILD -> ACTIVE with a host and addresses,
reboot -> REBOOT -> ACTIVE, stop -> SHUTOFF, delete -> gone, ...), publishing the resulting
updates in cellfeed's contract to the cells' update exchange with publisher confirms
(cellfeed.publish), where every API host's cellfeed consumes them.

A cast message is acknowledged once its workflows are scheduled; a crash of the simulator loses
the scheduled steps of acknowledged casts (a real compute would resume them from its database).
Duplicated casts (at-least-once forwarding) are ignored by version.
"""
from __future__ import annotations

import logging
import signal
import time

import orjson

from cellfeed import amqp
from cellfeed.publish import PublishError, Publisher

LOG = logging.getLogger("cellfeed.cellsim")

DEFAULT_CAST_EXCHANGE = "fastnova.cell-casts"
DEFAULT_CAST_QUEUE = "fastnova.cell-casts.cell1"


def run(amqp_url: str, update_exchange: str, cast_exchange: str = DEFAULT_CAST_EXCHANGE,
        cast_queue: str = DEFAULT_CAST_QUEUE, step: float = 0.2, name: str = "cell1",
        stop_after: float | None = None) -> int:
    from fastnova.outbound.simcell_embedded import SimCell
    cell = SimCell(name=name, step=step, full_first=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    deadline = time.monotonic() + stop_after if stop_after else None
    backoff = amqp.Backoff(0.5, 10.0)
    while not stopping and (deadline is None or time.monotonic() < deadline):
        try:
            _serve(cell, amqp_url, update_exchange, cast_exchange, cast_queue, stopping,
                   deadline)
            backoff.reset()
        except amqp.Error as exc:
            delay = backoff.next()
            LOG.warning("cell-sim: broker connection lost (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
    return 0


def _serve(cell, url, update_exchange, cast_exchange, cast_queue, stopping, deadline):
    conn = amqp.blocking(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(cast_exchange, exchange_type="topic", durable=True)
        ch.queue_declare(cast_queue, durable=True)
        ch.queue_bind(cast_queue, cast_exchange, routing_key="#")
        ch.basic_qos(prefetch_count=100)
        with Publisher(url, update_exchange) as pub:
            LOG.info("cell-sim %s: casts from %s, updates to %s", cell.name, cast_queue,
                     update_exchange)
            _report_services(cell, pub, stopping)
            while not stopping and (deadline is None or time.monotonic() < deadline):
                for method, _props, body in ch.consume(cast_queue, inactivity_timeout=0.02):
                    if method is None:
                        break
                    _take(cell, body)
                    ch.basic_ack(method.delivery_tag)
                    if cell.next_due() is not None and cell.next_due() <= time.monotonic():
                        break
                updates, _done = cell.due()
                while updates and not stopping:
                    try:
                        pub.send(updates)
                        break
                    except PublishError as exc:   # no API host queue bound yet: keep them
                        LOG.warning("cell-sim: %s; retrying", exc)
                        time.sleep(0.5)
            ch.cancel()
    finally:
        if conn.is_open:
            conn.close()


def _report_services(cell, pub, stopping):
    """The cell's hosts, for the API hosts' availability zones (at every (re)connect)."""
    from fastnova.outbound.simcell_embedded import service_updates
    while not stopping:
        try:
            pub.send(service_updates(cell.name, cell.hosts))
            return
        except PublishError as exc:
            LOG.warning("cell-sim: %s; retrying", exc)
            time.sleep(0.5)


def _take(cell, body: bytes):
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        LOG.error("cell-sim: a cast that is not JSON was dropped")
        return
    for cast in doc if isinstance(doc, list) else [doc]:
        try:
            cell.take(cast)
        except (KeyError, TypeError) as exc:
            LOG.error("cell-sim: malformed cast dropped (%s)", exc)
