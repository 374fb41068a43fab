"""The one door for reading the LMDB store (opened read-only in each worker, after fork).

A read is one short read transaction: it never spans an ``await``, so a slow client cannot pin an
old snapshot and make the file grow.  Pages walk an index backwards (nova's order is created_at
desc, id desc) and stop after ``limit`` entries: the cost of a page is O(limit), not O(servers).
"""
from __future__ import annotations

import orjson

from fastnova.store import layout as L
from fastnova.store.writer import DEFAULT_MAP_SIZE, open_env
from fastnova.record import time_micros

UUID_LEN = 36


class StoreReader:
    def __init__(self, data_dir: str, map_size: int = DEFAULT_MAP_SIZE):
        self.env = open_env(data_dir, map_size=map_size, readonly=True)
        # Named databases opened outside any transaction: py-lmdb then keeps the handles valid
        # for every later transaction of this environment.
        self.dbs = {name: self.env.open_db(name, create=False) for name in L.ALL_DBS}
        self.servers = self.dbs[L.DB_SERVERS]
        self.records = self.dbs[L.DB_RECORDS]
        self.flavors = self.dbs[L.DB_FLAVORS]

    def begin(self):
        return self.env.begin(buffers=False)

    def close(self):
        self.env.close()

    # -- single documents ----------------------------------------------------------------------

    def server_blob(self, txn, uuid: bytes) -> bytes | None:
        return txn.get(uuid, db=self.servers)

    def record(self, txn, uuid: bytes) -> dict | None:
        raw = txn.get(uuid, db=self.records)
        return orjson.loads(raw) if raw is not None else None

    def flavor_blob(self, txn, flavorid: bytes) -> bytes | None:
        return txn.get(flavorid, db=self.flavors)

    def flavor_record(self, txn, flavorid: bytes) -> dict | None:
        raw = txn.get(flavorid, db=self.dbs[L.DB_FLAVOR_RECS])
        return orjson.loads(raw) if raw is not None else None

    def flavor_ids(self, txn):
        """Every flavor id in nova's default order (flavorid ascending)."""
        with txn.cursor(db=self.flavors) as cur:
            return [key for key in cur.iternext(keys=True, values=False)]

    # -- server pages --------------------------------------------------------------------------

    def marker_key(self, txn, marker: str) -> bytes | None:
        """The default-order index key of a marker server (live or deleted), None if unknown.

        nova looks the marker up elevated and with deleted rows, then pages from its sort values,
        so a marker from another project or a deleted server still positions the page.
        """
        rec = self.record(txn, marker.encode())
        if rec is None or "created_at" not in rec:
            return None
        return L.created_key(time_micros(rec["created_at"]), rec.get("seq", 0)) + marker.encode()

    def page_uuids(self, txn, project_id: str | None, limit: int,
                   before: bytes | None = None) -> list[bytes]:
        """Up to ``limit`` server uuids in nova's default order, after ``before`` (a marker key).

        ``project_id`` None walks every project (admin with all_tenants).
        """
        if limit <= 0:
            return []
        if project_id is None:
            prefix, db = b"", self.dbs[L.DB_BY_CREATED]
        else:
            prefix, db = L.project_prefix(project_id), self.dbs[L.DB_BY_PROJECT]
        out = []
        with txn.cursor(db=db) as cur:
            if not self._position(cur, prefix, before):
                return out
            for key in cur.iterprev(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                out.append(key[-UUID_LEN:])
                if len(out) >= limit:
                    break
        return out

    @staticmethod
    def _position(cur, prefix: bytes, before: bytes | None) -> bool:
        """Put the cursor on the last key of the range that sorts before ``before``."""
        if before is not None:
            target = prefix + before
        elif prefix:
            target = prefix[:-1] + b"\x01"       # just past every key of this project
        else:
            return cur.last()
        if cur.set_range(target):
            return cur.prev()
        return cur.last()
