"""Front mode (``--commands upstream``): commands go to the upstream nova-api unchanged, and the
store shows what nova accepted before the client hears nova's answer.

Every POST, PUT, PATCH and DELETE, and every server action, is forwarded with its headers, body
and request id (fastnova.api.upstream); nova's answer goes back byte for byte, errors included.
When nova accepts (2xx), the worker writes what the client just changed into the store, so the
next GET, on any worker, reads its own write:

* create: one GET of the new server from nova (at ``latest``, with the client's token) gives the
  full record, written only if the store does not have the server yet (notifications may have
  brought it first; they are newer then);
* rename (PUT /servers/{id}): nova's own answer, a full server document;
* metadata and tags: nova's answer where it holds the whole set, else the request applied to the
  stored record (one key set or deleted, one tag added or removed);
* delete: the server shows ``task_state: deleting`` until nova's delete notification leaves the
  tombstone (a server already gone stays gone);
* other server actions: one GET of the server, whose state, task and lock fields are written,
  unless the store already holds a later save of it.

Versions (fastnova/importer/versions.py): a write here is versioned as a notification of the
server's ``updated`` (nova's answer's, else the second the request left in) emitted when the
request whose answer it writes left for nova, less a small margin, and is written only if that is
newer than the store's version.  nova's notifications carry ``updated_at`` in whole seconds, as
its API does, so within a second they are ordered by emission time, and this write takes its
place among them: a notification emitted after the request left wins (it may show a later state:
with nova's fake driver a stop can finish before nova answers the GET that follows it), one
emitted before it (whose change nova's answer shows) loses.  When the store already holds a
newer version, nova's own notification brought the change first.  Two writes of this mode in one
emission bucket (~2 % of the time since ``updated``) stack by +1 (a meta mark per server says the
stored version is this mode's own), up to the margin.  The residual risk is the ordering's
(docs/import.md): clocks of the API host and nova's hosts apart by more than two changes.

A failure here (nova's GET failing, a store error) is logged and does not fail the command: nova
has accepted it, and notifications or ``reconcile`` bring the store up to date.
"""
from __future__ import annotations

import datetime
import logging
import orjson

from fastnova.api import router
from fastnova.commands import runtime
from fastnova.importer.versions import notification_version
from fastnova.record import canonical_time

LOG = logging.getLogger("fastnova.front")

# Reads fastnova would answer from a store that nova's own state overrules (quotas live in nova).
FORWARDED_READS = frozenset((router.LIMITS,))
_MARGIN = 4
_MARK = b"front_version:"       # meta: the version front mode last wrote for a server
_AUTH_HEADERS = (b"x-auth-token", b"x-service-token", b"x-openstack-request-id")
_ACTION_FIELDS = ("vm_state", "task_state", "power_state", "locked", "locked_reason",
                  "updated_at", "fault", "flavor")


def forwards(method: str, kind: int) -> bool:
    """Does front mode send this request upstream?"""
    return method not in ("GET", "HEAD") or kind in FORWARDED_READS


async def forward(app, req, rt):
    """Send the request upstream; on a 2xx, write the change into the store before answering."""
    target = req.path + ("?" + req.query if req.query else "")
    sent = _now()
    answer = await app.upstream.forward(req.method, target, req.raw_headers, req.body, req.host)
    if 200 <= answer.status < 300 and req.method not in ("GET", "HEAD"):
        try:
            await _write_through(app, req, rt, answer, sent)
        except Exception:     # nova accepted it: the feed and reconcile catch the store up
            LOG.exception("front: could not write %s %s into the store", req.method, req.path)
    return answer


async def _write_through(app, req, rt, answer, sent):
    """``sent``: when the request left for nova; nova's answer shows its state as of some time
    after it, so a notification emitted after ``sent`` may be newer and must win (module doc)."""
    kind = rt.kind
    if kind == router.SERVER_CREATE:
        return await _created(app, req, answer)
    if kind == router.SERVER_UPDATE:
        doc = _json(answer.body).get("server") or {}
        return await _patch(app, rt.arg, _renamed(doc), sent, doc.get("updated"))
    if kind == router.SERVER_DELETE:
        return await _patch(app, rt.arg, {"task_state": "deleting"}, sent)
    if kind in _SUB_KINDS:
        sid = rt.arg[0]
        return await _patch(app, sid, lambda rec: _sub_change(kind, rt.arg, req, answer, rec),
                            sent, sticky=True)
    if kind == router.SERVER_ACTION:
        doc, fetched = await _fetch(app, req, rt.arg)
        if doc is not None:
            return await _patch(app, rt.arg, _action_fields(doc), fetched, doc.get("updated"))


