"""GET /flavors, /flavors/detail and /flavors/{id}.

Visibility is nova's (objects/flavor.py _flavor_get_query_from_db and _flavor_get_all_from_db,
compute/flavors.py _get_flavors and _parse_is_public):
- show and the marker lookup: a member finds public flavors and those its project has access to;
  an admin finds every flavor, disabled or not;
- list: a member gets those, minus disabled ones; an admin gets public flavors (plus those its
  project has access to), disabled included, unless ``is_public`` says otherwise ("none": all,
  a strict boolean: that visibility, anything else: 400).
Order: flavorid ascending.
"""
from __future__ import annotations

import orjson

from fastnova import _ext
from fastnova.api import errors
from fastnova.api.query import Query, limit_and_marker, next_link
from fastnova.api.servers import role_bit
from fastnova.store import layout as L


def _findable(frec, ctx) -> bool:
    """Whether the flavor query (show, marker) finds it for this caller."""
    return ctx.is_admin or _public_or_shared(frec, ctx)


def _public_or_shared(frec, ctx) -> bool:
    return bool(frec.get("is_public", True)) or ctx.project_id in (frec.get("projects") or ())


def _list_filter(q, ctx):
    """The list's visibility test for this caller and query."""
    if not ctx.is_admin:
        return lambda f: _public_or_shared(f, ctx) and not f.get("disabled", False)
    value = q.last.get("is_public")
    if value is None:
        return lambda f: _public_or_shared(f, ctx)
    if value.lower() == "none":
        return lambda f: True
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "on", "y", "yes"):
        return lambda f: _public_or_shared(f, ctx)
    if lowered in ("0", "f", "false", "off", "n", "no"):
        return lambda f: not f.get("is_public", True)
    raise errors.bad_request("Invalid is_public filter [%s]" % value)


def show(app, req, ctx, minor, route, links) -> bytes:
    fid = route.arg
    with app.reader.begin() as txn:
        blob = app.reader.flavor_blob(txn, fid.encode())
        if blob is not None and not _findable(app.reader.flavor_record(txn, fid.encode()), ctx):
            blob = None
        doc = None if blob is None else _ext.show_doc(
            blob, minor, role_bit(ctx) | L.VIEW_SHOW, None, links.root, links.vroot)
    if doc is None:
        raise errors.flavor_not_found(fid)
    return b'{"flavor":' + doc + b"}"


def listing(app, req, ctx, minor, route, links, detail: bool) -> bytes:
    q = Query(req.query)
    limit, marker = limit_and_marker(q, app.max_limit)
    view = L.VIEW_DETAIL if detail else L.VIEW_INDEX
    visible = _list_filter(q, ctx)
    with app.reader.begin() as txn:
        ids = app.reader.flavor_ids(txn)
        if marker is not None:
            key = marker.encode()
            if key not in ids or not _findable(app.reader.flavor_record(txn, key), ctx):
                raise errors.bad_request("marker [%s] not found" % marker)
            ids = ids[ids.index(key) + 1:]
        picked = []
        for fid in ids:
            if len(picked) >= limit:
                break
            if visible(app.reader.flavor_record(txn, fid)):
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
