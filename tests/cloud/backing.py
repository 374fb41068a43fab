"""The machine's PostgreSQL and RabbitMQ, shared by every test session: one private database per
service and one private RabbitMQ vhost per cloud, named after the session, dropped at its end.

RabbitMQ vhosts are created with ``rabbitmqctl`` (no management plugin needed).  The vhost name is
plain letters, digits and dashes, so that ``amqp://…:5672/<name>`` means exactly it: a name with a
``/`` would have to be written ``%2F…`` in every transport URL and in nova's cell mapping.
"""
from __future__ import annotations

import os
import secrets
import subprocess

import psycopg2

PG_HOST = os.environ.get("FASTNOVA_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("FASTNOVA_PG_USER", "postgres")
RABBIT = os.environ.get("FASTNOVA_RABBIT_HOSTPORT", "127.0.0.1:5672")


def session_tag() -> str:
    """A short tag unique to this test session (database and vhost names start with it)."""
    return "fnc%d%s" % (os.getpid(), secrets.token_hex(3))


def _admin():
    conn = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    return conn


class Databases:
    """Databases created for one cloud; ``url(name)`` is SQLAlchemy's URL for one of them."""

    def __init__(self, tag: str):
        self.tag = tag
        self.names: list[str] = []

    def create(self, name: str) -> str:
        full = "%s_%s" % (self.tag, name)
        conn = _admin()
        try:
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "%s"' % full)
        finally:
            conn.close()
        self.names.append(full)
        return self.url(name)

    def url(self, name: str) -> str:
        return "postgresql+psycopg2://%s@%s/%s_%s" % (PG_USER, PG_HOST, self.tag, name)

    def drop_all(self):
        conn = _admin()
        try:
            with conn.cursor() as cur:
                for full in self.names:
                    cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % full)
        finally:
            conn.close()
        self.names.clear()


class Vhost:
    """A RabbitMQ vhost of this cloud, guest allowed everything in it."""

    def __init__(self, tag: str, create: bool = True):
        self.name = tag
        if create:
            _rabbitmqctl("add_vhost", self.name)
            _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    @classmethod
    def existing(cls, name: str) -> "Vhost":
        return cls(name, create=False)

    def url(self, scheme: str = "rabbit") -> str:
        return "%s://guest:guest@%s/%s" % (scheme, RABBIT, self.name)

    def delete(self):
        _rabbitmqctl("delete_vhost", self.name)


def _rabbitmqctl(*args):
    proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("rabbitmqctl %s failed: %s%s" % (" ".join(args), proc.stdout,
                                                            proc.stderr))
