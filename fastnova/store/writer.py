"""The one door for writing the LMDB store.

Every writer (the cell feed, commands, the nova importer, the demo generator) goes through
``StoreWriter.batch()``: one LMDB write transaction in which records are version-checked,
rendered into view blobs (fastnova.views) and indexed.  LMDB serializes writers; readers never
wait for them.  Open a StoreWriter in the process that uses it, after fork.
"""
from __future__ import annotations

import contextlib
import os
from operator import itemgetter

import orjson

from fastnova._ext import compiled
from fastnova.query import row as qrow
from fastnova.record import merge, normalize
from fastnova.store import layout as L
from fastnova.store.env import DEFAULT_MAP_SIZE, data_dir_of, open_env, store_path  # noqa: F401
from fastnova.views.flavors import flavor_sort_key, render_flavor
from fastnova.views.servers import pack_parts, render_parts, rerender_parts

StoreSuperseded = L.StoreSuperseded
_first = itemgetter(0)


class StoreWriter:
    def __init__(self, env, render_cache: int = 0):
        """``env``: the store's environment, opened writable by fastnova.store.env (or use
        ``StoreWriter.open``).  ``render_cache``: how many recently written servers to remember
        (RenderCache), so that a patch re-renders only what it changes; 0 remembers none."""
        if isinstance(env, (str, os.PathLike)):
            raise TypeError("StoreWriter is handed an environment: StoreWriter.open(data_dir)")
        self.env = env
        self.path = env.path()
        self._options = (data_dir_of(env), env.info()["map_size"], env.flags()["sync"],
                         render_cache)
        self.dbs = {name: self.env.open_db(name, create=True) for name in L.ALL_DBS}
        self.cache = RenderCache(render_cache) if render_cache > 0 else None
        with self.env.begin(write=True) as txn:
            found = txn.get(L.META_SCHEMA, db=self.dbs[L.DB_META])
            if found is None:
                txn.put(L.META_SCHEMA, b"%d" % L.SCHEMA_VERSION, db=self.dbs[L.DB_META])
            elif int(found) != L.SCHEMA_VERSION:
                raise RuntimeError("store schema %s, this fastnova writes %d: rebuild the store"
                                   % (found.decode(), L.SCHEMA_VERSION))

    @classmethod
    def open(cls, data_dir: str, map_size: int = DEFAULT_MAP_SIZE, sync: bool = True,
             render_cache: int = 0) -> "StoreWriter":
        """A writer on its own environment of ``data_dir``'s store (created when missing)."""
        return cls(open_env(data_dir, map_size=map_size, sync=sync), render_cache=render_cache)

    @contextlib.contextmanager
    def batch(self, coalesce: bool = False):
        """One write transaction: commits (durably, unless opened with sync=False) on exit.

        ``coalesce``: a server written several times in the transaction is rendered, indexed
        and put once, at the end, from its last state (Batch.flush_pending); the stored bytes
        are those of writing it each time.  For a writer that only goes through the Batch
        methods (the feed's applier), not through ``txn`` directly.

        Raises StoreSuperseded, writing nothing, when an import has swapped this store out: what
        is written to it now would never be read.  The writer must be reopened (the path now
        holds the new store)."""
        with self.env.begin(write=True) as txn:
            mark = txn.get(L.META_SUPERSEDED, db=self.dbs[L.DB_META])
            if mark is not None:
                raise StoreSuperseded("this store was replaced by import generation %s; reopen "
                                      "%s" % (mark.decode(errors="replace"), self.path))
            batch = Batch(txn, self.dbs, self.cache, coalesce)
            yield batch
            batch.flush_pending()
            batch.flush_counts()

    def reopen(self) -> "StoreWriter":
        """Close this writer and open the store now at its path (after an import's swap)."""
        self.close()
        data_dir, map_size, sync, render_cache = self._options
        return StoreWriter.open(data_dir, map_size=map_size, sync=sync, render_cache=render_cache)

    def reader_check(self) -> int:
        """Reclaim reader slots of dead processes (the master calls this after reaping)."""
        return self.env.reader_check()

    def close(self):
        self.env.close()


class Written:
    """What the writer stored for one server: the record's bytes, and what they were made of."""

    __slots__ = ("raw", "rec", "row", "parts", "index")

    def __init__(self, raw: bytes, rec: dict, row: dict, parts: tuple, index: dict | None):
        self.raw = raw          # the record as stored in DB_RECORDS
        self.rec = rec          # the same record, decoded
        self.row = row          # its query row (fastnova.query.row.build)
        self.parts = parts      # fastnova.views.servers.render_parts(rec)
        self.index = index      # index_entries(rec), or None if not computed yet


