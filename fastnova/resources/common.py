"""What the resource handlers share: nova's policy faults, query checks, and the meta keys.

Everything here lives in the store's ``meta`` database under a prefix per resource, with keys
built so that LMDB's byte order is the order nova lists them in: a page is a cursor walk of at
most ``limit`` entries from the marker (O(limit)), never a scan of the collection.
"""
from __future__ import annotations

import orjson

from fastnova.api import errors
from fastnova.api.query import Query
from fastnova.store import layout as L

SEP = b"\x00"
MAX_KEY = 511         # LMDB's largest key (fastnova.store.reader.MAX_KEY)


def fit(key: bytes) -> bytes:
    """A key LMDB accepts: nova's columns allow a 255-character user id and a 255-character
    key pair name (or project id), together past LMDB's 511 bytes; such a key keeps its first
    bytes (so prefix walks and order hold) and ends in a digest of the whole."""
    if len(key) <= MAX_KEY:
        return key
    import hashlib
    return key[:MAX_KEY - 21] + b"\x01" + hashlib.sha1(key).digest()


def forbidden(rule: str) -> errors.ApiError:
    """nova's policy refusal (oslo.policy PolicyNotAuthorized as the API shows it)."""
    return errors.fault(403, "Policy doesn't allow %s to be performed." % rule)


def require_admin(ctx, rule: str):
    if not ctx.is_admin:
        raise forbidden(rule)


def query(req) -> Query:
    return Query(req.query)


def reject_unknown(q: Query, allowed, minor: int, since: int = 75):
    """nova's query schemas with additionalProperties False (from ``since``): a 400 naming the
    unexpected keys."""
    if minor < since:
        return
    keys = list(dict.fromkeys(k for k, _v in q.pairs))
    extra = [k for k in keys if k not in allowed]
    if extra:
        verb = "was" if len(extra) == 1 else "were"
        raise errors.bad_request("Additional properties are not allowed (%s %s unexpected)"
                                 % (", ".join(repr(k) for k in extra), verb))


def meta_db(rt):
    return rt.reader.dbs[L.DB_META]


def get_json(rt, txn, key: bytes):
    raw = txn.get(key, db=meta_db(rt))
    return orjson.loads(raw) if raw is not None else None


def walk(rt, txn, prefix: bytes, after: bytes | None = None, limit: int | None = None,
         reverse: bool = False):
    """(key, value) of the entries under ``prefix`` in key order (or reversed), starting after
    key ``after``; at most ``limit``."""
    out = []
    if len(prefix) > MAX_KEY or after is not None and len(after) >= MAX_KEY:
        return out                       # no stored key is that long (fit)
    with txn.cursor(db=meta_db(rt)) as cur:
        if reverse:
            found = _last_before(cur, prefix, after)
        else:
            start = after + b"\x00" if after is not None else prefix
            found = cur.set_range(start)
        while found:
            key = cur.key()
            if not key.startswith(prefix) or limit is not None and len(out) >= limit:
                break
            out.append((key, cur.value()))
            found = cur.prev() if reverse else cur.next()
    return out


def _last_before(cur, prefix: bytes, before: bytes | None) -> bool:
    bound = before if before is not None else prefix + b"\xff" * 8
    if cur.set_range(bound):
        return cur.prev()
    return cur.last()


def count(rt, txn, prefix: bytes) -> int:
    return count_in(txn, meta_db(rt), prefix)


def count_in(txn, db, prefix: bytes) -> int:
    n = 0
    if len(prefix) > MAX_KEY:
        return n
    with txn.cursor(db=db) as cur:
        if cur.set_range(prefix):
            for key in cur.iternext(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                n += 1
    return n


def put_json(b, key: bytes, value):
    b.set_meta(key, orjson.dumps(value))


def delete(b, key: bytes) -> bool:
    return b.txn.delete(key, db=b.dbs[L.DB_META])


def next_id(b, name: bytes) -> int:
    """A per-resource integer id (nova's autoincrement ids: key pairs, groups, actions)."""
    key = b"seq:" + name
    raw = b.get_meta(key)
    value = int(raw) + 1 if raw else 1
    b.set_meta(key, b"%d" % value)
    return value


def links_next(q: Query, links, collection: str, marker: str, limit_given: bool,
               limit: int, count_: int, keep=None):
    """nova's _get_collection_links: a next link when the page is full."""
    from fastnova.api.query import next_link
    if not limit or count_ != limit:
        return None
    return [{"href": next_link(q, links.vroot_str, collection, marker, keep), "rel": "next"}]
