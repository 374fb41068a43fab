"""Flavor management for admins: create, update (2.55 description), delete, and access to
private flavors (os-flavor-access, addTenantAccess/removeTenantAccess).

A flavor is one record in the store (``flavor_recs``) rendered at write time into its gated view
blob (``flavors``), as the reads expect; every change here rewrites both in one transaction.
The servers keep the copy of the flavor they were built with, as nova's instances do.
"""
from __future__ import annotations

import uuid as uuidlib

import orjson

from fastnova import _ext
from fastnova.api import errors
from fastnova.api.flavors import _findable
from fastnova.api.servers import role_bit
from fastnova.commands import common as cmd, runtime
from fastnova.commands.schemas import BOOLEAN, NAME, NAME_WS, _obj, _wrap
from fastnova.commands.validation import by_minor
from fastnova.resources import common as C
from fastnova.store import layout as L
from fastnova.views.flavors import render_flavor

RULE = "os_compute_api:os-flavor-manage:%s"
ACCESS_RULE = "os_compute_api:os-flavor-access"
_MAX_INT = 2147483647
_SIZE = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1,
         "maximum": _MAX_INT}
_SIZE0 = dict(_SIZE, minimum=0)
_ID = {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
       "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"}
_RXTX = {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
         "exclusiveMinimum": 0, "maximum": 3.40282e+38}
_DESCRIPTION = {"type": ["string", "null"], "minLength": 0, "maxLength": 65535,
                "format": "description"}


def _create_schema(minor: int) -> dict:
    props = {"name": NAME_WS if minor == 0 else NAME, "id": _ID, "ram": _SIZE, "vcpus": _SIZE,
             "disk": _SIZE0, "OS-FLV-EXT-DATA:ephemeral": _SIZE0, "swap": _SIZE0,
             "rxtx_factor": _RXTX, "os-flavor-access:is_public": BOOLEAN}
    if minor >= 55:
        props["description"] = _DESCRIPTION
    if minor >= 102:
        del props["rxtx_factor"]
    return _wrap("flavor", _obj(props, required=["name", "ram", "vcpus", "disk"]))


CREATE = by_minor([(lo, hi, _create_schema(lo)) for lo, hi in
                   ((0, 0), (1, 54), (55, 101), (102, 255))])
UPDATE = by_minor([(55, 255, _wrap("flavor", _obj({"description": _DESCRIPTION},
                                                  required=["description"])))])
_ACCESS = {"type": "string", "minLength": 1, "maxLength": 255}
ADD_ACCESS = by_minor([(0, 255, _wrap("addTenantAccess", _obj({"tenant": _ACCESS},
                                                              required=["tenant"])))])
REMOVE_ACCESS = by_minor([(0, 255, _wrap("removeTenantAccess", _obj({"tenant": _ACCESS},
                                                                    required=["tenant"])))])
