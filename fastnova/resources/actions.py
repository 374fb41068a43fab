"""os-instance-actions: every command records its action with its request id; the cell's updates
(``action.event``) add the events; list and show per microversion (2.21, 2.51, 2.58, 2.62, 2.66,
2.84).

An action is ``act:<uuid> NUL <micros(start)> <request_id>`` in the meta database, so that a
server's actions in nova's order (newest first) are a backwards cursor walk from the marker;
``actreq:<uuid> NUL <request_id>`` finds one by request id (show, marker, events).  The action is
written in the command's own store transaction (``PENDING``: the command in progress, set by the
handler, consumed by fastnova.commands.common.change and create).
"""
from __future__ import annotations

import contextvars
import datetime as _dt

import orjson

from fastnova.api import errors
from fastnova.api.query import limit_and_marker
from fastnova.commands import common as cmd
from fastnova.resources import common as C

RULE = "os_compute_api:os-instance-actions:%s"
ACTION = b"act:"
BY_REQUEST = b"actreq:"
ACTION_KEYS = ("action", "instance_uuid", "request_id", "user_id", "project_id", "start_time",
               "message")
PENDING: contextvars.ContextVar = contextvars.ContextVar("fastnova_action", default=None)


def start(req, ctx, name: str):
    """The command about to run records action ``name`` (nova's instance_actions names)."""
    rid = getattr(req, "rid", None) or b""
    # The start time is fixed here, so that writing the action again (a group commit retried
    # change by change runs a change twice) gives the same keys.
    PENDING.set({"action": name, "request_id": rid.decode() if isinstance(rid, bytes) else rid,
                 "user_id": ctx.user_id, "project_id": ctx.project_id,
                 "start_time": cmd.now()})


def request_id() -> str | None:
    pending = PENDING.get()
    return pending["request_id"] if pending else None


