"""cellfeed's "cannot connect" line names the reason (issue 18: it was empty for a refused
connection, because pika's outer exception has an empty str())."""
from __future__ import annotations

import logging
import socket

import pika
import pytest
from pika.adapters.select_connection import IOLoop

from cellfeed.consumer import FeedConsumer, Topology, Tuning
from tests.cellfeed_support import needs_broker


class _StopOnConnectFailure(logging.Handler):
    def __init__(self, ioloop):
        super().__init__(logging.WARNING)
        self.ioloop, self.lines = ioloop, []

    def emit(self, record):
        line = record.getMessage()
        if "cannot connect" in line:
            self.lines.append(line)
            self.ioloop.stop()


def _first_failure(url: str) -> str:
    ioloop = IOLoop()
    consumer = FeedConsumer(pika.URLParameters(url), Topology("x", "q"), journal=None,
                            handoff=None, ioloop=ioloop, tuning=Tuning(), on_stopped=ioloop.stop)
    handler = _StopOnConnectFailure(ioloop)
    log = logging.getLogger("cellfeed.consumer")
    log.addHandler(handler)
    timeout = ioloop.call_later(20, ioloop.stop)
    try:
        ioloop.add_callback(consumer.start)
        ioloop.start()
    finally:
        log.removeHandler(handler)
        ioloop.remove_timeout(timeout)
        ioloop.close()
    assert handler.lines, "no connection failure was logged"
    return handler.lines[0]


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_refused_connection_says_so():
    port = _closed_port()
    line = _first_failure("amqp://guest:guest@127.0.0.1:%d/%%2F" % port)
    assert line.startswith("cellfeed: cannot connect to 127.0.0.1:%d: " % port), line
    assert "Connection refused (ECONNREFUSED)" in line, line


@needs_broker
@pytest.mark.parametrize("url, expected", [
    ("amqp://guest:wrong@127.0.0.1:5672/%2F", "ACCESS_REFUSED"),
    ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost-for-cellfeed", "vhost"),
])
def test_a_refusal_by_the_broker_names_it(url, expected):
    line = _first_failure(url)
    reason = line.split(": ", 2)[2]
    assert reason.strip() and expected in reason, line
