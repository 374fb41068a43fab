"""The one door to fastnova's own PostgreSQL (the API database, ``--database``): every connection
to it is opened here, in the schema the deployment names (``--db-schema``; tests use one each).

Users: ``fastnova db sync`` (fastnova.db.schema), the recovery pass (fastnova.db.recover), the
forwarder's gate (fastnova.outbound.forwarder) and the workers' async statements
(fastnova.db.aio, ``async_=True``).  nova's own databases are read by the importer through its
own door, fastnova/importer/novadb.py.
"""
from __future__ import annotations


def connect(dsn: str, schema: str | None = None, **kw):
    """A psycopg2 connection to ``dsn`` with ``search_path`` set to ``schema`` when given;
    ``kw`` goes to psycopg2.connect (``async_=True`` for the event loop's connections)."""
    import psycopg2     # imported by the processes that connect, never by the master
    options = "-c search_path=%s" % schema if schema else None
    return psycopg2.connect(dsn, options=options, **kw)