# -- the store writes ---------------------------------------------------------------------------

async def _patch(app, sid, changes, emitted, updated=None, sticky=False):
    """Patch a live stored server (``changes``: a dict, or a function of the stored record giving
    one), versioned as a notification of ``updated`` emitted at ``emitted`` (module doc).
    Nothing when the store does not know the server or has a newer version from nova."""
    def change(batch):
        old = batch.get_record(sid)
        if old is None or old.get("deleted"):
            return False
        version = _version(updated or emitted[:19], emitted)
        if version <= old["version"]:
            if not sticky and batch.get_meta(_MARK + sid.encode()) != b"%d" % old["version"]:
                return False            # nova's notification is newer: it has the change
            # sticky (metadata, tags): nova sends no notification of these changes, so a newer
            # stored version cannot hold them; the change goes on top of it
            version = old["version"] + 1    # only our own write of the same bucket is newer
        patch = changes(old) if callable(changes) else changes
        if not patch or not batch.patch_server(sid, version, patch):
            return False
        batch.set_meta(_MARK + sid.encode(), b"%d" % version)
        return True
    return await runtime.get(app).write(change)


async def _created(app, req, answer):
    sid = (_json(answer.body).get("server") or {}).get("id")
    if not sid:
        return False       # a multiple create answered with a reservation id: notifications
    doc, fetched = await _fetch(app, req, sid)
    if doc is None:
        return False
    body = _json(req.body).get("server") or {}
    rec = record_from_server(doc, body, fetched)

    def change(batch):
        if batch.get_record(sid) is not None:
            return False       # notifications were first, and are newer
        return batch.upsert_server(rec)
    return await runtime.get(app).write(change)


async def _fetch(app, req, sid):
    """nova's own view of the server, at ``latest``, with the client's credentials."""
    headers = [(n, v) for n, v in req.raw_headers if n.lower() in _AUTH_HEADERS]
    headers.append((b"OpenStack-API-Version", b"compute latest"))
    sent = _now()
    got = await app.upstream.forward("GET", "/v2.1/servers/" + sid, headers, b"", req.host)
    if got.status != 200:
        LOG.warning("front: GET of server %s after a command answered %d", sid, got.status)
        return None, sent
    return _json(got.body).get("server"), sent


# -- nova's documents as record fields ----------------------------------------------------------

def record_from_server(doc: dict, body: dict, fetched: str) -> dict:
    """A canonical record (fastnova/record.py) from nova's show document at ``latest`` (asked for
    at ``fetched``) and the create request's body (for what the document does not show: the
    flavor id, user data)."""
    flavor = doc.get("flavor") or {}
    image = doc.get("image")
    rec = {
        "id": doc["id"], "name": doc.get("name") or "", "project_id": doc["tenant_id"],
        "user_id": doc["user_id"], "created_at": canonical_time(doc["created"]),
        "updated_at": _time(doc.get("updated")),
        "version": _version(doc.get("updated") or doc["created"], fetched),
        "flavor": {"id": _last_segment(body.get("flavorRef") or flavor.get("id") or ""),
                   "name": flavor.get("original_name") or "", "vcpus": flavor.get("vcpus", 0),
                   "ram": flavor.get("ram", 0), "disk": flavor.get("disk", 0),
                   "ephemeral": flavor.get("ephemeral", 0), "swap": flavor.get("swap") or 0,
                   "extra_specs": flavor.get("extra_specs") or {}},
        "image": ({"id": image["id"], "properties": image.get("properties") or {}}
                  if isinstance(image, dict) and image.get("id") else None),
        "availability_zone": doc.get("OS-EXT-AZ:availability_zone") or None,
        "pinned_availability_zone": doc.get("pinned_availability_zone"),
        "access_ip_v4": doc.get("accessIPv4") or "", "access_ip_v6": doc.get("accessIPv6") or "",
        "config_drive": doc.get("config_drive") or "",
        "disk_config": doc.get("OS-DCF:diskConfig") or "MANUAL",
        "key_name": doc.get("key_name"), "description": doc.get("description"),
        "locked": bool(doc.get("locked")), "locked_reason": doc.get("locked_reason"),
        "progress": doc.get("progress") or 0, "metadata": doc.get("metadata") or {},
        "tags": sorted(doc.get("tags") or []),
        "hostname": doc.get("OS-EXT-SRV-ATTR:hostname") or "",
        "user_data": body.get("user_data"),
        "security_groups": [g["name"] for g in doc.get("security_groups") or []],
        "volumes_attached": [{"id": v["id"], "delete_on_termination":
                              bool(v.get("delete_on_termination"))}
                             for v in doc.get("os-extended-volumes:volumes_attached") or []],
        "fault": _fault(doc.get("fault")),
        "server_groups": list(doc.get("server_groups") or []),
        "trusted_image_certificates": doc.get("trusted_image_certificates"),
        "scheduler_hints": doc.get("scheduler_hints") or {},
    }
    rec.update(_status(doc))
    for key, field in (("host", "OS-EXT-SRV-ATTR:host"),
                       ("node", "OS-EXT-SRV-ATTR:hypervisor_hostname"),
                       ("instance_name", "OS-EXT-SRV-ATTR:instance_name"),
                       ("reservation_id", "OS-EXT-SRV-ATTR:reservation_id"),
                       ("launch_index", "OS-EXT-SRV-ATTR:launch_index"),
                       ("kernel_id", "OS-EXT-SRV-ATTR:kernel_id"),
                       ("ramdisk_id", "OS-EXT-SRV-ATTR:ramdisk_id"),
                       ("root_device_name", "OS-EXT-SRV-ATTR:root_device_name"),
                       ("launched_at", "OS-SRV-USG:launched_at"),
                       ("host_status", "host_status")):
        if doc.get(field) is not None:      # admin-only fields: a member's token hides them
            rec[key] = doc[field]
    if rec.get("launched_at"):
        rec["launched_at"] = canonical_time(rec["launched_at"])
    return rec


