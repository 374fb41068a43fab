"""Recovery of commands cut between the database commit and the store write (kill -9, power).

A command commits its row (with the cast it is about to queue, ``pending_cast``) to PostgreSQL,
then writes its record and cast to the store in one LMDB transaction.  If the process dies in
between, the row is newer than the store's record and the cast is nowhere.  This pass (run by the
forwarder, or by the worker driving the embedded cell, at start and every 30 s) finds this host's
rows changed since its last checkpoint, older than ``SETTLE`` seconds (so a command still in
flight is left alone), whose version is above the store's, and writes record + cast to the store
in one transaction: the command completes as if it had not been interrupted.  A cast queued
twice (the pass raced a slow command) is harmless: cells ignore a version they have seen.

A command whose store recheck refused it after its row committed (409: the server moved on)
leaves a row this pass must not carry out: the refusing transaction raises the store's record to
the row's version (fastnova.commands.common.outrank), so the version test below skips it.

The other direction (a command whose store write is durable but whose row is not: it overlapped
the two and its worker died first) is the forwarder's (fastnova.outbound.forwarder.DbGate): it writes
the row from the outbox entry before the cast goes.
"""
from __future__ import annotations

import orjson

from fastnova.outbound import outbox
from fastnova.db.connect import connect

META_CHECKPOINT = b"db_recover_checkpoint"
SETTLE = 5.0          # seconds a command may take between its commit and its store write
MARGIN = 60.0         # re-scan this much before the checkpoint (clock skew, long commits)


def recover(dsn: str, writer, api_host: str | None, schema: str | None = None,
            settle: float = SETTLE) -> int:
    """One pass; returns the number of commands completed."""
    with writer.env.begin() as txn:
        raw = txn.get(META_CHECKPOINT, db=writer.dbs[b"meta"])
    since = float(raw) if raw else 0.0
    conn = connect(dsn, schema)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT uuid, version, record, pending_cast,"
                        " extract(epoch from changed_at), extract(epoch from clock_timestamp())"
                        " FROM servers WHERE api_host = %s"
                        " AND changed_at > to_timestamp(%s)"
                        " AND changed_at < clock_timestamp() - make_interval(secs => %s)",
                        (api_host, max(0.0, since - MARGIN), settle))
            rows = cur.fetchall()
            cur.execute("SELECT extract(epoch from clock_timestamp())")
            now = float(cur.fetchone()[0])
    finally:
        conn.close()
    fixed = 0
    with writer.batch() as b:
        for uuid, version, record, cast, _changed, _now in rows:
            held = b.get_record(uuid)
            if held is not None and held.get("version", 0) >= version:
                continue
            rec = record if isinstance(record, dict) else orjson.loads(record)
            if rec.get("deleted"):
                b.delete_server(uuid, version, rec.get("deleted_at"))
            else:
                b.upsert_server(rec)
            if cast:
                cast = cast if isinstance(cast, dict) else orjson.loads(cast)
                cast.setdefault("instance", rec)    # rows keep the cast without it
                outbox.append(b, cast)
            fixed += 1
        b.set_meta(META_CHECKPOINT, b"%.3f" % (now - settle))
    return fixed
