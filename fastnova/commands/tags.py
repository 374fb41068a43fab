"""Server tags (2.26+): /servers/{id}/tags[/{tag}].  API-only changes in nova: no cast."""
from __future__ import annotations

import jsonschema
import orjson

from fastnova.api import errors
from fastnova.commands import common, runtime, schemas
from fastnova.commands.common import METADATA_STATES

MAX_TAGS = schemas.MAX_TAGS


def _since_226(minor):
    if minor < 26:
        raise errors.not_found("The resource could not be found.")


def _server(rt, ctx, uuid):
    with rt.begin() as txn:
        return common.load(rt, txn, ctx, uuid)


def _state(rec, action):
    if rec["vm_state"] not in METADATA_STATES:
        common.conflict(action, rec["id"], "vm_state", rec["vm_state"])


async def index(app, req, ctx, minor, route, links):
    _since_226(minor)
    rec = _server(runtime.get(app), ctx, route.arg[0])
    return 200, orjson.dumps({"tags": rec["tags"]})


async def check(app, req, ctx, minor, route, links):
    _since_226(minor)
    uuid, tag = route.arg
    rec = _server(runtime.get(app), ctx, uuid)
    if tag not in rec["tags"]:
        raise errors.not_found("Server %s has no tag '%s'" % (uuid, tag))
    return 204, b""


async def add(app, req, ctx, minor, route, links):
    _since_226(minor)
    uuid, tag = route.arg
    rt = runtime.get(app)
    schemas.TAG_ADD[minor].check(common.parse_body(req))
    rec = _server(rt, ctx, uuid)
    _state(rec, "update tag")
    try:
        jsonschema.validate(tag, schemas.TAG_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise errors.bad_request(
            "Tag '%s' is invalid. It must be a non empty string without characters '/' and "
            "','. Validation error message: %s" % (tag, exc.message)) from None
    if len(rec["tags"]) >= MAX_TAGS:
        raise errors.bad_request("The number of tags exceeded the per-server limit %d"
                                 % MAX_TAGS)
    if tag in rec["tags"]:
        return 204, b""
    await common.change(rt, rec, {"tags": rec["tags"] + [tag]})
    href = "%s/servers/%s/tags/%s" % (links.vroot.decode(), uuid, tag)
    return 201, b"", b"Location: " + href.encode() + b"\r\n"


async def update_all(app, req, ctx, minor, route, links):
    _since_226(minor)
    rt = runtime.get(app)
    body = common.parse_body(req)
    schemas.TAGS_SET[minor].check(body)
    rec = _server(rt, ctx, route.arg[0])
    _state(rec, "update tags")
    tags = list(dict.fromkeys(body["tags"]))
    await common.change(rt, rec, {"tags": tags})
    return 200, orjson.dumps({"tags": tags})


async def delete(app, req, ctx, minor, route, links):
    _since_226(minor)
    uuid, tag = route.arg
    rt = runtime.get(app)
    rec = _server(rt, ctx, uuid)
    _state(rec, "delete tag")
    if tag not in rec["tags"]:
        raise errors.not_found("Instance %s has no tag '%s'" % (uuid, tag))
    await common.change(rt, rec, {"tags": [t for t in rec["tags"] if t != tag]})
    return 204, b""


async def delete_all(app, req, ctx, minor, route, links):
    _since_226(minor)
    rt = runtime.get(app)
    rec = _server(rt, ctx, route.arg[0])
    _state(rec, "delete tags")
    await common.change(rt, rec, {"tags": []})
    return 204, b""
