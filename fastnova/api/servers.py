"""GET /servers, /servers/detail and /servers/{id}: store lookup and page assembly.

Each document is already rendered in the store; a read selects the pieces for this
(microversion, role, view), fills in the request's link prefixes and joins.
"""
from __future__ import annotations

import orjson

from fastnova import _ext
from fastnova.api import errors
from fastnova.api.query import Query, is_all_tenants, limit_and_marker, next_link
from fastnova.store import layout as L


def role_bit(ctx) -> int:
    return L.ROLE_ADMIN if ctx.is_admin else L.ROLE_MEMBER


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


def listing(app, req, ctx, minor, route, links, detail: bool) -> bytes:
    q = Query(req.query)
    limit, marker = limit_and_marker(q)
    project = ctx.project_id
    if is_all_tenants(q):
        if not ctx.is_admin:
            raise errors.fault(403, "Policy doesn't allow os_compute_api:servers:%s:"
                                    "get_all_tenants to be performed."
                               % ("detail" if detail else "index"))
        project = None
    view = L.VIEW_DETAIL if detail else L.VIEW_INDEX
    with app.reader.begin() as txn:
        before = None
        if marker is not None:
            before = app.reader.marker_key(txn, marker)
            if before is None:
                raise errors.bad_request("marker [%s] not found" % marker)
        uuids = app.reader.page_uuids(txn, project, limit, before)
        blobs = [app.reader.server_blob(txn, u) for u in uuids]
        body = _ext.page_docs(blobs, minor, role_bit(ctx) | view, links.root, links.vroot)
    out = [b'{"servers":[', body, b"]"]
    if limit and len(uuids) == limit:
        href = next_link(q, links.vroot_str, "servers/detail" if detail else "servers",
                         uuids[-1].decode())
        out.append(b',"servers_links":' + orjson.dumps([{"href": href, "rel": "next"}]))
    out.append(b"}")
    return b"".join(out)
