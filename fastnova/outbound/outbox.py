"""The durable outbox: casts to the cells, written in the command's own LMDB write transaction.

A command's read-your-writes record and its cast share one write transaction, so one fsync makes
both durable before the answer is sent.  The forwarder (fastnova.outbound.forwarder) reads entries in key
order, hands them to RabbitMQ with publisher confirms (or, embedded, to the simulated cell) and
deletes them only after that, in one write transaction per batch.  Delivery is at least once:
a cast carries the server's ``version``, and a cell ignores one it has already seen.

Entry: key = u64 big-endian sequence (meta ``outbox_seq``), value = orjson of

    {"cast": nova's RPC method name, "id": server uuid, "version": int, "args": {...},
     "instance": the record as the command left it, "api_host": str, "at": unix seconds}

A command that overlaps its database commit with the store's (fastnova.commands.runtime) adds
``"db_version": int``: the entry may go to the cells only once the server's row has that version
(the forwarder checks).  If the row never comes, the command either withdraws its entries
(``withdraw``: its statement failed) or, once they are old, the forwarder claims them (``claim``:
``"claimed": true``) and writes the row from the entry itself; a claimed entry is never withdrawn.
LMDB serializes the two writes, so exactly one of them wins.

Bound: when ``DEFAULT_BOUND`` entries wait (the broker has been away a while), commands that would
add one answer nova's 503 until the forwarder drains it; reads and casts already queued are not
affected.  100,000 entries of ~2.5 KB are ~250 MB of the store's map.
"""
from __future__ import annotations

import time

import orjson

from fastnova.store import layout as L

DEFAULT_BOUND = 100_000
META_OUTBOX_SEQ = b"outbox_seq"
DB = getattr(L, "DB_OUTBOX", b"outbox")


def ensure(writer):
    """Open the outbox database in a writer's environment (the layout lists it in ALL_DBS;
    this keeps a store written by an older layout working, using a spare named-db slot)."""
    if DB not in writer.dbs:
        writer.dbs[DB] = writer.env.open_db(DB, create=True)


def key(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def make_cast(method: str, record: dict, args: dict | None = None, api_host: str = "") -> dict:
    return {"cast": method, "id": record["id"], "version": record["version"],
            "args": args or {}, "instance": record, "api_host": api_host, "at": time.time()}


def append(batch, cast: dict) -> int:
    """Add a cast inside a store write transaction (fastnova.store.writer.Batch)."""
    raw = batch.get_meta(META_OUTBOX_SEQ)
    seq = int(raw) + 1 if raw else 1
    batch.set_meta(META_OUTBOX_SEQ, b"%d" % seq)
    batch.txn.put(key(seq), orjson.dumps(cast), db=batch.dbs[DB])
    return seq


def depth(txn, dbs) -> int:
    """Entries waiting; O(1) (LMDB keeps the count in the database's header)."""
    return txn.stat(dbs[DB])["entries"]


def read(txn, dbs, limit: int, after: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """Up to ``limit`` (key, raw cast) pairs in order, starting after ``after``."""
    out = []
    with txn.cursor(db=dbs[DB]) as cur:
        found = cur.set_range(after + b"\x00") if after else cur.first()
        while found and len(out) < limit:
            out.append((bytes(cur.key()), bytes(cur.value())))
            found = cur.next()
    return out


def remove(batch, keys) -> int:
    db = batch.dbs[DB]
    return sum(1 for k in keys if batch.txn.delete(k, db=db))


def withdraw(batch, keys) -> bool:
    """Remove a command's own entries, unless any is gone or claimed (then leave them all)."""
    db = batch.dbs[DB]
    for k in keys:
        raw = batch.txn.get(k, db=db)
        if raw is None or orjson.loads(raw).get("claimed"):
            return False
    for k in keys:
        batch.txn.delete(k, db=db)
    return True


def claim(batch, keys) -> list[tuple[bytes, dict]]:
    """Mark entries as taken over by the forwarder; those still there, with their casts."""
    db = batch.dbs[DB]
    out = []
    for k in keys:
        raw = batch.txn.get(k, db=db)
        if raw is None:
            continue
        cast = orjson.loads(raw)
        if not cast.get("claimed"):
            cast["claimed"] = True
            batch.txn.put(k, orjson.dumps(cast), db=db)
        out.append((k, cast))
    return out
