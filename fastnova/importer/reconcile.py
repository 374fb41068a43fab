"""``fastnova reconcile``: repair drift between the live store and nova's databases.

Notifications do not carry everything the API shows (floating IPs, image properties, security
groups, faults' codes, host status, …) and can be lost (a purged queue, a notification driver
switched off).  Reconcile reads nova exactly as the importer does and merge-joins it, by uuid,
with the store's records (read in short chunks, so no read transaction pins an old snapshot):

* in nova, not in the store           -> upsert
* in both, different, store not newer -> upsert with a version above the store's
* in both, store newer than the row   -> left alone (a notification arrived after the snapshot)
* in the store, not in nova           -> tombstone, unless written after the reconcile began
                                         (less a clock-skew margin): a server created meanwhile

It is idempotent and safe to run while cellfeed applies notifications (versions decide), so it
can run periodically (``--interval``).
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass

import orjson

from fastnova.importer import mapping as M
from fastnova.importer import stream as S
from fastnova.importer.run import META_FLAVOR_VERSION, resolve_cells
from fastnova.importer.swap import CARRY_MARGIN_S
from fastnova.importer.versions import SLOTS, db_version
from fastnova.progress import Progress
from fastnova.record import canonical_time, normalize, time_micros
from fastnova.store import layout as L
from fastnova.store.writer import StoreWriter

LOG = logging.getLogger("fastnova.importer")

CHUNK = 1000
BOOKKEEPING = ("version", "seq")


@dataclass
class ReconcileStats:
    checked: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    newer_in_store: int = 0
    flavors: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return ("reconcile: %d servers checked, %d added, %d updated, %d tombstoned, "
                "%d newer in the store, %d flavors refreshed, %.1fs"
                % (self.checked, self.added, self.updated, self.deleted, self.newer_in_store,
                   self.flavors, self.seconds))


def store_records(writer: StoreWriter):
    """(uuid, record) of every record in uuid order, CHUNK per short read transaction."""
    after = b""
    db = writer.dbs[L.DB_RECORDS]
    while True:
        chunk = []
        with writer.env.begin() as txn, txn.cursor(db=db) as cur:
            if not cur.set_range(after):
                return
            for key, raw in cur:
                if key == after:
                    continue
                chunk.append((key.decode(), orjson.loads(raw)))
                if len(chunk) >= CHUNK:
                    break
        if not chunk:
            return
        yield from chunk
        after = chunk[-1][0].encode()


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in BOOKKEEPING)


class _Writes:
    def __init__(self, writer: StoreWriter, size: int = 500):
        self.writer, self.size, self.ops = writer, size, []

    def add(self, op):
        self.ops.append(op)
        if len(self.ops) >= self.size:
            self.flush()

    def flush(self):
        if not self.ops:
            return
        with self.writer.batch() as b:
            for op in self.ops:
                op(b)
        self.ops = []


def _decide(db_rec, st_rec, floor: int, stats: ReconcileStats, writes: _Writes):
    if st_rec is None:
        stats.added += 1
        writes.add(lambda b, r=db_rec: b.upsert_server(r))
        return
    if db_rec is None:
        if st_rec.get("deleted") or st_rec.get("version", 0) >= floor:
            return
        stats.deleted += 1
        writes.add(lambda b, u=st_rec["id"], v=st_rec["version"] + 1: b.delete_server(u, v))
        return
    if "project_id" in st_rec:
        if _same(normalize(db_rec), st_rec):
            return
        st_time = st_rec.get("updated_at") or st_rec.get("created_at")
        db_time = db_rec.get("updated_at") or db_rec.get("created_at")
        if st_time and db_time and canonical_time(st_time) > canonical_time(db_time):
            stats.newer_in_store += 1
            return
    elif st_rec.get("version", 0) > db_rec["version"]:
        stats.newer_in_store += 1       # a tombstone from a delete notification after the row
        return
    rec = dict(db_rec, version=max(db_rec["version"], st_rec.get("version", 0) + 1))
    rec["seq"] = st_rec.get("seq") or rec["seq"]
    stats.updated += 1
    writes.add(lambda b, r=rec: b.upsert_server(r))


def _merge(db_stream, st_stream):
    """Pairs (db_record | None, store_record | None) in uuid order."""
    db_it, st_it = iter(db_stream), iter(st_stream)
    d, s = next(db_it, None), next(st_it, None)
    while d is not None or s is not None:
        if s is None or (d is not None and d["id"] < s[0]):
            yield d, None
            d = next(db_it, None)
        elif d is None or s[0] < d["id"]:
            yield None, s[1]
            s = next(st_it, None)
        else:
            yield d, s[1]
            d, s = next(db_it, None), next(st_it, None)


def _db_records(dbs, ctx, stats):
    for bundle in S.bundles(dbs, with_deleted=True):
        try:
            rec = M.server_record(bundle, ctx)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            LOG.warning("reconcile: server %s skipped: %r", bundle.uuid, exc)
            continue
        if rec is not None:
            stats.checked += 1
            yield rec


def _flavors(dbs, writer: StoreWriter, stats: ReconcileStats):
    from fastnova.importer.run import write_flavors   # same code path as the import
    with writer.batch() as b:
        before = {k: v for k, v in b.txn.cursor(db=writer.dbs[L.DB_FLAVOR_RECS])}
        write_flavors(dbs["api"], b)
        after = {k: v for k, v in b.txn.cursor(db=writer.dbs[L.DB_FLAVOR_RECS])}
    stats.flavors = sum(1 for k, v in after.items() if before.get(k) != v)


def reconcile_once(api_url: str, cell_urls, data_dir: str,
                   settings: M.Settings | None = None, out=None) -> ReconcileStats:
    """One pass; with ``out``, progress goes there (fastnova.progress: a bar on a terminal)."""
    stats, start = ReconcileStats(), time.monotonic()
    began = _dt.datetime.utcnow().isoformat()
    floor = (time_micros(canonical_time(began)) - CARRY_MARGIN_S * 1_000_000) * SLOTS
    source = S.Source(api_url, resolve_cells(api_url, cell_urls))
    writer = StoreWriter.open(data_dir)
    dbs = S.open_all(source)
    try:
        ctx = S.load_context(source, settings or M.Settings(), dbs)
        progress = None
        if out is not None:
            progress = Progress("reconcile", S.count_servers(dbs, True), out=out)
        writes = _Writes(writer)
        for db_rec, st_rec in _merge(_db_records(dbs, ctx, stats), store_records(writer)):
            _decide(db_rec, st_rec, floor, stats, writes)
            if progress is not None and db_rec is not None and not stats.checked % 500:
                progress.update(stats.checked)
        writes.flush()
        if progress is not None:
            progress.update(stats.checked)
            progress.close()
        _flavors(dbs, writer, stats)
    finally:
        S.close_all(dbs)
        writer.close()
    stats.seconds = time.monotonic() - start
    return stats


def reconcile(api_url, cell_urls, data_dir, settings=None, interval: float = 0,
              out=None) -> ReconcileStats:
    """Once, or every ``interval`` seconds until interrupted."""
    while True:
        stats = reconcile_once(api_url, cell_urls, data_dir, settings, out=out)
        LOG.info(stats.line())
        if out is not None:
            print(stats.line(), file=out, flush=True)
        if not interval:
            return stats
        time.sleep(interval)


__all__ = ["reconcile", "reconcile_once", "ReconcileStats", "db_version", "META_FLAVOR_VERSION"]