def _micros(when: str) -> int:
    stamp = _dt.datetime.strptime(when[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return int(stamp.replace(tzinfo=_dt.timezone.utc).timestamp() * 1_000_000)


def record(b, uuid: str, pending: dict | None) -> bool:
    """Inside a store write: the command's action (``PENDING`` as the command's coroutine saw
    it: the write runs on the committer's thread) on server ``uuid``."""
    if not pending or not pending.get("request_id"):
        return False
    when = pending["start_time"]
    doc = dict(pending, instance_uuid=uuid, start_time=when, updated_at=when, message=None,
               events=[])
    put_action(b, doc)
    return True


def put_action(b, doc: dict):
    """Store one action (also import-nova's door)."""
    uuid, rid = doc["instance_uuid"], doc["request_id"]
    key = C.fit(ACTION + uuid.encode() + C.SEP + _micros(doc["start_time"]).to_bytes(8, "big")
                + rid.encode())
    C.put_json(b, key, doc)
    b.set_meta(_req_key(uuid, rid), key)


def _req_key(uuid: str, rid: str) -> bytes:
    return C.fit(BY_REQUEST + uuid.encode() + C.SEP + rid.encode())


def apply_event(b, uuid: str, event: dict) -> bool:
    """A cell's event: the start of one (no finish_time yet) or its finish, merged by name."""
    ref = b.get_meta(_req_key(uuid, event["request_id"]))
    raw = b.get_meta(ref) if ref is not None else None
    if raw is None:
        return False
    doc = orjson.loads(raw)
    fields = {k: event.get(k) for k in ("start_time", "finish_time", "result", "traceback",
                                        "host", "details") if k in event}
    events = doc.setdefault("events", [])
    for held in events:
        if held["event"] == event["event"]:
            held.update({k: v for k, v in fields.items() if v is not None})
            break
    else:
        events.append(dict({"start_time": None, "finish_time": None, "result": None,
                            "traceback": None, "host": None, "details": None},
                           event=event["event"], **fields))
    doc["updated_at"] = event.get("finish_time") or event.get("start_time") or doc["updated_at"]
    if event.get("result") == "Error":
        doc["message"] = "Error"
    b.set_meta(ref, orjson.dumps(doc))
    return True


# -- handlers ----------------------------------------------------------------------------------

def _server(app, ctx, minor, uuid) -> dict:
    with app.reader.begin() as txn:
        rec = app.reader.record(txn, uuid.encode())
    if rec is None or "project_id" not in rec or rec.get("deleted") and minor < 21:
        raise errors.server_not_found(uuid)
    if not ctx.is_admin and rec["project_id"] != ctx.project_id:
        raise errors.server_not_found(uuid)
    return rec


def _action_doc(doc: dict, minor: int) -> dict:
    out = {k: doc.get(k) for k in ACTION_KEYS}
    if minor >= 58:
        out["updated_at"] = doc.get("updated_at")
    return out


async def index(app, req, ctx, minor, args, links):
    uuid = args[0]
    q = C.query(req)
    if minor >= 58:
        allowed = ("limit", "marker", "changes-since") + (("changes-before",)
                                                          if minor >= 66 else ())
        C.reject_unknown(q, allowed, minor, since=58)
    rec = _server(app, ctx, minor, uuid)
    since, before = _changes(q, minor)
    limit, marker = limit_and_marker(q) if minor >= 58 else (None, None)
    prefix = ACTION + uuid.encode() + C.SEP
    out = []
    with app.reader.begin() as txn:
        start = None
        if marker is not None:
            start = txn.get(_req_key(uuid, marker),
                            db=C.meta_db(_Rt(app)))
            if start is None:
                raise errors.bad_request("Marker None could not be found.")
        for _k, raw in C.walk(_Rt(app), txn, prefix, start, None, reverse=True):
            doc = orjson.loads(raw)
            if since and doc["updated_at"] < since or before and doc["updated_at"] > before:
                continue
            out.append(doc)
            if limit is not None and len(out) >= limit:
                break
    body = {"instanceActions": [_action_doc(d, minor) for d in out]}
    del rec
    if minor >= 58 and out and limit and len(out) == limit:
        from fastnova.api.query import next_link
        href = next_link(q, links.vroot_str, "servers/%s/os-instance-actions" % uuid,
                         out[-1]["request_id"])
        body["links"] = [{"rel": "next", "href": href}]
    return 200, orjson.dumps(body)


class _Rt:
    __slots__ = ("reader",)

    def __init__(self, app):
        self.reader = app.reader


def _changes(q, minor):
    if minor < 58:
        return None, None
    from fastnova.query.params import parse_isotime
    out = []
    for name in ("changes-since", "changes-before"):
        value = q.last.get(name)
        if value is None or name == "changes-before" and minor < 66:
            out.append(None)
            continue
        parsed = parse_isotime(value)
        if parsed is None:
            raise errors.bad_request("Invalid input for query parameters %s. Value: %s. %r is "
                                     "not a 'date-time'" % (name, value, value))
        out.append(parsed.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f"))
    since, before = out
    if since and before and before < since:
        raise errors.bad_request("The value of changes-since must be less than or equal to "
                                 "changes-before.")
    return since, before


async def show(app, req, ctx, minor, args, links):
    uuid, rid = args
    C.reject_unknown(C.query(req), (), minor, since=102)
    rec = _server(app, ctx, minor, uuid)
    with app.reader.begin() as txn:
        db = C.meta_db(_Rt(app))
        ref = txn.get(_req_key(uuid, rid), db=db)
        raw = txn.get(ref, db=db) if ref is not None else None
    if raw is None:
        raise errors.not_found("Action %s not found" % rid)
    doc = orjson.loads(raw)
    out = _action_doc(doc, minor)
    admin = ctx.is_admin
    if admin or minor >= 51:
        project = doc.get("project_id") or rec["project_id"]
        out["events"] = [_event(e, project, minor, admin) for e in doc.get("events") or ()]
    return 200, orjson.dumps({"instanceAction": out})


def _event(raw: dict, project: str, minor: int, admin: bool) -> dict:
    out = {k: raw.get(k) for k in ("event", "start_time", "finish_time", "result")}
    if admin:
        out["traceback"] = raw.get("traceback")
        if minor >= 62:
            out["host"] = raw.get("host") or ""
    if minor >= 62:
        out["hostId"] = _host_id(raw.get("host"), project)
    if minor >= 84 and admin:
        out["details"] = raw.get("details")
    return out


def _host_id(host, project) -> str:
    from fastnova.views.servers import host_id
    return host_id(project, host)
