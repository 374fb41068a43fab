"""The one door to RabbitMQ: every AMQP connection of cellfeed and fastnova is opened here, and
every reconnect waits the same capped backoff.

    select(...)   pika's SelectConnection on a caller's own I/O loop: cellfeed's consumer
    blocking(url) pika's BlockingConnection: the publisher (cellfeed.publish, which the forwarder
                  and the broker cell send through) and the broker cell's cast consumer
    Backoff       the delay before each reconnect: doubled after each failure up to a cap,
                  optionally jittered (API hosts must not reconnect in lockstep)

Tests open their own connections to inspect the broker; nothing else in the code does.
"""
from __future__ import annotations

import random

import pika
import pika.exceptions

Error = (pika.exceptions.AMQPError, OSError)     # what a lost or refused connection raises


def parameters(url: str) -> pika.URLParameters:
    return pika.URLParameters(url)


def blocking(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(parameters(url))


def select(params: pika.connection.Parameters, on_open, on_open_error, on_close,
           ioloop) -> pika.SelectConnection:
    return pika.SelectConnection(params, on_open_callback=on_open,
                                 on_open_error_callback=on_open_error,
                                 on_close_callback=on_close, custom_ioloop=ioloop)


class Backoff:
    """Seconds to wait before the next attempt: ``initial`` after the first failure, doubled
    after each further one up to ``maximum``; with ``jitter`` each delay is drawn from its upper
    half.  ``reset()`` once connected."""

    def __init__(self, initial: float, maximum: float, jitter: bool = False):
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.failures = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** self.failures))
        self.failures = min(self.failures + 1, 16)
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay

    def reset(self):
        self.failures = 0
