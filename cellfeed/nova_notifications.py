"""Decoder: nova's versioned notifications -> the cell-update operations cellfeed applies.

Plugged into the consumer in place of ``contract.decode`` (``decoder="nova"``): a message from
nova's exchange (``nova``, routing keys ``versioned_notifications.info`` / ``.error``) becomes a
list of validated v1 updates (cellfeed.contract), which the consumer journals re-encoded, so the
journal and its replay never see nova's format.

    oslo.messaging envelope  {"oslo.version": "2.0", "oslo.message": "<json>"} (or a bare message)
    message                  event_type, payload (an InstancePayload subclass as a
                             nova_object primitive), priority, publisher_id, message_id,
                             timestamp ("2012-10-29 13:42:11.123456", when it was emitted)

Per event (nova/notifications/objects/instance.py):

    instance.delete.end                  server.delete
    instance.create.{start,end,error}    merge: [server.patch, server.upsert] at one version
    instance.update, every other         merge of the fields the payload carries
      instance.<action>.{start,end,error}
    flavor.create / flavor.update        flavor.upsert        flavor.delete -> flavor.delete
    anything else                        [] (acknowledged, not journaled)

"merge" is a patch followed by an upsert of the same version in one message: the applier applies
them in order, so a known server takes the patch (and the upsert is then not newer), an unknown
one (created after the import) takes the upsert.  Fields a notification never carries stay as the
import or reconcile left them (see docs/import.md for the list), and ``ip_addresses`` (fixed IPs
only: nova's IpPayload leaves floating IPs out) replaces the addresses only on events that change
ports (create, interface attach/detach), never on the many others.

Versions: fastnova.importer.versions.notification_version (payload updated_at, ties by emission).
"""
from __future__ import annotations

import orjson

from cellfeed import contract as C
from fastnova.importer.versions import notification_version
from fastnova.record import RecordError, canonical_time

# nova.objects.fields.InstancePowerState: the notification's names for power_state integers.
POWER_STATES = {"pending": 0, "running": 1, "paused": 3, "shutdown": 4, "crashed": 6,
                "suspended": 7}
ADDRESS_EVENTS = ("instance.create.", "instance.interface_attach.", "instance.interface_detach.")


class NotificationError(C.ContractError):
    """Not a nova notification we can read (dead-lettered with this reason)."""


def _data(obj):
    if isinstance(obj, dict) and "nova_object.data" in obj:
        return obj["nova_object.data"]
    return obj


