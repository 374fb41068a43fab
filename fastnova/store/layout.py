"""The LMDB store's layout: named databases, key encodings and the view blob format.

One environment (``<data-dir>/store``), memory-mapped by every process on the host.  Readers
(fastnova.store.reader) and the one writer module (fastnova.store.writer) agree on what is here;
nothing else touches LMDB.

Named databases
---------------
servers      uuid -> view blob (pre-rendered JSON pieces, below)          [live and deleted]
records      uuid -> orjson canonical record (fastnova.record)            [live and deleted]
by_created   created_key + uuid -> project_id                             [live only]
by_project   project_id NUL created_key + uuid -> b""                     [live only]
by_changed   micros(updated_at) + uuid -> project_id                      [live and deleted]
flavors      flavorid -> view blob   (key order is nova's default flavor order: flavorid asc)
flavor_recs  flavorid -> orjson flavor record
meta         bookkeeping: schema version, sequence counter, feed position, …

``created_key`` is 8 bytes big-endian micros(created_at) then 8 bytes big-endian seq, so that a
forward cursor is nova's order reversed: nova lists by created_at desc, id desc, and a reader walks
these indexes backwards.  Deleted servers leave the list indexes but keep their record and blob
(flagged deleted) as a versioned tombstone: a late update cannot resurrect them and changes-since
can still report them.

View blob
---------
A server's documents for every microversion, role and view are assembled from *pieces*: each piece
is one pre-rendered ``"key":value`` JSON member with a gate.  Rendering every variant whole would
cost ~15 microversion buckets x 2 roles x 2 views = 60 documents (~90 KB) per server; the gated
pieces are one copy (~2-3 KB) and a read still only selects and joins bytes.

    u8  format (BLOB_FORMAT)
    u8  flags (FLAG_DELETED)
    u16 length of project_id, then project_id (utf-8)
    u16 number of pieces
    then per piece: u8 min_minor, u8 max_minor, u8 mask, u32 length, bytes   (little endian)

A piece is shown when ``min_minor <= minor <= max_minor`` and its mask has both the requester's
role bit and the view's bit.  Pieces hold two one-byte link markers, filled in per request so that
links carry the scheme, host and port the client used (JSON text never holds raw control bytes, so
the markers cannot collide with data):

    MARK_ROOT (0x01)    "{scheme}://{host}" + "/{project_id}" when the request path had one
                        -> bookmark links:  MARK_ROOT + "/servers/<id>"
    MARK_VERSION (0x02) "{scheme}://{host}/v2.1" (or /v2) + "/{project_id}" likewise
                        -> self links:      MARK_VERSION + "/servers/<id>"
"""
from __future__ import annotations

import struct

DB_SERVERS = b"servers"
DB_RECORDS = b"records"
DB_BY_CREATED = b"by_created"
DB_BY_PROJECT = b"by_project"
DB_BY_CHANGED = b"by_changed"
DB_FLAVORS = b"flavors"
DB_FLAVOR_RECS = b"flavor_recs"
DB_META = b"meta"

ALL_DBS = (DB_SERVERS, DB_RECORDS, DB_BY_CREATED, DB_BY_PROJECT, DB_BY_CHANGED,
           DB_FLAVORS, DB_FLAVOR_RECS, DB_META)

SCHEMA_VERSION = 1
META_SCHEMA = b"schema_version"
META_SEQ = b"seq"

BLOB_FORMAT = 1
FLAG_DELETED = 0x01

# Mask bits of a piece.
ROLE_ADMIN = 0x01
ROLE_MEMBER = 0x02
VIEW_SHOW = 0x04
VIEW_DETAIL = 0x08
VIEW_INDEX = 0x10
ROLES = ROLE_ADMIN | ROLE_MEMBER

MARK_ROOT = b"\x01"
MARK_VERSION = b"\x02"

MAX_MINOR = 255

_HEAD = struct.Struct("<BBH")
_COUNT = struct.Struct("<H")
_PIECE = struct.Struct("<BBBI")


def pack_blob(project_id: str, pieces, deleted: bool = False) -> bytes:
    """Encode pieces [(min_minor, max_minor, mask, bytes), ...] as a view blob."""
    pid = project_id.encode()
    out = [_HEAD.pack(BLOB_FORMAT, FLAG_DELETED if deleted else 0, len(pid)), pid,
           _COUNT.pack(len(pieces))]
    for lo, hi, mask, data in pieces:
        out.append(_PIECE.pack(lo, hi, mask, len(data)))
        out.append(data)
    return b"".join(out)


def unpack_blob(blob: bytes):
    """Decode a view blob: (project_id, deleted, [(min, max, mask, bytes), ...])."""
    fmt, flags, plen = _HEAD.unpack_from(blob, 0)
    if fmt != BLOB_FORMAT:
        raise ValueError("unknown view blob format %d" % fmt)
    pos = _HEAD.size
    project_id = bytes(blob[pos:pos + plen]).decode()
    pos += plen
    (count,) = _COUNT.unpack_from(blob, pos)
    pos += _COUNT.size
    pieces = []
    for _ in range(count):
        lo, hi, mask, size = _PIECE.unpack_from(blob, pos)
        pos += _PIECE.size
        pieces.append((lo, hi, mask, bytes(blob[pos:pos + size])))
        pos += size
    return project_id, bool(flags & FLAG_DELETED), pieces


def created_key(created_micros: int, seq: int) -> bytes:
    return created_micros.to_bytes(8, "big") + seq.to_bytes(8, "big")


def project_prefix(project_id: str) -> bytes:
    return project_id.encode() + b"\x00"


def changed_key(updated_micros: int, uuid: str) -> bytes:
    return updated_micros.to_bytes(8, "big") + uuid.encode()
