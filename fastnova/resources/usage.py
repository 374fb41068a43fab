"""os-simple-tenant-usage: a project's (or every project's, for admins) server hours in a
period, from the store's server history (live servers and tombstones keep launched_at and
terminated_at, as nova's instances table does).

Servers are walked in creation order from the project's ``c`` (live) and ``d`` (deleted) index
parts merged, and a page stops after ``limit`` servers (2.40 pages by ``marker``).
"""
from __future__ import annotations

import datetime as _dt
import heapq

import orjson

from fastnova.api import errors
from fastnova.api.query import MAX_LIMIT, limit_and_marker, next_link
from fastnova.resources import common as C
from fastnova.store import layout as L

RULE = "os_compute_api:os-simple-tenant-usage:%s"
_UTC = _dt.timezone.utc
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _parse(text):
    if not text:
        return _dt.datetime.now(_UTC)
    for fmt in _FORMATS:
        try:
            return _dt.datetime.strptime(text, fmt).replace(tzinfo=_UTC)
        except ValueError:
            continue
    raise errors.bad_request("Invalid time format: Datetime is in invalid format")


def _time(value):
    if not value:
        return None
    return _dt.datetime.strptime(value[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=_UTC)


def _period(q):
    start = _parse((q.getall("start") or [None])[0])
    stop = _parse((q.getall("end") or [None])[0])
    if not start < stop:
        raise errors.bad_request("Invalid start time. The start time cannot occur after the "
                                 "end time.")
    return start, min(stop, _dt.datetime.now(_UTC))


def _iso(value: _dt.datetime | None):
    return None if value is None else value.replace(tzinfo=None).isoformat()


def _records(app, txn, scope: bytes, start, stop, limit, marker):
    """Servers active in the window, in creation order, after ``marker``: at most ``limit``."""
    reader = app.reader
    parts = [reader.walk_part(txn, scope, part, False) for part in (L.PART_LIVE,
                                                                     L.PART_DELETED)]
    merged = heapq.merge(*[((k[-L.UUID_LEN - L.MICROS_LEN:]) for k in _keys(p))
                           for p in parts])
    out, seen_marker = [], marker is None
    for tail in merged:
        uuid = tail[-L.UUID_LEN:]
        if not seen_marker:
            seen_marker = uuid.decode() == marker
            continue
        rec = reader.record(txn, uuid)
        if rec is None or "project_id" not in rec:
            continue
        launched, ended = _time(rec.get("launched_at")), _time(rec.get("terminated_at"))
        if launched is None or launched >= stop or ended is not None and ended <= start:
            continue
        out.append(rec)
        if len(out) >= limit:
            break
    if not seen_marker:
        raise errors.bad_request("Marker %s could not be found." % marker)
    return out


def _keys(walk):
    for item in walk:
        yield item[0] if isinstance(item, tuple) else item


def _usage(rec, start, stop) -> dict:
    launched, ended = _time(rec.get("launched_at")), _time(rec.get("terminated_at"))
    hours = (min(stop, ended) if ended else stop) - max(launched, start)
    flavor = rec.get("flavor") or {}
    now = _dt.datetime.now(_UTC)
    return {"hours": hours.total_seconds() / 3600.0, "flavor": flavor.get("name", ""),
            "instance_id": rec["id"], "name": rec.get("name"), "tenant_id": rec["project_id"],
            "memory_mb": flavor.get("ram", 0),
            "local_gb": flavor.get("disk", 0) + flavor.get("ephemeral", 0),
            "vcpus": flavor.get("vcpus", 0), "started_at": _iso(launched),
            "ended_at": _iso(ended), "state": "terminated" if ended else rec.get("vm_state"),
            "uptime": int(((ended or now) - launched).total_seconds())}


def _summaries(usages, start, stop, detailed) -> list:
    out: dict = {}
    for info in usages:
        summary = out.get(info["tenant_id"])
        if summary is None:
            summary = out[info["tenant_id"]] = {"tenant_id": info["tenant_id"]}
            if detailed:
                summary["server_usages"] = []
            summary.update(total_local_gb_usage=0, total_vcpus_usage=0,
                           total_memory_mb_usage=0, total_hours=0, start=_iso(start),
                           stop=_iso(stop))
        summary["total_local_gb_usage"] += info["local_gb"] * info["hours"]
        summary["total_vcpus_usage"] += info["vcpus"] * info["hours"]
        summary["total_memory_mb_usage"] += info["memory_mb"] * info["hours"]
        summary["total_hours"] += info["hours"]
        if detailed:
            summary["server_usages"].append(info)
    return list(out.values())


def _page(app, req, minor, scope, allowed):
    q = C.query(req)
    C.reject_unknown(q, allowed + (("limit", "marker") if minor >= 40 else ()), minor)
    start, stop = _period(q)
    limit, marker = limit_and_marker(q) if minor >= 40 else (MAX_LIMIT, None)
    with app.reader.begin() as txn:
        recs = _records(app, txn, scope, start, stop, limit, marker)
    return q, start, stop, limit, [_usage(r, start, stop) for r in recs]


def _links(q, links, collection, usages, limit):
    if limit and len(usages) == limit:
        return [{"href": next_link(q, links.vroot_str, collection, usages[-1]["instance_id"]),
                 "rel": "next"}]
    return None


async def index(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "list")
    q, start, stop, limit, usages = _page(app, req, minor, L.ALL_SCOPE,
                                          ("start", "end", "detailed"))
    detailed = (q.getall("detailed") or ["0"])[0] == "1"
    doc = {"tenant_usages": _summaries(usages, start, stop, detailed)}
    nxt = _links(q, links, "os-simple-tenant-usage", usages, limit) if minor >= 40 else None
    if nxt:
        doc["tenant_usages_links"] = nxt
    return 200, orjson.dumps(doc)


async def show(app, req, ctx, minor, args, links):
    tenant = args[0]
    if not ctx.is_admin and tenant != ctx.project_id:
        raise C.forbidden(RULE % "show")
    q, start, stop, limit, usages = _page(app, req, minor, tenant.encode(), ("start", "end"))
    summaries = _summaries(usages, start, stop, True)
    doc = {"tenant_usage": summaries[0] if summaries else {}}
    nxt = _links(q, links, "os-simple-tenant-usage/" + tenant, usages, limit) \
        if minor >= 40 else None
    if nxt:
        doc["tenant_usage_links"] = nxt
    return 200, orjson.dumps(doc)
