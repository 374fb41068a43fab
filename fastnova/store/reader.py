"""The one door for reading the LMDB store (opened read-only in each worker, after fork).

A read is one short read transaction: it never spans an ``await``, so a slow client cannot pin an
old snapshot and make the file grow.  (The show fast path keeps one snapshot between requests
while the store has not changed, and lets go of it at the first read or worker tick after a
commit: fastnova/_ext/_mapped.pyx.)  Pages walk an index in the requested order (fastnova.query.plan
decides which) and stop after ``limit`` matches: for the default order and the indexed filters the
cost of a page is O(limit), not O(servers).
"""
from __future__ import annotations

import os

import orjson

from fastnova.query.regex import FLAVOURS, MYSQL
from fastnova.query.row import loads as qrow_loads
from fastnova.store import layout as L
from fastnova.store.env import DEFAULT_MAP_SIZE, open_env

# LMDB refuses an empty key or one longer than its page allows (511 bytes by default) with
# BadValsizeError.  Keys built from a request (an id in the path, a marker, a tenant_id) can be
# either; no stored key is, so such a lookup finds nothing, as nova's query would.
MAX_KEY = 511


def storable(key: bytes) -> bool:
    return 0 < len(key) <= MAX_KEY


def get(txn, key: bytes, db):
    """txn.get for a key that may come from a request: None when LMDB could not hold it."""
    return txn.get(key, None, db) if 0 < len(key) <= MAX_KEY else None


class StoreReader:
    def __init__(self, env, db_flavour: str = MYSQL):
        """``env``: the store's environment (fastnova.store.env), read-only or the writable one
        a worker shares with its commands (or use ``StoreReader.open``)."""
        if isinstance(env, (str, os.PathLike)):
            raise TypeError("StoreReader is handed an environment: StoreReader.open(data_dir)")
        if db_flavour not in FLAVOURS:
            raise ValueError("db_flavour must be one of %s" % (FLAVOURS,))
        self.env = env
        # Named databases opened outside any transaction: py-lmdb then keeps the handles valid
        # for every later transaction of this environment.  (In a writable environment it opens
        # them in a short write transaction, so a worker's boot waits for a feed batch in
        # progress, once; a read transaction would not keep them.)
        self.dbs = {name: env.open_db(name, create=False) for name in L.ALL_DBS}
        self.servers = self.dbs[L.DB_SERVERS]
        self.records = self.dbs[L.DB_RECORDS]
        self.flavors = self.dbs[L.DB_FLAVORS]
        self.qrows = self.dbs[L.DB_QROWS]
        self.index = self.dbs[L.DB_INDEX]
        self.counts = self.dbs[L.DB_COUNTS]
        self.by_changed = self.dbs[L.DB_BY_CHANGED]
        self.by_name = self.dbs[L.DB_BY_NAME]
        # How name=/node=/... regular expressions and string sorts behave: "mysql" (nova on
        # MySQL: case-insensitive) or "postgresql" (case-sensitive).  See fastnova.query.regex.
        self.db_flavour = db_flavour

    @classmethod
    def open(cls, data_dir: str, map_size: int = DEFAULT_MAP_SIZE,
             db_flavour: str = MYSQL) -> "StoreReader":
        """A reader on its own read-only environment of ``data_dir``'s store."""
        return cls(open_env(data_dir, map_size=map_size, readonly=True), db_flavour=db_flavour)

    def begin(self):
        return self.env.begin(buffers=False)

    def close(self):
        self.env.close()

    # -- single documents ----------------------------------------------------------------------

    def server_blob(self, txn, uuid: bytes) -> bytes | None:
        return get(txn, uuid, self.servers)

    def server_blobs(self, txn, uuids: list[bytes]) -> list:
        """The blobs of a page's uuids, in order (None for a uuid without one)."""
        get = txn.get
        db = self.servers
        return [get(u, None, db) for u in uuids]

    def record(self, txn, uuid: bytes) -> dict | None:
        raw = get(txn, uuid, self.records)
        return orjson.loads(raw) if raw is not None else None

    def flavor_blob(self, txn, flavorid: bytes) -> bytes | None:
        return get(txn, flavorid, self.flavors)

    def flavor_record(self, txn, flavorid: bytes) -> dict | None:
        raw = get(txn, flavorid, self.dbs[L.DB_FLAVOR_RECS])
        return orjson.loads(raw) if raw is not None else None

    def flavor_ids(self, txn):
        """Every flavor id in nova's default order (flavorid ascending)."""
        with txn.cursor(db=self.flavors) as cur:
            return [key for key in cur.iternext(keys=True, values=False)]

    # -- query indexes (fastnova.query.plan drives these) --------------------------------------

    def qrow(self, txn, uuid: bytes) -> dict | None:
        raw = get(txn, uuid, self.qrows)
        return qrow_loads(raw) if raw is not None else None

    def part_count(self, txn, scope: bytes, part: bytes) -> int:
        raw = get(txn, L.part_prefix(scope, part), self.counts)
        return int.from_bytes(raw, "big") if raw else 0

    def flavor_exists(self, txn, flavorid: str) -> bool:
        return get(txn, flavorid.encode(), self.dbs[L.DB_FLAVOR_RECS]) is not None

    def walk_part(self, txn, scope: bytes, part: bytes, desc: bool, start: bytes | None = None):
        """(suffix, value) of one ``ix`` part in order: suffix = micros(created_at) + uuid,
        value = micros(updated_at).  ``start`` (8 bytes of micros) makes the walk begin with
        that created_at, inclusive."""
        prefix = L.part_prefix(scope, part)
        cut = len(prefix)
        for key, value in self.walk(txn, self.index, prefix, desc, start):
            yield key[cut:], value

    def walk(self, txn, db, prefix: bytes, desc: bool, start: bytes | None = None):
        """(key, value) of the keys under ``prefix``, ascending or descending.

        ``start`` (inclusive, compared with the key after the prefix): ascending begins at the
        first key >= prefix+start; descending at the last key whose part after the prefix starts
        with something <= start (every key of the group ``start`` included).
        """
        with txn.cursor(db=db) as cur:
            entries = self.position(cur, prefix, desc, start, values=True)
            if entries is None:
                return
            for key, value in entries:
                if not key.startswith(prefix):
                    return
                yield key, value

    @staticmethod
    def position(cur, prefix: bytes, desc: bool, start: bytes | None = None,
                 values: bool = True):
        """Put ``cur`` where ``walk`` begins and return py-lmdb's own iterator from there (keys,
        or (key, value) pairs), which runs past ``prefix``: the caller stops at the first key
        without it.  None when there is nothing to walk."""
        if len(prefix) + len(start or b"") > MAX_KEY:
            return None         # no stored key is that long (see MAX_KEY)
        if not desc:
            if not cur.set_range(prefix + (start or b"")):
                return None
            return cur.iternext(keys=True, values=values)
        bound = _after(prefix + start) if start is not None else _after(prefix)
        if bound is not None and cur.set_range(bound):
            if not cur.prev():
                return None
        elif not cur.last():
            return None
        return cur.iterprev(keys=True, values=values)


def _after(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))
