"""GET /servers, /servers/detail and /servers/{id}: store lookup and page assembly.

A list request is parsed into a Spec with nova's per-microversion, per-role semantics
(fastnova.query.params), answered by an index walk (fastnova.query.plan), then assembled.

Each document is already rendered in the store; a read selects the pieces for this
(microversion, role, view), fills in the request's link prefixes and joins.
"""
from __future__ import annotations

import orjson

from fastnova import _ext
from fastnova.api import errors
from fastnova.api.query import Query, next_link
from fastnova.query import params, plan
from fastnova.store import layout as L


def role_bit(ctx) -> int:
    return L.ROLE_ADMIN if ctx.admin_view else L.ROLE_MEMBER


def show(app, req, ctx, minor, route, links) -> bytes:
    uuid = route.arg
    with app.reader.begin() as txn:
        blob = app.reader.server_blob(txn, uuid.encode())
        owner = None if ctx.is_admin else ctx.project_id.encode()
        doc = None if blob is None else _ext.show_doc(
            blob, minor, role_bit(ctx) | L.VIEW_SHOW, owner, links.root, links.vroot)
    if doc is None:
        raise errors.server_not_found(uuid)
    return b'{"server":' + doc + b"}"


def listing(app, req, ctx, minor, route, links, detail: bool) -> list[bytes]:
    q = Query(req.query)
    reader = app.reader
    view = L.VIEW_DETAIL if detail else L.VIEW_INDEX
    with reader.begin() as txn:
        spec = params.parse(q, minor, ctx, detail, flavour=reader.db_flavour,
                            flavor_exists=lambda fid: reader.flavor_exists(txn, fid),
                            max_limit=app.max_limit)
        uuids = plan.page(reader, txn, spec)
        blobs = reader.server_blobs(txn, uuids)
        body = _ext.page_docs(blobs, minor, role_bit(ctx) | view, links.root, links.vroot)
    out = [b'{"servers":[', body, b"]"]
    # nova's _get_collection_links: a next link when the page is full.
    if spec.limit and len(uuids) == spec.limit:
        href = next_link(q, links.vroot_str, "servers/detail" if detail else "servers",
                         uuids[-1].decode(), keep=spec.kept)
        out.append(b',"servers_links":' + orjson.dumps([{"href": href, "rel": "next"}]))
    out.append(b"}")
    return out          # parts: response.frame joins them with the head, one copy of the page
