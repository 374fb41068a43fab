"""Apply journaled updates to the LMDB store: one write transaction per batch.

The batch also records the journal position it brings the store to (META_POSITION), so the store
and the position can never disagree: after a crash, replay starts right after it.  Versions make
applying idempotent, which is what lets replay and broker redelivery overlap freely.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time

from cellfeed import contract as C
from fastnova.store.layout import StoreSuperseded

LOG = logging.getLogger(__name__)

META_POSITION = b"feed_position"
# Flavors have no version field in the store's record, so the feed keeps one per flavor in the
# store's meta database (same transaction as the flavor itself).  A deleted flavor keeps its entry
# as a tombstone.
META_FLAVOR_VERSION = b"feed_flavor_version:"


# What a record that slipped past cellfeed.contract can raise in the writer or the views.
DATA_ERRORS = (ValueError, TypeError, KeyError, AttributeError)


# Below this many free bytes a store's file system counts as full: LMDB grows its file a few
# pages at a time, and a commit that cannot get them fails with EIO or ENOSPC.
FULL_DISK_BYTES = 1 << 20


def describe_store_error(exc: BaseException, data_dir: str) -> str:
    """A store failure in an operator's words, naming the store's directory.

    LMDB reports a full disk as ``mdb_txn_commit: Input/output error`` (or ENOSPC) and names no
    file; statvfs of the store's directory tells a full disk from a failing one."""
    from fastnova.store.writer import store_path
    directory = store_path(data_dir)
    text = str(exc) or type(exc).__name__
    try:
        st = os.statvfs(directory if os.path.isdir(directory) else data_dir)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    full = "No space left" in text or getattr(exc, "errno", None) == errno.ENOSPC
    if full or (free is not None and free < FULL_DISK_BYTES):
        return "store: no space left on %s (%s bytes free): %s" % (
            directory, "?" if free is None else free, text)
    return "store: %s failed: %s" % (directory, text)


class ApplyError(RuntimeError):
    """A validated update could not be applied: a bug; the feed must stop, not skip it."""


class ApplyStats:
    """Counters kept by the applier (read by the service for its log line and by the bench)."""

    def __init__(self):
        self.applied = 0        # updates that changed the store
        self.ignored = 0        # stale, duplicate or for an unknown server
        self.batches = 0
        self.position = 0


class Applier:
    def __init__(self, writer):
        self.writer = writer
        self.stats = ApplyStats()
        self.stats.position = self.read_position()

    def read_position(self) -> int:
        with self.writer.batch() as b:
            raw = b.get_meta(META_POSITION)
        return int(raw) if raw else 0

    def apply(self, entries: list[tuple[int, list[dict]]]):
        """Apply [(lsn, updates)] in one transaction and record the last LSN as applied."""
        if not entries:
            return
        try:
            self._apply_batch(entries)
        except StoreSuperseded as exc:
            self._follow_swap(exc, entries[0][0])
            self.apply(entries)
        except DATA_ERRORS:
            # Validation should make this impossible, so it is a bug in the feed or the store.
            # Redo the batch one entry per transaction: the entries before the bad one are
            # applied, and the error names the bad one exactly.
            for entry in entries:
                self._apply_alone(entry)

    def _follow_swap(self, exc, first_lsn: int):
        """An import swapped the store out (nothing of the refused batch was written): reopen
        the new one.  The swap carried the feed's position over under the write lock, so it is
        where the old store stood, right before this batch; if it is not, entries would be
        missing in between, and a restart (which replays the journal from the store's position)
        is the safe way on."""
        self.writer = self.writer.reopen()
        position = self.read_position()
        LOG.warning("cellfeed: %s; reopened the store at feed position %d", exc, position)
        if position < first_lsn - 1:
            raise ApplyError("the new store's feed position %d is before %d, the entry before "
                             "this batch; restart cellfeed to replay the journal from there"
                             % (position, first_lsn - 1))
        self.stats.position = position

    def _apply_batch(self, entries):
        changed = ignored = 0
        # Coalescing: a server patched several times in one batch (a cell reports a build's
        # steps in a burst) is rendered and indexed once, from its last state.
        with self.writer.batch(coalesce=True) as b:
            for _lsn, updates in entries:
                for update in updates:
                    if apply_update(b, update):
                        changed += 1
                    else:
                        ignored += 1
            b.set_meta(META_POSITION, b"%d" % entries[-1][0])
        self._count(entries[-1][0], changed, ignored)

    def _apply_alone(self, entry):
        try:
            self._apply_batch([entry])
        except DATA_ERRORS as exc:
            # The entry was acknowledged, so skipping it would lose it for good: stop here,
            # with the position before it, so that a fixed build replays it.
            raise ApplyError("journal entry %d cannot be applied (%s: %s); the feed stops "
                             "before it so that nothing acknowledged is skipped"
                             % (entry[0], type(exc).__name__, exc)) from exc

    def _count(self, position, changed, ignored):
        self.stats.applied += changed
        self.stats.ignored += ignored
        self.stats.batches += 1
        self.stats.position = position


