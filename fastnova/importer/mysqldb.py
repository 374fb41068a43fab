"""nova's MySQL/MariaDB databases, through PyMySQL (used only by fastnova.importer.novadb).

A MySQL connection carries one unfinished result at a time, so every ``stream`` opens a
connection of its own with an ``SSDictCursor`` (rows come as the server sends them: memory holds
what the socket buffers and one ITERSIZE page, whatever the table's size) inside a REPEATABLE
READ transaction started ``WITH CONSISTENT SNAPSHOT, READ ONLY``.  ``rows`` (small lookups) runs
on the database's first connection, opened the same way.
"""
from __future__ import annotations

import pymysql
import pymysql.cursors

from fastnova.importer.novadb import (BOOLEAN_COLUMNS, DIALECTS, ITERSIZE, MYSQL, NovaDBError,
                                      _Streams, mysql_params, redact)


def _booleans(row: dict) -> dict:
    """TINYINT(1) 0/1 -> False/True, as PostgreSQL's boolean columns read."""
    for name in BOOLEAN_COLUMNS.intersection(row):
        value = row[name]
        if value is not None:
            row[name] = bool(value)
    return row


class MySQLNovaDB(_Streams):
    dialect = DIALECTS[MYSQL]

    def __init__(self, url: str):
        self.url = url
        self._params = mysql_params(url)
        self._open: list = []            # connections of streams still running
        self.conn = self._connect(pymysql.cursors.DictCursor)

    def _connect(self, cursorclass):
        try:
            conn = pymysql.connect(cursorclass=cursorclass, autocommit=False,
                                   **self._params)
        except pymysql.Error as exc:
            raise NovaDBError("cannot connect to %s: %s" % (redact(self.url), exc)) from None
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        return conn

    def close(self):
        for conn in [self.conn, *self._open]:
            try:
                conn.close()         # a stream left unfinished is dropped with its socket
            except pymysql.Error:
                pass
        self._open = []

    def rows(self, sql: str, params=None) -> list[dict]:
        """A small query, read whole."""
        with self.conn.cursor() as cur:
            cur.execute(self.sql(sql), params)
            return [_booleans(dict(r)) for r in cur.fetchall()]

    def stream(self, sql: str, params=None):
        """A big query through an unbuffered cursor on a connection of its own."""
        conn = self._connect(pymysql.cursors.SSDictCursor)
        self._open.append(conn)
        finished = False
        try:
            cur = conn.cursor()
            cur.execute(self.sql(sql), params)
            while True:
                page = cur.fetchmany(ITERSIZE)
                if not page:
                    break
                for row in page:
                    yield _booleans(row)
            finished = True
        finally:
            # Closing an unfinished SSCursor would read every remaining row first: an
            # abandoned stream closes its connection instead.
            if finished:
                conn.rollback()
            conn.close()
            self._open.remove(conn)
