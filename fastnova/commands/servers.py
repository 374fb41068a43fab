"""PUT /servers/{id} (rename, description, access IPs, hostname) and DELETE /servers/{id}."""
from __future__ import annotations

import orjson

from fastnova import _ext
from fastnova.api import errors
from fastnova.api.servers import role_bit
from fastnova.commands import common, runtime, schemas
from fastnova.store import layout as L

# Before 2.75 PUT and rebuild answer with a reduced server document (nova's view builder with
# most extensions off); from 2.75 with the whole GET document.
_REDUCED = frozenset((
    "id", "name", "status", "tenant_id", "user_id", "metadata", "hostId", "image", "flavor",
    "created", "updated", "addresses", "accessIPv4", "accessIPv6", "links", "OS-DCF:diskConfig",
    "progress", "fault", "locked", "description", "tags", "trusted_image_certificates",
    "server_groups", "locked_reason"))


async def update(app, req, ctx, minor, route, links):
    rt = runtime.get(app)
    body = common.parse_body(req)
    schemas.UPDATE[minor].check(body)
    server = body["server"]
    changes = {}
    if "name" in server:
        changes["name"] = server["name"].strip()
    if "description" in server:
        changes["description"] = server["description"]
    if "hostname" in server:
        changes["hostname"] = server["hostname"]
    if "accessIPv4" in server:
        changes["access_ip_v4"] = server["accessIPv4"]
    if "accessIPv6" in server:
        changes["access_ip_v6"] = server["accessIPv6"]
    if "OS-DCF:diskConfig" in server:
        changes["disk_config"] = server["OS-DCF:diskConfig"]
    with rt.begin() as txn:
        rec = common.load(rt, txn, ctx, route.arg)
    if "pinned_availability_zone" in server:
        changes["pinned_availability_zone"] = _pin(rec, server["pinned_availability_zone"])
    await common.change(rt, rec, changes)
    return 200, b'{"server":' + server_doc(rt, ctx, minor, links, rec["id"]) + b"}"


def _pin(rec, requested):
    current = rec.get("pinned_availability_zone")
    if requested is None or requested == current:
        return requested
    if current is not None:
        raise errors.fault(409, "Cannot change pinned availability zone directly. Unpin first "
                                "by setting pinned_availability_zone to null.")
    if requested != rec.get("availability_zone"):
        raise errors.fault(409, "Server can only be pinned to its current availability zone "
                                "'%s', but '%s' was requested."
                           % (rec.get("availability_zone"), requested))
    return requested


def server_doc(rt, ctx, minor, links, uuid: str, extra: dict | None = None) -> bytes:
    """The server as GET shows it now (read-your-writes), reduced before 2.75 as nova does."""
    with rt.begin() as txn:
        blob = rt.reader.server_blob(txn, uuid.encode())
        doc = _ext.show_doc(blob, minor, role_bit(ctx) | L.VIEW_SHOW, None, links.root,
                            links.vroot)
    if minor >= 75 and not extra:
        return doc
    data = orjson.loads(doc)
    if minor < 75:
        data = {k: v for k, v in data.items() if k in _REDUCED}
        for addrs in data.get("addresses", {}).values():
            for addr in addrs:
                addr.pop("OS-EXT-IPS:type", None)
                addr.pop("OS-EXT-IPS-MAC:mac_addr", None)
    data.update(extra or {})
    return orjson.dumps(data)


async def delete(app, req, ctx, minor, route, links):
    rt = runtime.get(app)
    with rt.begin() as txn:
        rec = common.load(rt, txn, ctx, route.arg)
        rt.check_outbox(txn)
    common.check_lock(ctx, rec)
    from fastnova.resources import actions
    actions.start(req, ctx, "delete")
    # No cell has the server yet (never scheduled): nova deletes it at the API at once; the cast
    # still goes, so a cell that is about to build it stands down.
    local = not rec.get("host") and rec["vm_state"] in ("building", "error")
    await common.change(rt, rec, {} if local else {"task_state": "deleting", "progress": 0},
                        cast=("terminate_instance", {}), delete=local)
    return 204, b""