def apply_update(b, update: dict) -> bool:
    """One validated update (cellfeed.contract) inside a store batch; True if it changed it."""
    kind, ident, version = update["kind"], update["id"], update["version"]
    if kind == C.SERVER_UPSERT:
        return b.upsert_server(update["server"], normalized=True)    # by contract.validate
    if kind == C.SERVER_PATCH:
        return b.patch_server(ident, version, update["changes"])
    if kind == C.SERVER_DELETE:
        return b.delete_server(ident, version, update.get("deleted_at"))
    if kind in _RESOURCE_KINDS:
        return _apply_resource(b, kind, ident, version, update)
    return _apply_flavor(b, kind, ident, version, update)


_RESOURCE_KINDS = (C.SERVICE_UPSERT, C.ACTION_EVENT, C.CALL_REPLY)


def _apply_resource(b, kind, ident, version, update) -> bool:
    """The API-tier resources a cell reports (fastnova.resources)."""
    if kind == C.SERVICE_UPSERT:
        from fastnova.resources import services
        return services.put(b, dict(update["service"], version=version))
    if kind == C.ACTION_EVENT:
        from fastnova.resources import actions
        return actions.apply_event(b, ident, update["event"])
    from fastnova.resources import calls
    return calls.put_reply(b, ident, update["reply"])


def _apply_flavor(b, kind, ident, version, update) -> bool:
    key = META_FLAVOR_VERSION + ident.encode()
    held = b.get_meta(key)
    if held is not None and version <= int(held.split(b":")[0]):
        return False
    if kind == C.FLAVOR_UPSERT:
        b.put_flavor(update["flavor"])
        b.set_meta(key, b"%d" % version)
    else:
        b.delete_flavor(ident)
        b.set_meta(key, b"%d:deleted" % version)
    return True


class ApplierThread:
    """Runs an Applier off the consumer's I/O loop, merging queued groups into larger batches.

    The consumer hands over groups that are already durable and acknowledged; the store commit
    (with its own fsync, ~0.4-8 ms here) then overlaps with receiving the next group instead of
    stalling the AMQP connection.  The bounded queue pushes back on the consumer when the store
    cannot keep up, so memory stays bounded.
    """

    def __init__(self, applier: Applier, on_fatal, max_batch: int = 20000, depth: int = 64,
                 min_interval: float = 0.0):
        self.applier = applier
        self.max_batch = max_batch
        self.min_interval = min_interval
        self._last_commit = float("-inf")       # the first commit never waits
        self._on_fatal = on_fatal
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="cellfeed-applier", daemon=True)
        self.error: BaseException | None = None

    def start(self):
        self._thread.start()

    def submit(self, entries: list[tuple[int, list[dict]]]) -> bool:
        """Queue durable entries (blocks while the queue is full); False if the applier died."""
        while self.error is None:
            try:
                self._queue.put(entries, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def stop(self, timeout: float | None = None) -> bool:
        """Apply what is queued, then end; True if the thread finished."""
        if not self._thread.is_alive():
            return True
        self.submit(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        try:
            while self._drain():
                pass
        except BaseException as exc:  # the store failed (disk full, map full, I/O error)
            self.error = exc
            self._on_fatal(exc)

    def _drain(self) -> bool:
        """Apply everything queued as one batch; False when told to stop.

        A batch holds up to ``max_batch`` updates (a group is never split; a message may carry
        many updates): one durable LMDB commit costs two fsyncs, so under load the batches
        grow until the commit is a small share (apply alone, 20% creates: 8,400 updates/s at
        500 a transaction, 11,900 at 2,000, 15,400 at 10,000, measured).  ``min_interval`` spaces
        commits under a light load: every durable commit ends in a disk interrupt, and a reader
        on the core that takes them saw its p99 rise ~25% with 200 small commits a second and
        not with 20 (measured).  Off by default: with readers off that core it made no
        difference that the noise here could show, and it adds up to the interval to the lag."""
        entries = self._queue.get()
        if entries is None:
            return False
        more = True
        updates = _updates(entries)
        deadline = self._last_commit + self.min_interval
        while updates < self.max_batch:
            wait = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                more = False
                break
            entries.extend(nxt)
            updates += _updates(nxt)
        self.applier.apply(entries)
        self._last_commit = time.monotonic()
        return more


def _updates(entries) -> int:
    return sum(len(updates) for _lsn, updates in entries)

