"""Build a store beside the live one and swap it in while ``fastnova serve`` keeps answering.

    <data-dir>/store            the live store (every worker has it mmap'd read-only)
    <data-dir>/import.new/store the store being built (fastnova.store.writer, sync off until done)
    <data-dir>/store.previous   the store before the last swap (kept for one rollback)

The swap, in order:

1. Open a write transaction on the live store.  LMDB serializes writers across processes, so
   from here on cellfeed (and commands) wait; readers never do.
2. Carry over what the feed wrote to the live store while the import read nova (a notification
   newer than the imported row), and copy the feed's journal position, all into the new store,
   then fsync it.
3. ``renameat2(RENAME_EXCHANGE)`` swaps the two directories in one atomic step: a process that
   opens <data-dir>/store sees either the old or the new store, never none.  (Where the file
   system lacks RENAME_EXCHANGE, two renames leave a window of microseconds with no store.)
4. Mark the old store superseded (META_SUPERSEDED, in the transaction of step 1) and commit.
   Processes that still have it open keep answering from it, consistently, until they reopen:
   workers on a HUP of the master (``--reload-pid``), cellfeed when its writer sees the mark.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import signal

import orjson

from fastnova.record import canonical_time, time_micros
from fastnova.store import layout as L
from fastnova.store.writer import StoreWriter, store_path

LOG = logging.getLogger("fastnova.importer")

META_SUPERSEDED = L.META_SUPERSEDED
META_GENERATION = b"generation"
# cellfeed's bookkeeping keys (cellfeed.applier), carried into the new store.
META_FEED_POSITION = b"feed_position"

STAGING = "import.new"
PREVIOUS = "store.previous"
# A server the import did not see but the live store got from the feed is kept if it changed
# after the import began, less this margin for clock skew between nova's hosts and this one.
CARRY_MARGIN_S = 300

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def staging_dir(data_dir: str) -> str:
    return os.path.join(data_dir, STAGING)


def fresh_staging(data_dir: str) -> str:
    path = staging_dir(data_dir)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a)


def _fsync_dir(path: str):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(data_dir: str):
    """Staged store -> <data-dir>/store; the old one -> store.previous."""
    live, staged = store_path(data_dir), store_path(staging_dir(data_dir))
    previous = os.path.join(data_dir, PREVIOUS)
    if not os.path.exists(live):
        os.rename(staged, live)
    elif exchange(staged, live):
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(staged, previous)      # staged now names the old store
    else:
        LOG.warning("import: no RENAME_EXCHANGE here; swapping with two renames")
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(live, previous)
        os.rename(staged, live)
    _fsync_dir(data_dir)
    shutil.rmtree(staging_dir(data_dir), ignore_errors=True)


def carry_over(live_txn, live_dbs, nb, started_at: str) -> int:
    """Copy into the new store (batch ``nb``) what the live store knows better; returns count."""
    floor = (time_micros(canonical_time(started_at)) - CARRY_MARGIN_S * 1_000_000) * 1024
    carried = 0
    with live_txn.cursor(db=live_dbs[L.DB_RECORDS]) as cur:
        for key, raw in cur:
            rec = orjson.loads(raw)
            have = nb.get_record(rec["id"])
            if have is None and rec.get("version", 0) < floor:
                continue        # not in nova any more, and not touched since the import began
            if have is not None and rec.get("version", 0) <= have.get("version", 0):
                continue
            if "project_id" not in rec:
                changed = nb.delete_server(rec["id"], rec["version"])
            else:
                rec["seq"] = have["seq"] if have else rec.get("seq", 0)
                changed = nb.upsert_server(rec)
            carried += bool(changed)
    return carried


def swap_in(data_dir: str, new: StoreWriter, started_at: str, generation: str) -> dict:
    """Steps 1-4 above.  ``new`` is the staged store's writer (closed on return)."""
    result = {"carried": 0, "generation": generation}
    if not os.path.exists(os.path.join(store_path(data_dir), "data.mdb")):
        with new.batch() as nb:
            nb.set_meta(META_GENERATION, generation.encode())
        new.env.sync(True)
        new.close()
        _move_into_place(data_dir)
        return result
    live = StoreWriter.open(data_dir)
    try:
        with live.env.begin(write=True) as ltxn:          # 1: cellfeed waits from here
            with new.batch() as nb:                        # 2
                result["carried"] = carry_over(ltxn, live.dbs, nb, started_at)
                position = ltxn.get(META_FEED_POSITION, db=live.dbs[L.DB_META])
                if position is not None:
                    nb.set_meta(META_FEED_POSITION, position)
                nb.set_meta(META_GENERATION, generation.encode())
            new.env.sync(True)
            new.close()
            _move_into_place(data_dir)                     # 3
            ltxn.put(META_SUPERSEDED, generation.encode(), db=live.dbs[L.DB_META])   # 4
    finally:
        live.close()
    return result


def reload_workers(pid: int | None):
    """HUP the master: a new generation of workers opens <data-dir>/store, the old drains."""
    if pid:
        os.kill(pid, signal.SIGHUP)
        LOG.info("import: sent HUP to master %d", pid)