class RenderCache:
    """The records (with their rendered parts and index entries) the writer wrote last.

    A cell sends a server's changes in bursts (build, spawn, networking, active), so the server a
    patch names was usually written moments ago.  An entry is used only while the store holds
    exactly the bytes it was made from (one memcmp against the record the transaction reads
    anyway): a write by another process, or an aborted transaction, makes it miss, never lie.
    Entries are pure functions of the record, so equal bytes mean equal entries.
    """

    def __init__(self, size: int):
        self.size = size
        self._map: dict[bytes, Written] = {}
        self.hits = self.misses = 0

    def get(self, key: bytes, raw: bytes) -> Written | None:
        found = self._map.get(key)
        if found is not None and found.raw == raw:
            self.hits += 1
            return found
        self.misses += 1
        return None

    def put(self, key: bytes, written: Written):
        entries = self._map
        entries.pop(key, None)          # re-inserted last: evicted last
        entries[key] = written
        if len(entries) > self.size:
            del entries[next(iter(entries))]

    def __len__(self):
        return len(self._map)


# Record fields that index_entries reads: a patch naming none of them leaves every index entry.
INDEX_FIELDS = frozenset(("id", "project_id", "created_at", "updated_at", "vm_state", "deleted",
                          "tags", "name"))


class Pending:
    """A server written in a coalescing batch, not yet rendered: what the store held before the
    batch (``old``, and ``written`` when the cache knew it) and the server's state now."""

    __slots__ = ("old", "written", "rec", "changed")

    def __init__(self, old: dict | None, written: Written | None, rec: dict, changed):
        self.old = old
        self.written = written
        self.rec = rec
        self.changed = changed      # the fields changed since ``old``; None: any of them


