"""The one door for writing the LMDB store.

Every writer (the cell feed, commands, the nova importer, the demo generator) goes through
``StoreWriter.batch()``: one LMDB write transaction in which records are version-checked,
rendered into view blobs (fastnova.views) and indexed.  LMDB serializes writers; readers never
wait for them.  Open a StoreWriter in the process that uses it, after fork.
"""
from __future__ import annotations

import contextlib
import os

import lmdb
import orjson

from fastnova.query import row as qrow
from fastnova.record import normalize
from fastnova.store import layout as L
from fastnova.views.flavors import flavor_sort_key, render_flavor
from fastnova.views.servers import render_server

# A sparse mapping: the file grows only with the data.  1,000,000 servers take about 5 GB.
DEFAULT_MAP_SIZE = 64 << 30
MAX_READERS = 1024


def store_path(data_dir: str) -> str:
    return os.path.join(data_dir, "store")


def open_env(data_dir: str, map_size: int = DEFAULT_MAP_SIZE, readonly: bool = False,
             sync: bool = True) -> lmdb.Environment:
    """Open the store's environment (creating it for a writer).  The only lmdb.open call."""
    path = store_path(data_dir)
    if not readonly:
        os.makedirs(path, exist_ok=True)
    return lmdb.open(path, map_size=map_size, max_dbs=len(L.ALL_DBS) + 2, readonly=readonly,
                     max_readers=MAX_READERS, sync=sync, metasync=sync, readahead=False,
                     create=not readonly, subdir=True)


class StoreWriter:
    def __init__(self, data_dir: str, map_size: int = DEFAULT_MAP_SIZE, sync: bool = True):
        self.env = open_env(data_dir, map_size=map_size, sync=sync)
        self.dbs = {name: self.env.open_db(name, create=True) for name in L.ALL_DBS}
        with self.env.begin(write=True) as txn:
            found = txn.get(L.META_SCHEMA, db=self.dbs[L.DB_META])
            if found is None:
                txn.put(L.META_SCHEMA, b"%d" % L.SCHEMA_VERSION, db=self.dbs[L.DB_META])
            elif int(found) != L.SCHEMA_VERSION:
                raise RuntimeError("store schema %s, this fastnova writes %d: rebuild the store"
                                   % (found.decode(), L.SCHEMA_VERSION))

    @contextlib.contextmanager
    def batch(self):
        """One write transaction: commits (durably, unless opened with sync=False) on exit."""
        with self.env.begin(write=True) as txn:
            batch = Batch(txn, self.dbs)
            yield batch
            batch.flush_counts()

    def reader_check(self) -> int:
        """Reclaim reader slots of dead processes (the master calls this after reaping)."""
        return self.env.reader_check()

    def close(self):
        self.env.close()


