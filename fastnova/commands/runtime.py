"""What a worker needs to take commands: the store's writer, a group committer, the API database.

``configure()`` is called by ``fastnova serve`` before the workers fork and records options only;
everything fork-sensitive (the writable LMDB environment, the PostgreSQL connection, the commit
thread) is opened lazily by the worker, on its first command, in ``get(app)``.

LMDB allows one environment handle per process, so the worker's read-only reader is re-pointed at
the writer's environment (same file, same snapshot rules): reads stay lock-free, and a command can
read its own write at once.

Group commit: a command hands its store change (a function of one ``Batch``) to the committer,
which runs every change queued meanwhile in one write transaction on a single thread, so under
load many commands share one fsync, and the event loop keeps serving while the disk syncs.

Overlap (``Runtime.overlapped``, with a database and a forwarder): a command's PostgreSQL
statement is sent as soon as its store change has run inside the write transaction (its checks
passed), so the database's commit and the store's fsync proceed together and the command waits
for the slower of the two instead of their sum.  The outbox entry is then durable before its row
may be: it carries ``db_version`` and the forwarder holds it until the row has that version
(fastnova.outbound.forwarder).  If the statement certainly failed, the command undoes its store write
(``undo``) and fails; if its outcome is unknown, or the worker died, the forwarder writes the row
from the entry once it is ``settle`` seconds old (docs/commands.md).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import socket

from fastnova.outbound import outbox
from fastnova.config import current as current_settings
from fastnova.api import errors

LOG = logging.getLogger("fastnova.commands")

# nova's default quotas (nova.conf [quota]).
DEFAULT_QUOTAS = {
    "instances": 10, "cores": 20, "ram": 51200, "metadata_items": 128, "key_pairs": 100,
    "server_groups": 10, "server_group_members": 10, "injected_files": 5,
    "injected_file_content_bytes": 10240, "floating_ips": -1, "security_groups": -1,
    "security_group_rules": -1, "fixed_ips": -1, "injected_file_path_bytes": 255,
}


@dataclasses.dataclass
class Config:
    database: str | None = None          # postgresql://… : the API database (None: embedded)
    outbox_bound: int = outbox.DEFAULT_BOUND
    quotas: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    api_host: str = dataclasses.field(default_factory=socket.gethostname)
    enable_instance_password: bool = True
    db_schema: str | None = None         # PostgreSQL schema (tests use one per run)
    amqp: bool = False                   # a forwarder takes the outbox to RabbitMQ
    sim_step: float = 0.2                # embedded simulated cell: seconds per step
    front: bool = False                  # --commands upstream: nova takes commands, no cell here
    recover_settle: float = dataclasses.field(      # fastnova.db.recover.SETTLE
        default_factory=lambda: current_settings().recover_settle)


_CONFIG = Config()


def configure(**options) -> Config:
    """Set the command options (before fork; plain values only)."""
    global _CONFIG
    _CONFIG = dataclasses.replace(_CONFIG, **{k: v for k, v in options.items() if v is not None})
    return _CONFIG


def config() -> Config:
    return _CONFIG


def get(app) -> "Runtime":
    rt = getattr(app, "_commands", None)
    if rt is None or rt.pid != os.getpid():
        rt = Runtime(app, _CONFIG)
        app._commands = rt
    return rt


def fault_point(name: str):
    """Fault injection for the crash tests: with FASTNOVA_FAULT_FILE naming an existing file
    whose content is ``name``, the file is removed and the process kills itself (-9) here."""
    path = _FAULT_FILE
    if path and os.path.exists(path):
        with open(path) as f:
            if f.read().strip() != name:
                return
        os.unlink(path)
        os.kill(os.getpid(), 9)


_FAULT_FILE = os.environ.get("FASTNOVA_FAULT_FILE")


def _fault_armed() -> bool:
    return bool(_FAULT_FILE) and os.path.exists(_FAULT_FILE)


class Runtime:
    def __init__(self, app, cfg: Config):
        from fastnova.store.writer import StoreWriter
        self.pid = os.getpid()
        self.cfg = cfg
        reader = app.reader
        # The worker opened its store writable (fastnova.serve.worker): the commands write
        # through the environment its reads use, so a command's write is read at once.
        self.writer = StoreWriter(reader.env)
        outbox.ensure(self.writer)
        self.reader = reader
        self.committer = Committer(self.writer)
        self.sim = None
        if not cfg.amqp and not cfg.front:
            from fastnova.outbound.simcell_embedded import EmbeddedCell
            self.sim = EmbeddedCell(self, cfg.sim_step)
        self.db = None
        if cfg.database:
            from fastnova.db.aio import AsyncDatabase
            self.db = AsyncDatabase(cfg.database, schema=cfg.db_schema)

    # -- reads ---------------------------------------------------------------------------------

    def begin(self):
        return self.reader.env.begin(buffers=False)

    def check_outbox(self, txn):
        if outbox.depth(txn, self.reader.dbs) >= self.cfg.outbox_bound:
            raise errors.fault(503, "The server is currently unavailable. Please try again at "
                                    "a later time.")

    # -- writes --------------------------------------------------------------------------------

    async def write(self, change):
        """Run ``change(batch)`` in the next group commit; its result once durable."""
        result = await self.committer.submit(change)
        if self.sim is not None:
            self.sim.poke()
        return result

    @property
    def overlapped(self) -> bool:
        """Commands with a cast overlap their database commit with the store's (module doc):
        only when a forwarder gates the outbox on the database (``--amqp`` and ``--database``)."""
        return self.db is not None and self.cfg.amqp

    async def write_with_db(self, change, statement, undo):
        """The overlapped write: ``change(batch)`` in the next group commit; ``statement()`` (a
        coroutine function: the command's one database statement) started once the change has
        run; ``undo(batch, result)`` (-> bool: undone) if the statement certainly failed.
        Returns the change's result once both are durable."""
        loop = asyncio.get_running_loop()
        sent: list = []

        def send():
            if not sent:
                sent.append(loop.create_task(statement()))

        # Crash tests need an exact point between the store's commit and the statement.
        early = None if _fault_armed() else (lambda: loop.call_soon_threadsafe(send))
        try:
            result = await self.committer.submit(change, early)
        except BaseException:
            if sent:     # it commits or not; fastnova.db.recover completes a committed one
                await asyncio.gather(sent[0], return_exceptions=True)
            raise
        if not sent:
            fault_point("after_store_commit")
            send()
        try:
            await sent[0]
        except Exception as exc:
            from fastnova.db.aio import definite
            if not definite(exc):
                raise     # unknown: the forwarder writes the row from the entry (settle)
            if await self.committer.submit(lambda b: undo(b, result)):
                raise
            LOG.warning("database statement failed (%s) but the forwarder had taken the "
                        "command over; it completes it", exc)
        return result


class Committer:
    """Group commit of store changes, one write transaction per group, on one thread.

    A change checks before it writes: an ApiError it raises (a state that changed since the
    command validated) fails that command only.  Any other error aborts the group, which is then
    retried one change per transaction so one bug cannot fail its neighbours.
    """

    def __init__(self, writer):
        self.writer = writer
        self.pending: list = []
        self.running = False
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fastnova-commit")
        self.commits = 0
        self.changes = 0

    def submit(self, change, applied=None) -> asyncio.Future:
        """``applied()`` (optional) is called in the committer's thread once ``change`` has run
        without error inside the transaction, before it commits."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((change, fut, applied))
        if not self.running:
            self._start(loop)
        return fut

    def _start(self, loop):
        group, self.pending = self.pending, []
        self.running = True
        job = loop.run_in_executor(self.pool, self._commit_group,
                                   [(c, a) for c, _, a in group])
        job.add_done_callback(lambda done: self._finished(loop, group, done))

    def _finished(self, loop, group, done):
        self.running = False
        try:
            results = done.result()
        except BaseException as exc:   # the store itself failed (disk/map full, I/O)
            LOG.critical("store write failed: %r", exc)
            results = [(False, exc)] * len(group)
        for (_, fut, _), (ok, value) in zip(group, results):
            if fut.cancelled():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if self.pending:
            self._start(loop)

    def _commit_group(self, changes) -> list:
        try:
            return self._commit(changes)
        except errors.ApiError:
            raise
        except Exception:
            if len(changes) == 1:
                raise
            LOG.exception("a group of %d store changes failed; retrying one by one",
                          len(changes))
            out = []
            for change in changes:
                try:
                    out.extend(self._commit([change]))
                except Exception as exc:
                    out.append((False, exc))
            return out

    def _commit(self, changes) -> list:
        out = []
        with self.writer.batch() as b:
            for change, applied in changes:
                try:
                    out.append((True, change(b)))
                except errors.ApiError as exc:
                    out.append((False, exc))
                    continue
                if applied is not None:
                    applied()
        self.commits += 1
        self.changes += len(changes)
        return out
