"""Compute services and the availability zones nova derives from them (os-availability-zone).

A service is one record in the store's meta database, ``service:<host> NUL <binary>``, written
by the cell's updates (``service.upsert``, cellfeed.contract), by import-nova from nova's
``services`` and aggregate tables, and by the simulated cells.  The record carries the zone
already resolved as nova resolves it (a compute host's aggregate ``availability_zone``, else
``default_availability_zone``; every other service is in ``internal``), and whether the cell saw
it up, so the zone list is a walk of the services without any join.
"""
from __future__ import annotations

import orjson

from fastnova.resources import common as C

PREFIX = b"service:"
INTERNAL = "internal"          # nova's internal_service_availability_zone
DEFAULT_ZONE = "nova"          # nova's default_availability_zone
LIST_RULE = "os_compute_api:os-availability-zone:list"
DETAIL_RULE = "os_compute_api:os-availability-zone:detail"
_API_BINARIES = ("nova-osapi_compute", "nova-metadata")


def key(host: str, binary: str) -> bytes:
    return PREFIX + host.encode() + C.SEP + binary.encode()


def normalize(svc: dict) -> dict:
    """A service record as stored: zone resolved, flags boolean."""
    host, binary = str(svc["host"]), str(svc["binary"])
    zone = svc.get("zone") or (DEFAULT_ZONE if binary == "nova-compute" else INTERNAL)
    return {"host": host, "binary": binary, "zone": zone,
            "disabled": bool(svc.get("disabled", False)),
            "disabled_reason": svc.get("disabled_reason"),
            "forced_down": bool(svc.get("forced_down", False)),
            "up": bool(svc.get("up", True)), "updated_at": svc.get("updated_at"),
            "version": int(svc.get("version") or 0)}


def put(b, svc: dict) -> bool:
    """Store one service unless the store holds a newer report of it."""
    rec = normalize(svc)
    k = key(rec["host"], rec["binary"])
    held = b.get_meta(k)
    if held is not None and orjson.loads(held).get("version", 0) > rec["version"]:
        return False
    b.set_meta(k, orjson.dumps(rec))
    return True


def all_services(rt, txn) -> list[dict]:
    return [orjson.loads(v) for _k, v in C.walk(rt, txn, PREFIX)]


def zones(services: list[dict]) -> tuple[list[str], list[str]]:
    """nova's get_availability_zones: zones with an enabled service, then zones whose services
    are all disabled."""
    available = {s["zone"] for s in services if not s["disabled"]}
    unavailable = {s["zone"] for s in services if s["disabled"]} - available
    return sorted(available), sorted(unavailable)


# -- handlers ----------------------------------------------------------------------------------

async def index(app, req, ctx, minor, args, links):
    C.reject_unknown(C.query(req), (), minor, since=102)
    with app.reader.begin() as txn:
        available, unavailable = zones(_services(app, txn))
    info = [{"zoneName": z, "zoneState": {"available": True}, "hosts": None}
            for z in available if z != INTERNAL]
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": None}
             for z in unavailable if z != INTERNAL]
    return 200, orjson.dumps({"availabilityZoneInfo": info})


async def detail(app, req, ctx, minor, args, links):
    C.require_admin(ctx, DETAIL_RULE)
    C.reject_unknown(C.query(req), (), minor, since=102)
    with app.reader.begin() as txn:
        services = _services(app, txn)
    available, unavailable = zones(services)
    hosts: dict = {}
    for svc in services:
        if svc["disabled"] or svc["binary"] in _API_BINARIES:
            continue
        entry = hosts.setdefault(svc["zone"], {}).setdefault(svc["host"], {})
        entry[svc["binary"]] = {"available": svc["up"] and not svc["forced_down"],
                                "active": not svc["disabled"],
                                "updated_at": svc["updated_at"]}
    info = [{"zoneName": z, "zoneState": {"available": True}, "hosts": hosts.get(z, {})}
            for z in available]
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": None}
             for z in unavailable]
    return 200, orjson.dumps({"availabilityZoneInfo": info})


def _services(app, txn):
    from fastnova.store import layout as L
    out = []
    with txn.cursor(db=app.reader.dbs[L.DB_META]) as cur:
        if cur.set_range(PREFIX):
            for k, v in cur:
                if not k.startswith(PREFIX):
                    break
                out.append(orjson.loads(v))
    return out