class Batch:
    """Operations inside one write transaction.  Each returns whether it changed the store."""

    def __init__(self, txn, dbs):
        self.txn = txn
        self.dbs = dbs
        self._deltas: dict[bytes, int] = {}

    # -- reads within the transaction --------------------------------------------------------

    def get_record(self, uuid: str) -> dict | None:
        raw = self.txn.get(uuid.encode(), db=self.dbs[L.DB_RECORDS])
        return orjson.loads(raw) if raw is not None else None

    def get_meta(self, key: bytes) -> bytes | None:
        return self.txn.get(key, db=self.dbs[L.DB_META])

    def set_meta(self, key: bytes, value: bytes):
        self.txn.put(key, value, db=self.dbs[L.DB_META])

    # -- servers -------------------------------------------------------------------------------

    def upsert_server(self, rec: dict) -> bool:
        """Store a full record if it is newer than what the store holds (or new)."""
        rec = normalize(rec)
        old = self.get_record(rec["id"])
        if old is not None and rec["version"] <= old.get("version", 0):
            return False
        if not rec["seq"]:
            rec["seq"] = old["seq"] if old and old.get("seq") else self._next_seq()
        self._replace(old, rec)
        return True

    def patch_server(self, uuid: str, version: int, changes: dict) -> bool:
        """Merge top-level fields into a live record, if ``version`` is newer."""
        old = self.get_record(uuid)
        if old is None or old.get("deleted") or version <= old.get("version", 0):
            return False
        new = dict(old)
        new.update(changes)
        new["id"], new["version"], new["seq"] = uuid, version, old["seq"]
        self._replace(old, normalize(new))
        return True

    def delete_server(self, uuid: str, version: int, deleted_at: str | None = None) -> bool:
        """Leave a versioned tombstone: the record stays (for changes-since), out of the lists."""
        old = self.get_record(uuid)
        if old is not None and version <= old.get("version", 0):
            return False
        if old is None or "project_id" not in old:
            # Unknown server: remember the version only, so a late create cannot resurrect it.
            stub = {"id": uuid, "version": version, "deleted": True}
            self.txn.put(uuid.encode(), orjson.dumps(stub), db=self.dbs[L.DB_RECORDS])
            return True
        new = dict(old)
        when = deleted_at or old.get("updated_at") or old["created_at"]
        new.update(version=version, deleted=True, vm_state="deleted", task_state=None,
                   deleted_at=when, terminated_at=old.get("terminated_at") or when,
                   updated_at=when)
        self._replace(old, normalize(new))
        return True

    def _replace(self, old: dict | None, new: dict):
        key = new["id"].encode()
        self.txn.put(key, orjson.dumps(new), db=self.dbs[L.DB_RECORDS])
        self.txn.put(key, qrow.dumps(qrow.build(new)), db=self.dbs[L.DB_QROWS])
        blob = L.pack_blob(new["project_id"], render_server(new), deleted=new["deleted"])
        self.txn.put(key, blob, db=self.dbs[L.DB_SERVERS])
        if old is not None and "project_id" in old:
            self._reindex(old, new)
        else:
            self._index(new)

    def _reindex(self, old: dict, new: dict):
        """Move a record's index entries from its old version to its new one, touching only the
        entries that differ: a feed patch (task_state, updated_at, …) keeps most keys, and the
        delete-all-then-put-all it replaces was a third of the cost of an update (profiled)."""
        before = {(db, key): (value, count) for db, key, value, count in self._entries(old)}
        for db, key, value, count_key in self._entries(new):
            had = before.pop((db, key), None)
            if had is None:
                self.txn.put(key, value, db=self.dbs[db])
                if count_key is not None:
                    self._count(count_key, 1)
            elif had[0] != value:
                self.txn.put(key, value, db=self.dbs[db])
        for (db, key), (_value, count_key) in before.items():
            if self.txn.delete(key, db=self.dbs[db]) and count_key is not None:
                self._count(count_key, -1)

    # Every index entry of a record, computed from the record alone, so that unindexing the old
    # version removes exactly what indexing it added (same transaction, no stale entries).

    @staticmethod
    def _entries(rec: dict):
        """(db name, key, value, count key or None) of every index entry of a record."""
        uuid = rec["id"].encode()
        created = qrow.micros(rec["created_at"])
        updated = qrow.micros(rec.get("updated_at") or rec["created_at"])
        vm_state = (rec.get("vm_state") or "").encode()
        deleted = bool(rec.get("deleted"))
        parts = [L.PART_DELETED] if deleted else [L.PART_LIVE, L.PART_STATE + vm_state]
        if not deleted:
            tags = {t.lower().encode() for t in rec.get("tags") or ()}
            parts.extend(L.PART_TAG + t for t in sorted(tags))
        # ix values carry updated_at, so changes-since is checked during a walk; by_changed
        # values carry created_at, so a set of recent changes sorts without reading rows.
        ix_value = L.micros_bytes(updated)
        state = (b"d" if deleted else b"l") + L.micros_bytes(created) + vm_state
        for scope in L.scopes(rec["project_id"]):
            for part in parts:
                yield (L.DB_INDEX, L.ix_key(scope, part, created, uuid), ix_value,
                       L.part_prefix(scope, part))
            yield L.DB_BY_CHANGED, L.changed_key(scope, updated, uuid), state, None
            if not deleted:
                yield L.DB_BY_NAME, L.name_key(scope, rec.get("name"), uuid), vm_state, None

    def _index(self, rec: dict):
        for db, key, value, count_key in self._entries(rec):
            self.txn.put(key, value, db=self.dbs[db])
            if count_key is not None:
                self._count(count_key, 1)

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
        raw = self.get_meta(L.META_SEQ)
        seq = int(raw) + 1 if raw else 1
        self.set_meta(L.META_SEQ, b"%d" % seq)
        return seq

    # -- flavors -------------------------------------------------------------------------------

    def put_flavor(self, frec: dict):
        key = flavor_sort_key(frec)       # key order is nova's default flavor order
        self.txn.put(key, orjson.dumps(frec), db=self.dbs[L.DB_FLAVOR_RECS])
        self.txn.put(key, L.pack_blob("", render_flavor(frec)), db=self.dbs[L.DB_FLAVORS])

    def delete_flavor(self, flavorid: str) -> bool:
        key = flavor_sort_key({"id": flavorid})
        self.txn.delete(key, db=self.dbs[L.DB_FLAVORS])
        return self.txn.delete(key, db=self.dbs[L.DB_FLAVOR_RECS])
