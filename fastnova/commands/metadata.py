"""Server metadata: /servers/{id}/metadata[/{key}] (reads from the store; writes are API-only
changes in nova since the compute's metadata RPC went away, so no cast)."""
from __future__ import annotations

import orjson

from fastnova.api import errors
from fastnova.commands import common, quota, runtime, schemas
from fastnova.commands.common import METADATA_STATES


def _server(rt, ctx, uuid):
    with rt.begin() as txn:
        return common.load(rt, txn, ctx, uuid)


async def index(app, req, ctx, minor, route, links):
    rec = _server(runtime.get(app), ctx, route.arg[0])
    return 200, orjson.dumps({"metadata": rec["metadata"]})


async def show(app, req, ctx, minor, route, links):
    uuid, key = route.arg
    rec = _server(runtime.get(app), ctx, uuid)
    if key not in rec["metadata"]:
        raise errors.not_found("Metadata item was not found")
    return 200, orjson.dumps({"meta": {key: rec["metadata"][key]}})


async def create(app, req, ctx, minor, route, links):
    body = _body(req, schemas.METADATA_SET, minor)
    new = await _update(app, ctx, route.arg[0], body["metadata"], replace=False)
    return 200, orjson.dumps({"metadata": new})


async def update_all(app, req, ctx, minor, route, links):
    body = _body(req, schemas.METADATA_SET, minor)
    new = await _update(app, ctx, route.arg[0], body["metadata"], replace=True)
    return 200, orjson.dumps({"metadata": new})


async def update(app, req, ctx, minor, route, links):
    uuid, key = route.arg
    body = _body(req, schemas.METADATA_ITEM, minor)
    if key not in body["meta"]:
        raise errors.bad_request("Request body and URI mismatch")
    await _update(app, ctx, uuid, body["meta"], replace=False)
    return 200, orjson.dumps({"meta": body["meta"]})


async def delete(app, req, ctx, minor, route, links):
    uuid, key = route.arg
    rt = runtime.get(app)
    rec = _server(rt, ctx, uuid)
    if key not in rec["metadata"]:
        raise errors.not_found("Metadata item was not found")
    _check(ctx, rec, "delete metadata")
    meta = dict(rec["metadata"])
    del meta[key]
    await common.change(rt, rec, {"metadata": meta},
                        expected={"task_state": None, "vm_state": rec["vm_state"]})
    return 204, b""


def _body(req, table, minor):
    body = common.parse_body(req)
    table[minor].check(body)
    return body


def _check(ctx, rec, action):
    common.check_lock(ctx, rec)
    common.check_state(rec, action, METADATA_STATES, (None,), must_have_launched=True)


async def _update(app, ctx, uuid, items: dict, replace: bool) -> dict:
    rt = runtime.get(app)
    with rt.begin() as txn:
        rec = common.load(rt, txn, ctx, uuid)
        meta = dict(items) if replace else dict(rec["metadata"], **items)
        quota.check_metadata(rt, txn, rec["project_id"], meta)
    _check(ctx, rec, "update metadata")
    await common.change(rt, rec, {"metadata": meta},
                        expected={"task_state": None, "vm_state": rec["vm_state"]})
    return meta