_TRUE = {True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes"}


def visible_flavor(app, ctx, fid: str) -> dict:
    """The flavor as nova's get_flavor finds it for this caller, or its 404."""
    with app.reader.begin() as txn:
        frec = app.reader.flavor_record(txn, fid.encode())
    if frec is None or not _findable(frec, ctx):
        raise errors.flavor_not_found(fid)
    return frec


async def change_flavor(app, ctx, fid: str, mutate) -> dict:
    """Read-modify-write one flavor in a store write; ``mutate(frec)`` may raise ApiError."""
    rt = runtime.get(app)

    def change(b):
        raw = b.txn.get(fid.encode(), db=b.dbs[L.DB_FLAVOR_RECS])
        if raw is None:
            raise errors.flavor_not_found(fid)
        frec = orjson.loads(raw)
        mutate(frec)
        frec["updated_at"] = cmd.now()
        b.put_flavor(frec)
        return frec
    return await rt.write(change)


def _doc(app, ctx, minor, links, frec) -> bytes:
    blob = L.pack_blob("", render_flavor(frec))
    return _ext.show_doc(blob, minor, role_bit(ctx) | L.VIEW_SHOW, None, links.root,
                         links.vroot)


async def create(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "create")
    body = cmd.parse_body(req)
    CREATE[minor].check(body)
    vals = body["flavor"]
    fid = vals.get("id")
    fid = str(fid) if fid not in (None, "") else str(uuidlib.uuid4())
    frec = {"id": fid, "name": vals["name"].strip(), "ram": int(vals["ram"]),
            "vcpus": int(vals["vcpus"]), "disk": int(vals["disk"]),
            "ephemeral": int(vals.get("OS-FLV-EXT-DATA:ephemeral", 0)),
            "swap": int(vals.get("swap", 0)),
            "rxtx_factor": float(vals.get("rxtx_factor", 1.0)),
            "is_public": vals.get("os-flavor-access:is_public", True) in _TRUE,
            "disabled": False, "description": vals.get("description") if minor >= 55 else None,
            "extra_specs": {}, "projects": [], "created_at": cmd.now(), "updated_at": None}
    rt = runtime.get(app)

    def change(b):
        if b.txn.get(fid.encode(), db=b.dbs[L.DB_FLAVOR_RECS]) is not None:
            raise errors.fault(409, "Flavor with ID %s already exists." % fid)
        with b.txn.cursor(db=b.dbs[L.DB_FLAVOR_RECS]) as cur:
            for _k, raw in cur:
                if orjson.loads(raw).get("name") == frec["name"]:
                    raise errors.fault(409, "Flavor with name %s already exists."
                                       % frec["name"])
        b.put_flavor(frec)
    await rt.write(change)
    return 200, b'{"flavor":' + _doc(app, ctx, minor, links, frec) + b"}"


async def update(app, req, ctx, minor, args, links):
    if minor < 55:
        raise _not_served(req)
    C.require_admin(ctx, RULE % "update")
    body = cmd.parse_body(req)
    UPDATE[minor].check(body)
    frec = await change_flavor(app, ctx, args[0], lambda f: f.update(
        description=body["flavor"]["description"]))
    return 200, b'{"flavor":' + _doc(app, ctx, minor, links, frec) + b"}"


def _not_served(req):
    """A route nova has only from a later microversion: its version-not-found 404."""
    return errors.not_found("The resource could not be found.")


async def delete(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "delete")
    rt = runtime.get(app)
    fid = args[0]

    def change(b):
        if not b.delete_flavor(fid):
            raise errors.flavor_not_found(fid)
    await rt.write(change)
    return 202, b""


# -- access ------------------------------------------------------------------------------------

def _access_doc(frec) -> bytes:
    return orjson.dumps({"flavor_access": [{"flavor_id": frec["id"], "tenant_id": p}
                                           for p in frec.get("projects") or ()]})


async def access_index(app, req, ctx, minor, args, links):
    C.require_admin(ctx, ACCESS_RULE)
    C.reject_unknown(C.query(req), (), minor, since=102)
    frec = visible_flavor(app, ctx, args[0])
    if frec.get("is_public", True):
        raise errors.not_found("Access list not available for public flavors.")
    return 200, _access_doc(frec)


async def action(app, req, ctx, minor, args, links):
    body = cmd.parse_body(req)
    name = next(iter(body), None) if isinstance(body, dict) and len(body) == 1 else None
    if name == "addTenantAccess":
        C.require_admin(ctx, ACCESS_RULE + ":add_tenant_access")
        ADD_ACCESS[minor].check(body)
        return 200, _access_doc(await _access(app, ctx, minor, args[0],
                                              body[name]["tenant"], add=True))
    if name == "removeTenantAccess":
        C.require_admin(ctx, ACCESS_RULE + ":remove_tenant_access")
        REMOVE_ACCESS[minor].check(body)
        return 200, _access_doc(await _access(app, ctx, minor, args[0],
                                              body[name]["tenant"], add=False))
    raise errors.bad_request("There is no such action: %s" % name if name else
                             "Malformed request body")


async def _access(app, ctx, minor, fid, tenant, add: bool):
    def mutate(frec):
        projects = list(frec.get("projects") or ())
        if add:
            if minor >= 7 and frec.get("is_public", True):
                raise errors.fault(409, "Can not add access to a public flavor.")
            if tenant in projects:
                raise errors.fault(409, "Flavor access already exists for flavor %s and "
                                        "project %s combination." % (fid, tenant))
            projects.append(tenant)
        else:
            if tenant not in projects:
                raise errors.not_found("Flavor access not found for %s / %s combination."
                                       % (fid, tenant))
            projects.remove(tenant)
        frec["projects"] = projects
    return await change_flavor(app, ctx, fid, mutate)
