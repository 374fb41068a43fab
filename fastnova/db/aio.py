"""The workers' PostgreSQL client: psycopg2 in asynchronous mode, driven by the event loop.

A blocking psycopg2 call would stall every request of the worker for the whole round trip, so
connections are opened with ``async_=True`` and waited for with ``loop.add_reader`` /
``add_writer`` on the connection's socket.  An async connection is in autocommit: one statement is
one implicit transaction, so a command costs exactly one network round trip (statement + commit),
which the tests count at the socket.

Each command sends ONE statement (counted in ``statements``):
  create   INSERT ... VALUES (...), (...) RETURNING uuid, seq       (all min/max_count rows)
  others   INSERT ... ON CONFLICT (uuid) DO UPDATE ... WHERE older  (an upsert guarded by version)
A small pool lets a worker's commands overlap their round trips.  Only a command that its store
recheck refuses after its row committed sends a second statement (``retract_server``).

Sequence numbers (nova's ``instances.id``, which names the instance) come from the table's
sequence.  So that a create can write its store record before its row exists (its database commit
then overlaps the store's fsync: fastnova.commands.runtime), a create whose worker holds fewer than
``SEQ_LOW`` spare numbers also reserves ``SEQ_BLOCK`` more in the same statement (a ``UNION ALL``
of ``nextval``), and the next creates name their seq explicitly.  A restart leaves a gap, as a
rolled-back insert does.

The row's ``pending_cast`` is the cast without its ``instance`` (the row's ``record`` is that
instance): half the bytes of the statement.  fastnova.db.recover puts it back.
"""
from __future__ import annotations

import asyncio

import orjson
import psycopg2
import psycopg2.extensions as ext

from fastnova.db.connect import connect

POOL_SIZE = 4
SEQ_BLOCK, SEQ_LOW = 64, 16

_COLUMNS = ("uuid, project_id, user_id, version, vm_state, task_state, deleted, record, "
            "pending_cast, api_host, created_at")
_VALUES = "(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)"
_VALUES_SEQ = _VALUES[:-1] + ", %s)"
_RESERVE = " UNION ALL SELECT NULL, nextval('servers_seq_seq') FROM generate_series(1, %d)"
_UPSERT_HEAD = "INSERT INTO servers ("
_UPSERT_TAIL = (
    " ON CONFLICT (uuid) DO UPDATE SET version = EXCLUDED.version,"
    " vm_state = EXCLUDED.vm_state, task_state = EXCLUDED.task_state,"
    " deleted = EXCLUDED.deleted, record = EXCLUDED.record,"
    " pending_cast = EXCLUDED.pending_cast, api_host = EXCLUDED.api_host,"
    " changed_at = clock_timestamp() WHERE servers.version < EXCLUDED.version")
_UPSERT = _UPSERT_HEAD + _COLUMNS + ") VALUES " + _VALUES + _UPSERT_TAIL
_RETRACT = ("UPDATE servers SET version = %s, vm_state = %s, task_state = %s, deleted = %s,"
            " record = %s::jsonb, pending_cast = NULL, changed_at = clock_timestamp()"
            " WHERE uuid = %s AND version = %s")


def _row(rec: dict, cast: dict | None, api_host: str | None) -> tuple:
    return (rec["id"], rec["project_id"], rec["user_id"], rec["version"], rec.get("vm_state"),
            rec.get("task_state"), bool(rec.get("deleted")), orjson.dumps(rec).decode(),
            _pending(cast), api_host, rec["created_at"])


def _pending(cast: dict | None) -> str | None:
    if cast is None:
        return None
    return orjson.dumps({k: v for k, v in cast.items() if k != "instance"}).decode()


def upsert_sql(count: int) -> str:
    """The version-guarded upsert of ``count`` rows, seq named (fastnova.outbound.forwarder's
    roll-forward of a command whose worker died before its statement)."""
    return (_UPSERT_HEAD + _COLUMNS + ", seq) VALUES " + ", ".join([_VALUES_SEQ] * count) +
            _UPSERT_TAIL)


def upsert_params(rec: dict, cast: dict | None, api_host: str | None) -> tuple:
    return _row(rec, cast, api_host) + (rec.get("seq") or None,)


def definite(exc: BaseException) -> bool:
    """Did this statement certainly not commit?  An error the server reported (it has a SQLSTATE;
    in autocommit the statement's transaction is rolled back) or one raised before anything was
    sent.  A connection lost while waiting for the answer leaves the outcome unknown."""
    return getattr(exc, "pgcode", None) is not None or getattr(exc, "fastnova_unsent", False)


class AsyncDatabase:
    def __init__(self, dsn: str, schema: str | None = None, pool_size: int = POOL_SIZE):
        self.dsn = dsn
        self.schema = schema
        self.idle: list = []
        self.size = 0
        self.pool_size = pool_size
        self.waiters: list = []
        self.statements = 0
        self.seqs: list[int] = []       # reserved sequence numbers (see the module's doc)
        self.reserving = False

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
                conn = connect(self.dsn, self.schema, async_=True)
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
        try:
            conn = await self._acquire()
        except Exception as exc:
            exc.fastnova_unsent = True
            raise
        broken = False
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
            except Exception as exc:    # not sent whole: it cannot have run
                exc.fastnova_unsent = True
                raise
            await self._wait(conn)
            self.statements += 1
            return cur.fetchall() if cur.description else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self._release(conn, broken)

    # -- the commands' statements --------------------------------------------------------------

    def take_seqs(self, count: int) -> list[int] | None:
        """``count`` reserved sequence numbers, or None (then the insert draws them)."""
        if len(self.seqs) < count:
            return None
        taken, self.seqs = self.seqs[:count], self.seqs[count:]
        return taken

    async def insert_servers(self, records: list[dict], casts: list[dict]) -> list[int]:
        """Insert the rows (with the records' seq if they carry one); their seqs."""
        named = all(rec.get("seq") for rec in records)
        sql = ("WITH ins AS (INSERT INTO servers (" + _COLUMNS + (", seq" if named else "") +
               ") VALUES " + ", ".join([_VALUES_SEQ if named else _VALUES] * len(records)) +
               " RETURNING uuid, seq) SELECT uuid, seq FROM ins")
        reserve = not self.reserving and len(self.seqs) < SEQ_LOW
        if reserve:
            sql += _RESERVE % SEQ_BLOCK
            self.reserving = True
        params = []
        for rec, cast in zip(records, casts):
            params.extend(_row(rec, cast, cast.get("api_host")))
            if named:
                params.append(rec["seq"])
        try:
            rows = await self.fetch(sql, params)
        finally:
            if reserve:
                self.reserving = False
        got = {}
        for uuid, seq in rows:
            if uuid is None:
                self.seqs.append(seq)
            else:
                got[uuid] = seq
        return [got[rec["id"]] for rec in records]

    async def save_server(self, record: dict, cast: dict | None) -> None:
        host = cast.get("api_host") if cast else None
        await self.fetch(_UPSERT, _row(record, cast, host))

    async def retract_server(self, record: dict, refused: int) -> None:
        """The row a refused command wrote (version ``refused``) takes the store's ``record``
        (whose version is at least ``refused``) and loses its pending cast; a row some later
        command has written since is left alone.  Only on the refusal path."""
        await self.fetch(_RETRACT, (record["version"], record.get("vm_state"),
                                    record.get("task_state"), bool(record.get("deleted")),
                                    orjson.dumps(record).decode(), record["id"], refused))


def _ready(fut):
    if not fut.done():
        fut.set_result(None)