class Batch:
    """Operations inside one write transaction.  Each returns whether it changed the store."""

    def __init__(self, txn, dbs, cache: RenderCache | None = None, coalesce: bool = False):
        self.txn = txn
        self.dbs = dbs
        self.cache = cache
        self._records = dbs[L.DB_RECORDS]
        self._deltas: dict[bytes, int] = {}
        self._pending: dict[bytes, Pending] | None = {} if coalesce else None
        self._seq: int | None = None        # the sequence counter as _next_seq last set it
        # {db name: [(key, value)]}: puts held back while flush_pending writes (None: put at once)
        self._puts: dict[bytes, list] | None = None

    # -- reads within the transaction --------------------------------------------------------

    def get_record(self, uuid: str) -> dict | None:
        key = uuid.encode()
        if self._pending and key in self._pending:
            return dict(self._pending[key].rec)
        raw = self.txn.get(key, db=self._records)
        return orjson.loads(raw) if raw is not None else None

    def _written(self, key: bytes) -> tuple[dict | None, Written | None]:
        """The stored record of ``key`` and, when the cache still matches it, what made it.
        A server pending in this batch gives its current state (and no Written)."""
        if self._pending:
            found = self._pending.get(key)
            if found is not None:
                return found.rec, None
        raw = self.txn.get(key, db=self._records)
        if raw is None:
            return None, None
        if self.cache is not None:
            found = self.cache.get(key, raw)
            if found is not None:
                return found.rec, found
        return orjson.loads(raw), None

    def get_meta(self, key: bytes) -> bytes | None:
        return self.txn.get(key, db=self.dbs[L.DB_META])

    def set_meta(self, key: bytes, value: bytes):
        if key == L.META_SEQ:
            self._seq = None
        self.txn.put(key, value, db=self.dbs[L.DB_META])

    # -- servers -------------------------------------------------------------------------------

    def upsert_server(self, rec: dict, normalized: bool = False) -> bool:
        """Store a full record if it is newer than what the store holds (or new).
        ``normalized``: the caller vouches that ``rec`` is normalize()'s output (the feed's
        contract normalizes every upsert it validates), so it is not normalized twice."""
        rec = dict(rec) if normalized else normalize(rec)
        key = rec["id"].encode()
        old, written = self._written(key)
        if old is not None and rec["version"] <= old.get("version", 0):
            return False
        if not rec["seq"]:
            rec["seq"] = old["seq"] if old and old.get("seq") else self._next_seq()
        if self._pending is not None:
            self._defer(key, old, written, rec, None)
        else:
            self._store(key, old, written, rec, render_parts(rec), INDEX_FIELDS)
        return True

    def patch_server(self, uuid: str, version: int, changes: dict) -> bool:
        """Merge top-level fields into a live record, if ``version`` is newer.

        Only the view parts and index entries that read a changed field are made again (when
        the cache knows the record); the bytes are those of a full render all the same."""
        key = uuid.encode()
        old, written = self._written(key)
        if old is None or old.get("deleted") or version <= old.get("version", 0):
            return False
        new, changed = merge(old, changes, version)
        if self._pending is not None:
            self._defer(key, old, written, new, changed)
            return True
        if written is not None:
            parts = rerender_parts(written.parts, new, changed)
        else:
            parts = render_parts(new)
        self._store(key, old, written, new, parts, changed)
        return True

    def delete_server(self, uuid: str, version: int, deleted_at: str | None = None) -> bool:
        """Leave a versioned tombstone: the record stays (for changes-since), out of the lists."""
        key = uuid.encode()
        old, written = self._written(key)
        if old is not None and version <= old.get("version", 0):
            return False
        if old is None or "project_id" not in old:
            # Unknown server: remember the version only, so a late create cannot resurrect it.
            stub = {"id": uuid, "version": version, "deleted": True}
            self.txn.put(key, orjson.dumps(stub), db=self._records)
            return True
        new = dict(old)
        when = deleted_at or old.get("updated_at") or old["created_at"]
        new.update(version=version, deleted=True, vm_state="deleted", task_state=None,
                   deleted_at=when, terminated_at=old.get("terminated_at") or when,
                   updated_at=when)
        new = normalize(new)
        if self._pending is not None:
            self._defer(key, old, written, new, None)
        else:
            self._store(key, old, written, new, render_parts(new), INDEX_FIELDS)
        return True

    # -- coalescing ----------------------------------------------------------------------------

    def _defer(self, key: bytes, old: dict | None, written: Written | None, new: dict, changed):
        """Note a server's new state; it is rendered and put by flush_pending.  Only the first
        write of a server in the batch records ``old``/``written``: the store's state before."""
        found = self._pending.get(key)
        if found is None:
            self._pending[key] = Pending(old, written, new, changed)
            return
        found.rec = new
        if found.changed is not None:
            found.changed = None if changed is None else found.changed | changed

    def flush_pending(self):
        """Render, index and put every server pending in this batch, once each, as the last
        of its writes would have: every view part, query row field and index entry is a pure
        function of the record, so what the earlier writes would have put is either rewritten
        by the last one or equal to it (tests/unit/test_writer_coalesce.py compares the bytes)."""
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        self._puts = {name: [] for name in L.ALL_DBS}
        # In key order, so that the puts of the records, rows and blobs are held sorted already
        # (_put_held's sort then only checks them): one sort instead of three.
        for key in sorted(pending):
            p = pending[key]
            new, written, changed = p.rec, p.written, p.changed
            if changed is None:
                self._store(key, p.old, written, new, render_parts(new), INDEX_FIELDS)
            elif written is not None:
                self._store(key, p.old, written, new,
                            rerender_parts(written.parts, new, changed), changed)
            else:
                self._store(key, p.old, None, new, render_parts(new), changed)
        self._put_held()

    def _put_held(self):
        """Put what flush_pending held back, in key order, one cursor per database: LMDB then
        finds most keys on the leaf page its cursor is on instead of searching from the root
        (a server's records, row, blob and index entries land on random pages; sorted, a put
        cost ~30% less in a scratch test of 16,000 puts into 40,000 keys).  Index entries only
        deleted are deleted at once (their count depends on it); no key is both put and
        deleted in one flush, as every key of a server holds its uuid."""
        puts, self._puts = self._puts, None
        for name, items in puts.items():
            if items:
                items.sort(key=_first)          # stable: a key put twice keeps its last value
                self.txn.cursor(db=self.dbs[name]).putmulti(items)

    def _put(self, name: bytes, key: bytes, value: bytes):
        if self._puts is not None:
            self._puts[name].append((key, value))
        else:
            self.txn.put(key, value, db=self.dbs[name])

    def _store(self, key: bytes, old: dict | None, written: Written | None, new: dict,
               parts: tuple, changed):
        """Write a server's record, query row, view blob and index entries."""
        # orjson's result keeps its whole output buffer (16 KB for a 1 KB record, measured
        # with tracemalloc): what is kept (the cache, a held put) is a copy of the exact size.
        raw = bytes(memoryview(orjson.dumps(new)))
        row = qrow.update(written.row, new, changed) if written is not None else qrow.build(new)
        blob = pack_parts(new["project_id"], parts, bool(new["deleted"]))
        held = self._puts
        if held is not None:
            held[L.DB_RECORDS].append((key, raw))
            held[L.DB_QROWS].append((key, qrow.dumps(row)))
            held[L.DB_SERVERS].append((key, blob))
        else:
            txn = self.txn
            txn.put(key, raw, db=self._records)
            txn.put(key, qrow.dumps(row), db=self.dbs[L.DB_QROWS])
            txn.put(key, blob, db=self.dbs[L.DB_SERVERS])
        index = written.index if written is not None else None
        if old is None or "project_id" not in old:
            index = index_entries(new)
            self._index(index)
        elif not INDEX_FIELDS.isdisjoint(changed):
            before = index if index is not None else index_entries(old)
            index = index_entries(new)
            self._reindex(before, index)
        if self.cache is not None:
            self.cache.put(key, Written(raw, new, row, parts, index))

    def _reindex(self, before: dict, after: dict):
        """Move a record's index entries from its old version to its new one, touching only the
        entries that differ: a feed patch (task_state, updated_at, …) keeps most keys, and the
        delete-all-then-put-all it replaces was a third of the cost of an update (profiled)."""
        txn, dbs, put = self.txn, self.dbs, self._put
        for entry, (value, count_key) in after.items():
            had = before.get(entry)
            if had is None:
                put(entry[0], entry[1], value)
                if count_key is not None:
                    self._count(count_key, 1)
            elif had[0] != value:
                put(entry[0], entry[1], value)
        for entry, (_value, count_key) in before.items():
            if entry not in after and txn.delete(entry[1], db=dbs[entry[0]]) \
                    and count_key is not None:
                self._count(count_key, -1)

    def _index(self, entries: dict):
        held, txn, dbs, deltas = self._puts, self.txn, self.dbs, self._deltas
        for (db, key), (value, count_key) in entries.items():
            if held is not None:
                held[db].append((key, value))
            else:
                txn.put(key, value, db=dbs[db])
            if count_key is not None:
                deltas[count_key] = deltas.get(count_key, 0) + 1

    def _count(self, key: bytes, delta: int):
        self._deltas[key] = self._deltas.get(key, 0) + delta

    def flush_counts(self):
        """Apply the part counts changed in this transaction (once per batch, not per server)."""
        db = self.dbs[L.DB_COUNTS]
        for key, delta in self._deltas.items():
            if not delta:
                continue
            raw = self.txn.get(key, db=db)
            value = (int.from_bytes(raw, "big") if raw else 0) + delta
            if value > 0:
                self.txn.put(key, value.to_bytes(8, "big"), db=db)
            elif raw is not None:
                self.txn.delete(key, db=db)
        self._deltas.clear()

    def _next_seq(self) -> int:
        if self._seq is None:
            raw = self.get_meta(L.META_SEQ)
            self._seq = int(raw) if raw else 0
        self._seq += 1
        self.txn.put(L.META_SEQ, b"%d" % self._seq, db=self.dbs[L.DB_META])
        return self._seq

    # -- flavors -------------------------------------------------------------------------------

    def put_flavor(self, frec: dict):
        key = flavor_sort_key(frec)       # key order is nova's default flavor order
        self.txn.put(key, orjson.dumps(frec), db=self.dbs[L.DB_FLAVOR_RECS])
        self.txn.put(key, L.pack_blob("", render_flavor(frec)), db=self.dbs[L.DB_FLAVORS])

    def delete_flavor(self, flavorid: str) -> bool:
        key = flavor_sort_key({"id": flavorid})
        self.txn.delete(key, db=self.dbs[L.DB_FLAVORS])
        return self.txn.delete(key, db=self.dbs[L.DB_FLAVOR_RECS])


