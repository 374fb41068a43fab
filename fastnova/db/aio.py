"""The workers' PostgreSQL client: psycopg2 in asynchronous mode, driven by the event loop.

A blocking psycopg2 call would stall every request of the worker for the whole round trip, so
connections are opened with ``async_=True`` and waited for with ``loop.add_reader`` /
``add_writer`` on the connection's socket.  An async connection is in autocommit: one statement is
one implicit transaction, so a command costs exactly one network round trip (statement + commit),
which the tests count at the socket.

Each command sends ONE statement (counted in ``statements``):
  create   INSERT ... VALUES (...), (...) RETURNING uuid, seq       (all min/max_count rows)
  others   INSERT ... ON CONFLICT (uuid) DO UPDATE ... WHERE older  (an upsert guarded by version)
A small pool lets a worker's commands overlap their round trips.
"""
from __future__ import annotations

import asyncio

import orjson
import psycopg2
import psycopg2.extensions as ext

POOL_SIZE = 4

_COLUMNS = ("uuid, project_id, user_id, version, vm_state, task_state, deleted, record, "
            "pending_cast, api_host, created_at")
_VALUES = "(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)"
_UPSERT = (
    "INSERT INTO servers (" + _COLUMNS + ") VALUES " + _VALUES +
    " ON CONFLICT (uuid) DO UPDATE SET version = EXCLUDED.version,"
    " vm_state = EXCLUDED.vm_state, task_state = EXCLUDED.task_state,"
    " deleted = EXCLUDED.deleted, record = EXCLUDED.record,"
    " pending_cast = EXCLUDED.pending_cast, api_host = EXCLUDED.api_host,"
    " changed_at = clock_timestamp() WHERE servers.version < EXCLUDED.version")


def _row(rec: dict, cast: dict | None, api_host: str | None) -> tuple:
    return (rec["id"], rec["project_id"], rec["user_id"], rec["version"], rec.get("vm_state"),
            rec.get("task_state"), bool(rec.get("deleted")), orjson.dumps(rec).decode(),
            orjson.dumps(cast).decode() if cast is not None else None,
            api_host, rec["created_at"])


class AsyncDatabase:
    def __init__(self, dsn: str, schema: str | None = None, pool_size: int = POOL_SIZE):
        self.dsn = dsn
        self.schema = schema
        self.idle: list = []
        self.size = 0
        self.pool_size = pool_size
        self.waiters: list = []
        self.statements = 0

    # -- the loop integration ----------------------------------------------------------------

    @staticmethod
    async def _wait(conn):
        loop = asyncio.get_running_loop()
        fd = conn.fileno()
        while True:
            state = conn.poll()
            if state == ext.POLL_OK:
                return
            fut = loop.create_future()
            if state == ext.POLL_READ:
                loop.add_reader(fd, _ready, fut)
                try:
                    await fut
                finally:
                    loop.remove_reader(fd)
            elif state == ext.POLL_WRITE:
                loop.add_writer(fd, _ready, fut)
                try:
                    await fut
                finally:
                    loop.remove_writer(fd)
            else:
                raise psycopg2.OperationalError("unexpected poll state %r" % state)

    async def _acquire(self):
        if self.idle:
            return self.idle.pop()
        if self.size < self.pool_size:
            self.size += 1
            try:
                options = "-c search_path=%s" % self.schema if self.schema else None
                conn = psycopg2.connect(self.dsn, async_=True, options=options)
                await self._wait(conn)
                return conn
            except BaseException:
                self.size -= 1
                raise
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        return await fut

    def _release(self, conn, broken: bool):
        if broken or conn.closed:
            self.size -= 1
            try:
                conn.close()
            except Exception:
                pass
            if self.waiters:   # let a waiter open a fresh connection
                asyncio.get_running_loop().create_task(self._hand_fresh())
            return
        while self.waiters:
            fut = self.waiters.pop(0)
            if not fut.done():
                fut.set_result(conn)
                return
        self.idle.append(conn)

    async def _hand_fresh(self):
        if not self.waiters:
            return
        try:
            conn = await self._acquire()
        except Exception as exc:
            while self.waiters:
                fut = self.waiters.pop(0)
                if not fut.done():
                    fut.set_exception(exc)
            return
        self._release(conn, False)

    async def fetch(self, sql: str, params=()) -> list:
        """One statement, one round trip: its rows (or [])."""
        conn = await self._acquire()
        broken = False
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            await self._wait(conn)
            self.statements += 1
            return cur.fetchall() if cur.description else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self._release(conn, broken)

    # -- the commands' statements --------------------------------------------------------------

    async def insert_servers(self, records: list[dict], casts: list[dict]) -> list[int]:
        sql = ("INSERT INTO servers (" + _COLUMNS + ") VALUES " +
               ", ".join([_VALUES] * len(records)) + " RETURNING uuid, seq")
        params = [v for rec, cast in zip(records, casts) for v in _row(rec, cast,
                                                                      cast.get("api_host"))]
        rows = dict(await self.fetch(sql, params))
        return [rows[rec["id"]] for rec in records]

    async def save_server(self, record: dict, cast: dict | None) -> None:
        host = cast.get("api_host") if cast else None
        await self.fetch(_UPSERT, _row(record, cast, host))


def _ready(fut):
    if not fut.done():
        fut.set_result(None)
