"""The LMDB store's layout: named databases, key encodings and the view blob format.

One environment (``<data-dir>/store``), memory-mapped by every process on the host.  Readers
(fastnova.store.reader) and the one writer module (fastnova.store.writer) agree on what is here;
nothing else touches LMDB.

Named databases
---------------
servers      uuid -> view blob (pre-rendered JSON pieces, below)          [live and deleted]
records      uuid -> orjson canonical record (fastnova.record)            [live and deleted]
qrows        uuid -> orjson query row: the fields filters and sorts read  [live and deleted]
             (fastnova.query.row; ~300 bytes, so a post-filter costs one small parse)
ix           scope NUL part NUL micros(created_at) uuid -> micros(updated_at) [see parts]
ix_counts    scope NUL part -> u64 number of entries (the planner picks the smallest stream)
by_changed   scope NUL micros(updated_at) uuid -> state byte (l|d) + micros(created_at)
             + vm_state                                                   [live and deleted]
by_name      scope NUL collate(name)[:200] NUL uuid -> vm_state           [live only]
flavors      flavorid -> view blob   (key order is nova's default flavor order: flavorid asc)
flavor_recs  flavorid -> orjson flavor record
meta         bookkeeping: schema version, sequence counter, feed position, ...
outbox       u64 big-endian sequence -> orjson cast to a cell (fastnova.outbound.outbox)

Every index is written twice, once under the server's project id as ``scope`` and once under
``*`` (all tenants), so a member's query and an admin's all_tenants query both walk only the
entries they can return.  ``part`` of ``ix`` is one of

    c            every live server
    d            every deleted server (tombstone)
    s<vm_state>  live servers in that vm_state          (status=, vm_state=)
    t<tag>       live servers carrying the tag (lowercased, as MySQL's collation compares)

and keys inside a part sort by created_at then uuid, so walking a part backwards is nova's
default order (created_at desc) with ties on created_at regrouped by uuid by the reader.  All
of them are maintained by fastnova.store.writer in the same write transaction as the record.

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
DB_QROWS = b"qrows"
DB_INDEX = b"ix"
DB_COUNTS = b"ix_counts"
DB_BY_CHANGED = b"by_changed"
DB_BY_NAME = b"by_name"
DB_FLAVORS = b"flavors"
DB_FLAVOR_RECS = b"flavor_recs"
DB_META = b"meta"
DB_OUTBOX = b"outbox"      # casts to the cells awaiting the forwarder (fastnova.outbound.outbox)

ALL_DBS = (DB_SERVERS, DB_RECORDS, DB_QROWS, DB_INDEX, DB_COUNTS, DB_BY_CHANGED, DB_BY_NAME,
           DB_FLAVORS, DB_FLAVOR_RECS, DB_META, DB_OUTBOX)

# 2: query indexes (ix, ix_counts, by_changed with scopes, by_name, qrows) replace by_created
#    and by_project.
SCHEMA_VERSION = 2
META_SCHEMA = b"schema_version"
META_SEQ = b"seq"
# Set in a store an import swapped out (fastnova.importer.swap): its writers must reopen.
META_SUPERSEDED = b"superseded_by"


class StoreSuperseded(RuntimeError):
    """The store was swapped out by an import; reopen the writer on the same data dir."""

BLOB_FORMAT = 1
FLAG_DELETED = 0x01

# Mask bits of a piece.
ROLE_ADMIN = 0x01
ROLE_MEMBER = 0x02
VIEW_SHOW = 0x04
VIEW_DETAIL = 0x08
VIEW_INDEX = 0x10

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


ALL_SCOPE = b"*"
PART_LIVE = b"c"
PART_DELETED = b"d"
PART_STATE = b"s"
PART_TAG = b"t"
UUID_LEN = 36
MICROS_LEN = 8
NAME_KEY_MAX = 200


def micros_bytes(micros: int) -> bytes:
    return micros.to_bytes(MICROS_LEN, "big")


def scopes(project_id: str) -> tuple[bytes, bytes]:
    return ALL_SCOPE, project_id.encode()


def part_prefix(scope: bytes, part: bytes) -> bytes:
    """Prefix of one ordered part of ``ix``; also the key of its count in ``ix_counts``."""
    return scope + b"\x00" + part + b"\x00"


def ix_key(scope: bytes, part: bytes, created: bytes, uuid: bytes) -> bytes:
    """An ``ix`` key; ``created`` is micros_bytes(created_at)."""
    return part_prefix(scope, part) + created + uuid


def changed_prefix(scope: bytes) -> bytes:
    return scope + b"\x00"


def changed_key(scope: bytes, updated: bytes, uuid: bytes) -> bytes:
    """A ``by_changed`` key; ``updated`` is micros_bytes(updated_at)."""
    return changed_prefix(scope) + updated + uuid


def name_collate(name: str | None) -> str:
    """MySQL's default (utf8 *_ci, PAD SPACE) string order, approximated: case and trailing
    spaces do not count."""
    return (name or "").lower().rstrip(" ")


def name_bytes(name: str | None) -> bytes:
    """What a ``by_name`` key holds of a name: its collation key, cut to NAME_KEY_MAX bytes."""
    return name_collate(name).encode()[:NAME_KEY_MAX]


def name_key(scope: bytes, name: bytes, uuid: bytes) -> bytes:
    """A ``by_name`` key; ``name`` is name_bytes(name)."""
    return scope + b"\x00" + name + b"\x00" + uuid


def key_uuid(key: bytes) -> bytes:
    return key[-UUID_LEN:]


def key_micros(key: bytes) -> int:
    """micros of an ``ix`` or ``by_changed`` key (the 8 bytes before the uuid)."""
    return int.from_bytes(key[-UUID_LEN - MICROS_LEN:-UUID_LEN], "big")