def _status(doc: dict) -> dict:
    out = {}
    if "OS-EXT-STS:vm_state" in doc:
        out["vm_state"] = doc["OS-EXT-STS:vm_state"]
        out["task_state"] = doc.get("OS-EXT-STS:task_state")
        out["power_state"] = doc.get("OS-EXT-STS:power_state") or 0
    return out


def _renamed(doc: dict) -> dict:
    """What PUT /servers/{id} can change, as its answer shows it."""
    out = {}
    for key, field in (("name", "name"), ("description", "description"),
                       ("access_ip_v4", "accessIPv4"), ("access_ip_v6", "accessIPv6"),
                       ("hostname", "OS-EXT-SRV-ATTR:hostname")):
        if field in doc:
            out[key] = doc[field] if doc[field] is not None or key == "description" else ""
    if doc.get("updated"):
        out["updated_at"] = _time(doc["updated"])
    return out


def _action_fields(doc: dict) -> dict:
    rec = _status(doc)
    if "locked" in doc:
        rec["locked"] = bool(doc["locked"])
    if "locked_reason" in doc:
        rec["locked_reason"] = doc["locked_reason"]
    if doc.get("updated"):
        rec["updated_at"] = _time(doc["updated"])
    if "fault" in doc:
        rec["fault"] = _fault(doc["fault"])
    return {k: v for k, v in rec.items() if k in _ACTION_FIELDS}


_SUB_KINDS = frozenset((router.METADATA_CREATE, router.METADATA_UPDATE_ALL,
                        router.METADATA_UPDATE, router.METADATA_DELETE, router.TAG_ADD,
                        router.TAGS_UPDATE_ALL, router.TAG_DELETE, router.TAGS_DELETE_ALL))


def _sub_change(kind, arg, req, answer, rec) -> dict:
    """Metadata and tags after the command, from nova's answer or the request applied to the
    stored record."""
    got = _json(answer.body)
    if kind in (router.METADATA_CREATE, router.METADATA_UPDATE_ALL):
        return {"metadata": dict(got.get("metadata") or {})}
    if kind == router.METADATA_UPDATE:
        return {"metadata": dict(rec["metadata"], **(got.get("meta") or {}))}
    if kind == router.METADATA_DELETE:
        key = arg[1]
        return {"metadata": {k: v for k, v in rec["metadata"].items() if k != key}}
    if kind == router.TAGS_UPDATE_ALL:
        return {"tags": sorted(got.get("tags") or [])}
    if kind == router.TAGS_DELETE_ALL:
        return {"tags": []}
    tag = arg[1]
    if kind == router.TAG_ADD:
        return {"tags": sorted(set(rec["tags"]) | {tag})}
    return {"tags": [t for t in rec["tags"] if t != tag]}


def _fault(fault):
    if not fault:
        return None
    return {"code": fault.get("code"), "message": fault.get("message"),
            "details": fault.get("details"), "created": _time(fault.get("created"))}


def _version(updated, emitted) -> int:
    """A notification's version less a margin: a notification emitted in the same instant (the
    same log-scale bucket) is preferred to this write, and to three more stacked on it."""
    return notification_version(updated, emitted) - _MARGIN


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat()


def _time(value):
    return canonical_time(value) if value else None


def _last_segment(ref: str) -> str:
    return str(ref).rstrip("/").rsplit("/", 1)[-1]


def _json(body: bytes) -> dict:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