def unwrap(body: bytes) -> dict:
    """The notification inside oslo.messaging's envelope."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and "oslo.message" in doc:
            doc = orjson.loads(doc["oslo.message"])
    except orjson.JSONDecodeError as exc:
        raise NotificationError("not JSON: %s" % exc) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("event_type"), str):
        raise NotificationError("no event_type: not an oslo.messaging notification")
    return doc


def decode(body: bytes) -> list[dict]:
    """Consumer hook: message body -> validated updates ([] when fastnova has no use for it)."""
    return decode_notification(unwrap(body))


def decode_notification(msg: dict) -> list[dict]:
    event = msg["event_type"]
    payload = _data(msg.get("payload"))
    if not isinstance(payload, dict):
        return []
    emitted = msg.get("timestamp")
    try:
        if event.startswith("instance.") and "uuid" in payload and "state" in payload:
            updates = _instance(event, payload, emitted)
        elif event in ("flavor.create", "flavor.update", "flavor.delete"):
            updates = _flavor(event, payload, emitted)
        elif event in ("service.create", "service.update") and "host" in payload:
            updates = _service(payload, emitted)
        else:
            return []
        return [C.validate(u) for u in updates]
    except (RecordError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, C.ContractError):
            raise
        raise NotificationError("%s: %r" % (event, exc)) from None


# -- instances ------------------------------------------------------------------------------------

def _time(value):
    return canonical_time(value) if value else None


def _flavor_fields(fp) -> dict:
    f = _data(fp) or {}
    return {"id": str(f.get("flavorid", "")), "name": f.get("name") or "",
            "vcpus": f.get("vcpus") or 0, "ram": f.get("memory_mb") or 0,
            "disk": f.get("root_gb") or 0, "ephemeral": f.get("ephemeral_gb") or 0,
            "swap": f.get("swap") or 0, "extra_specs": dict(f.get("extra_specs") or {})}


def _addresses(ips) -> dict:
    out: dict = {}
    for ip in (_data(x) for x in ips or []):
        out.setdefault(ip.get("label"), []).append(
            {"addr": ip.get("address"), "version": ip.get("version"), "type": "fixed",
             "mac": ip.get("mac")})
    return out


def instance_changes(event: str, p: dict, emitted) -> dict:
    """The record fields an InstancePayload (and its subclasses) carries."""
    ch = {
        "name": p.get("display_name") or "",
        "description": p.get("display_description"),
        "hostname": p.get("host_name"),
        "host": p.get("host"),
        "node": p.get("node"),
        "reservation_id": p.get("reservation_id"),
        "kernel_id": p.get("kernel_id"),
        "ramdisk_id": p.get("ramdisk_id"),
        "key_name": p.get("key_name"),
        "project_id": p.get("tenant_id"),
        "user_id": p.get("user_id"),
        "created_at": _time(p.get("created_at")),
        "launched_at": _time(p.get("launched_at")),
        "terminated_at": _time(p.get("terminated_at")),
        "updated_at": _time(p.get("updated_at")),
        "vm_state": p.get("state"),
        "task_state": p.get("task_state"),
        "power_state": POWER_STATES.get(p.get("power_state"), 0),
        "progress": p.get("progress"),
        "metadata": dict(p.get("metadata") or {}),
        "locked": bool(p.get("locked")),
        "locked_reason": p.get("locked_reason"),
        "disk_config": p.get("auto_disk_config") or "MANUAL",
        # instance.availability_zone: what the scheduler put it in (nova sets it to the host's
        # zone when it picks a host), the zone the API shows.
        "availability_zone": p.get("availability_zone"),
    }
    if p.get("flavor"):
        ch["flavor"] = _flavor_fields(p["flavor"])
    if "image_uuid" in p:
        ch["image"] = {"id": p["image_uuid"], "properties": {}} if p["image_uuid"] else None
    if "tags" in p:                                   # InstanceUpdatePayload, create payloads
        ch["tags"] = sorted(p["tags"] or [])
    if p.get("block_devices") is not None:            # [notifications] bdms_in_notifications
        ch["volumes_attached"] = [
            {"id": d.get("volume_id"), "delete_on_termination": bool(d.get("delete_on_termination"))}
            for d in (_data(x) for x in p["block_devices"]) if d.get("volume_id")]
    if "trusted_image_certificates" in p:
        ch["trusted_image_certificates"] = p["trusted_image_certificates"]
    if "instance_name" in p:
        ch["instance_name"] = p["instance_name"]
    if event.startswith(ADDRESS_EVENTS) and "ip_addresses" in p:
        ch["addresses"] = _addresses(p["ip_addresses"])
    fault = _data(p.get("fault"))
    if fault:
        # An ExceptionPayload is not the instance_faults row: nova's code is not sent (500 is
        # what a non-nova exception gets), nor its message formatting.  Reconcile corrects it.
        ch["fault"] = {"code": 500, "message": fault.get("exception_message") or
                       fault.get("exception"), "details": fault.get("traceback"),
                       "created": _time(emitted) or ch["updated_at"]}
    for key in ("project_id", "user_id", "created_at"):
        if not ch[key]:
            del ch[key]
    return ch


def _instance(event: str, p: dict, emitted) -> list[dict]:
    uuid = p["uuid"]
    version = notification_version(p.get("updated_at") or p.get("created_at"), emitted)
    if event == "instance.delete.end":
        when = p.get("deleted_at") or p.get("terminated_at")
        version = max(version, notification_version(when, emitted) if when else 0)
        return [C.server_delete(uuid, version, _time(when))]
    changes = instance_changes(event, p, emitted)
    updates = [C.server_patch(uuid, version, changes)]
    if {"project_id", "user_id", "created_at", "flavor"} <= set(changes):
        # Full enough to create the server if the store does not know it.
        record = dict(changes, id=uuid)
        record.setdefault("image", None)
        updates.append(C.server_upsert(record, version))
    return updates


# -- flavors --------------------------------------------------------------------------------------

def _flavor(event: str, p: dict, emitted) -> list[dict]:
    fid = str(p["flavorid"])
    version = notification_version(emitted, emitted)
    if event == "flavor.delete":
        return [C.flavor_delete(fid, version)]
    f = _flavor_fields(p)
    f.update(rxtx_factor=p.get("rxtx_factor", 1.0), is_public=bool(p.get("is_public", True)),
             disabled=bool(p.get("disabled")), description=p.get("description"),
             projects=sorted(p.get("projects") or []))
    return [C.flavor_upsert(f, version)]


# -- services (os-availability-zone) --------------------------------------------------------------

def _service(p: dict, emitted) -> list[dict]:
    """ServiceStatusPayload: the service as nova's API would list it under its zone.  Up is
    "not forced down" as of the notification (nova sends one when that or the state changes)."""
    binary = p.get("binary") or ""
    zone = p.get("availability_zone") or None
    version = notification_version(p.get("updated_at") or emitted, emitted)
    return [C.service_upsert({"host": p["host"], "binary": binary, "zone": zone,
                              "disabled": bool(p.get("disabled")),
                              "disabled_reason": p.get("disabled_reason"),
                              "forced_down": bool(p.get("forced_down")),
                              "up": not p.get("forced_down"),
                              "updated_at": _time(p.get("last_seen_up") or emitted)}, version)]
