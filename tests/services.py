"""The real services the integration tests use, one variable and one default each, and the marks
that skip a test when its service is not there:

    FASTNOVA_PG_URL    PostgreSQL   postgresql://postgres@127.0.0.1:5432/test
    FASTNOVA_AMQP_URL  RabbitMQ     amqp://guest:guest@127.0.0.1:5672/%2F

Each test makes its own schemas, exchanges and queues in them (unique names), so tests can share
one server and run beside other users of it."""
from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("FASTNOVA_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("FASTNOVA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def pg_available() -> bool:
    try:
        import psycopg2
        psycopg2.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def broker_available() -> bool:
    try:
        import pika
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
        return True
    except Exception:
        return False


needs_pg = pytest.mark.skipif(not pg_available(), reason="no PostgreSQL at " + PG_URL)
needs_broker = pytest.mark.skipif(not broker_available(), reason="no RabbitMQ at " + AMQP_URL)
