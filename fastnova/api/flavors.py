"""GET /flavors, /flavors/detail and /flavors/{id}.

nova's default policy lets every user list public, enabled flavors; admins see every flavor
(is_public filter semantics are issue 3's query surface).  Order: flavorid ascending.
"""
from __future__ import annotations

import orjson

from fastnova import _ext
from fastnova.api import errors
from fastnova.api.query import Query, limit_and_marker, next_link
from fastnova.api.servers import role_bit
from fastnova.store import layout as L


def _visible(frec, ctx) -> bool:
    if ctx.is_admin:
        return True
    return frec.get("is_public", True) and not frec.get("disabled", False)


def show(app, req, ctx, minor, route, links) -> bytes:
    fid = route.arg
    with app.reader.begin() as txn:
        blob = app.reader.flavor_blob(txn, fid.encode())
        doc = None if blob is None else _ext.show_doc(
            blob, minor, role_bit(ctx) | L.VIEW_SHOW, None, links.root, links.vroot)
    if doc is None:
        raise errors.flavor_not_found(fid)
    return b'{"flavor":' + doc + b"}"


def listing(app, req, ctx, minor, route, links, detail: bool) -> bytes:
    q = Query(req.query)
    limit, marker = limit_and_marker(q)
    view = L.VIEW_DETAIL if detail else L.VIEW_INDEX
    with app.reader.begin() as txn:
        ids = app.reader.flavor_ids(txn)
        if marker is not None:
            if marker.encode() not in ids:
                raise errors.bad_request("marker [%s] not found" % marker)
            ids = ids[ids.index(marker.encode()) + 1:]
        picked = []
        for fid in ids:
            if len(picked) >= limit:
                break
            if _visible(app.reader.flavor_record(txn, fid), ctx):
                picked.append(fid)
        blobs = [app.reader.flavor_blob(txn, fid) for fid in picked]
        body = _ext.page_docs(blobs, minor, role_bit(ctx) | view, links.root, links.vroot)
    out = [b'{"flavors":[', body, b"]"]
    if limit and len(picked) == limit:
        href = next_link(q, links.vroot_str, "flavors/detail" if detail else "flavors",
                         picked[-1].decode())
        out.append(b',"flavors_links":' + orjson.dumps([{"href": href, "rel": "next"}]))
    out.append(b"}")
    return b"".join(out)
