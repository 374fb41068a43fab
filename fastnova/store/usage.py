"""Quota usage kept as counts: instances, cores and RAM per project and per (project, user).

nova counts usage with one aggregate query (objects/instance.py _get_counts_in_db): the
instances of the project that are not deleted and not soft-deleted, their vcpus and memory_mb.
Counting here by walking a project's records cost O(servers in the project) per ``/limits`` and
per create (761 ms at 100,000 servers).  Instead every change of a server moves the counts in the
same write transaction (StoreWriter's Batch calls ``Deltas.move`` from ``_store``), so a lookup
is one LMDB get, whatever the size of the project.

Keys of the ``usage`` database::

    b"p" NUL project_id             -> counts of the project
    b"u" NUL project_id NUL user_id -> counts of one user in it

value: three signed 64-bit big-endian integers (instances, cores, ram).  A key whose counts are
all zero is deleted.  Stores written before the counts existed (schema 2) are recounted once
when a writer opens them (``recount``, fastnova.store.writer).
"""
from __future__ import annotations

import struct

import orjson

_VALUE = struct.Struct(">qqq")
FIELDS = ("instances", "cores", "ram")
SOFT_DELETED = "soft-delete"
ZERO = (0, 0, 0)


def project_key(project_id: str) -> bytes:
    return b"p\x00" + project_id.encode()


def user_key(project_id: str, user_id: str) -> bytes:
    return b"u\x00" + project_id.encode() + b"\x00" + user_id.encode()


def share(rec: dict | None):
    """(project, user, (1, vcpus, ram)) a record counts for, or None when it counts for nothing
    (absent, a tombstone stub, deleted, or soft-deleted: nova's filter)."""
    if rec is None or "project_id" not in rec or rec.get("deleted") \
            or rec.get("vm_state") == SOFT_DELETED:
        return None
    flavor = rec.get("flavor") or {}
    return (rec["project_id"], rec.get("user_id") or "",
            (1, int(flavor.get("vcpus") or 0), int(flavor.get("ram") or 0)))


class Deltas:
    """The count changes of one write transaction, applied once at its end."""

    __slots__ = ("_map",)

    def __init__(self):
        self._map: dict[bytes, list[int]] = {}

    def move(self, old: dict | None, new: dict | None):
        """A server went from ``old`` to ``new`` (either may be None)."""
        before, after = share(old), share(new)
        if before == after:
            return
        if before is not None:
            self._add(before, -1)
        if after is not None:
            self._add(after, 1)

    def _add(self, share_, sign: int):
        project, user, values = share_
        for key in (project_key(project), user_key(project, user)):
            acc = self._map.get(key)
            if acc is None:
                acc = self._map[key] = [0, 0, 0]
            for i in range(3):
                acc[i] += sign * values[i]

    def flush(self, txn, db):
        for key, delta in self._map.items():
            if delta == [0, 0, 0] or len(key) > 511:
                continue            # (an id LMDB cannot key is never a real project's)
            raw = txn.get(key, None, db)
            value = [a + b for a, b in zip(_VALUE.unpack(raw) if raw else ZERO, delta)]
            if any(value):
                txn.put(key, _VALUE.pack(*value), db=db)
            elif raw is not None:
                txn.delete(key, db=db)
        self._map.clear()


def read(txn, db, project_id: str, user_id: str | None = None) -> dict:
    """{instances, cores, ram} of a project (or of one user in it)."""
    key = project_key(project_id) if user_id is None else user_key(project_id, user_id)
    raw = txn.get(key, None, db) if 0 < len(key) <= 511 else None
    return dict(zip(FIELDS, _VALUE.unpack(raw) if raw else ZERO))


def recount(txn, records_db, usage_db) -> int:
    """Make the counts again from every record (schema 2 -> 3, or a repair); returns the
    number of records read."""
    txn.drop(usage_db, delete=False)
    deltas = Deltas()
    seen = 0
    with txn.cursor(db=records_db) as cur:
        for _key, raw in cur:
            deltas.move(None, orjson.loads(raw))
            seen += 1
    deltas.flush(txn, usage_db)
    return seen


def full_count(txn, records_db) -> dict[bytes, tuple]:
    """Every key's counts computed from the records alone (tests compare it with the kept
    ones)."""
    deltas = Deltas()
    with txn.cursor(db=records_db) as cur:
        for _key, raw in cur:
            deltas.move(None, orjson.loads(raw))
    return {k: tuple(v) for k, v in deltas._map.items() if any(v)}


def kept(txn, usage_db) -> dict[bytes, tuple]:
    with txn.cursor(db=usage_db) as cur:
        return {k: _VALUE.unpack(v) for k, v in cur}