# Every index entry of a record, computed from the record alone (its INDEX_FIELDS), so that
# unindexing the old version removes exactly what indexing it added (same transaction, no stale
# entries).

def index_entries_pure(rec: dict) -> dict:
    """{(db name, key): (value, count key or None)} of every index entry of a record; twin of
    fastnova/_ext/_rows.pyx ``index_entries``."""
    uuid = rec["id"].encode()
    created = L.micros_bytes(qrow.micros(rec["created_at"]))
    updated = L.micros_bytes(qrow.micros(rec.get("updated_at") or rec["created_at"]))
    vm_state = (rec.get("vm_state") or "").encode()
    deleted = bool(rec.get("deleted"))
    if deleted:
        parts = [L.PART_DELETED]
    else:
        parts = [L.PART_LIVE, L.PART_STATE + vm_state]
        tags = {t.lower().encode() for t in rec.get("tags") or ()}
        parts.extend(L.PART_TAG + t for t in sorted(tags))
    # ix values carry updated_at, so changes-since is checked during a walk; by_changed
    # values carry created_at, so a set of recent changes sorts without reading rows.
    state = (b"d" if deleted else b"l") + created + vm_state
    name = None if deleted else L.name_bytes(rec.get("name"))
    out = {}
    for scope in L.scopes(rec["project_id"]):
        for part in parts:
            out[(L.DB_INDEX, L.ix_key(scope, part, created, uuid))] = \
                (updated, L.part_prefix(scope, part))
        out[(L.DB_BY_CHANGED, L.changed_key(scope, updated, uuid))] = (state, None)
        if name is not None:
            out[(L.DB_BY_NAME, L.name_key(scope, name, uuid))] = (vm_state, None)
    return out


# The compiled twin unless the pure one is chosen (fastnova._ext.compiled decides).
index_entries = compiled("_rows", "index_entries") or index_entries_pure
