"""The canonical server record: the one shape every writer hands to the store.

Everything that feeds the store (the demo generator, the cell feed, the nova importer, commands)
produces this dict; the store renders the API documents from it at write time (fastnova.views) and
keeps it (as orjson) for filters, sorts and re-rendering.  It is denormalized on purpose: one record
holds all that nova-api would join from instances, instance_extra, info_cache, metadata, tags,
faults, mappings and services.

Times are naive UTC ISO strings with microseconds, as nova's database holds them:
``"2013-09-03T04:01:32.000000"``.  Absent values are ``None``.

Field               type                     nova source / API field
------------------  -----------------------  -------------------------------------------------------
id                  str (uuid)               instances.uuid / "id"
seq                 int                      instances.id: tie-break of nova's default order
version             int                      per-server version; grows with every change (the feed)
name                str                      display_name / "name"
project_id          str                      "tenant_id"
user_id             str                      "user_id"
created_at          str                      "created"
updated_at          str|None                 "updated" (created_at when None)
launched_at         str|None                 "OS-SRV-USG:launched_at"
terminated_at       str|None                 "OS-SRV-USG:terminated_at"
deleted_at          str|None                 set when deleted
deleted             bool                     soft-deleted row (kept as a tombstone)
vm_state            str                      "OS-EXT-STS:vm_state" (+ status mapping)
task_state          str|None                 "OS-EXT-STS:task_state"
power_state         int                      "OS-EXT-STS:power_state"
host                str|None                 "OS-EXT-SRV-ATTR:host", and hostId
node                str|None                 "OS-EXT-SRV-ATTR:hypervisor_hostname"
instance_name       str                      "OS-EXT-SRV-ATTR:instance_name"
hostname            str                      "OS-EXT-SRV-ATTR:hostname" (2.3 admin, 2.90 all)
reservation_id      str                      "OS-EXT-SRV-ATTR:reservation_id" (2.3)
launch_index        int                      "OS-EXT-SRV-ATTR:launch_index" (2.3)
kernel_id           str                      "OS-EXT-SRV-ATTR:kernel_id" (2.3)
ramdisk_id          str                      "OS-EXT-SRV-ATTR:ramdisk_id" (2.3)
root_device_name    str|None                 "OS-EXT-SRV-ATTR:root_device_name" (2.3)
user_data           str|None                 "OS-EXT-SRV-ATTR:user_data" (2.3, base64 text)
availability_zone   str|None                 "OS-EXT-AZ:availability_zone"
pinned_availability_zone str|None            "pinned_availability_zone" (2.96)
access_ip_v4        str                      "accessIPv4" ("" when unset)
access_ip_v6        str                      "accessIPv6" ("" when unset)
config_drive        str                      "config_drive" ("" or "True")
disk_config         str                      "OS-DCF:diskConfig" ("AUTO" | "MANUAL")
key_name            str|None                 "key_name"
description         str|None                 "description" (2.19)
locked              bool                     "locked" (2.9)
locked_reason       str|None                 "locked_reason" (2.73)
progress            int                      "progress" (shown for ACTIVE/BUILD/REBUILD/…)
metadata            dict[str,str]            "metadata"
tags                list[str]                "tags" (2.26)
addresses           dict[str, list[addr]]    "addresses"; addr = {"addr", "version", "type"
                                             ("fixed"|"floating"), "mac"}
flavor              dict                     {"id", "name", "vcpus", "ram", "disk", "ephemeral",
                                             "swap", "extra_specs"}: the instance's own copy
image               dict|None                {"id", "properties"}; None when booted from volume
security_groups     list[str]                "security_groups" (names)
volumes_attached    list[dict]               {"id", "delete_on_termination"}
host_status         str                      "host_status" (2.16, admin): UP|DOWN|MAINTENANCE|
                                             UNKNOWN|""
fault               dict|None                {"code", "message", "details", "created"}
server_groups       list[str]                "server_groups" (2.71, show only)
trusted_image_certificates list|None         "trusted_image_certificates" (2.63)
scheduler_hints     dict                     "scheduler_hints" (2.100)
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any

# Defaults for every field a writer may leave out.  Mutable defaults are copied by normalize().
DEFAULTS: dict[str, Any] = {
    "seq": 0,
    "version": 0,
    "name": "",
    "updated_at": None,
    "launched_at": None,
    "terminated_at": None,
    "deleted_at": None,
    "deleted": False,
    "vm_state": "building",
    "task_state": None,
    "power_state": 0,
    "host": None,
    "node": None,
    "instance_name": "",
    "hostname": "",
    "reservation_id": "",
    "launch_index": 0,
    "kernel_id": "",
    "ramdisk_id": "",
    "root_device_name": None,
    "user_data": None,
    "availability_zone": None,
    "pinned_availability_zone": None,
    "access_ip_v4": "",
    "access_ip_v6": "",
    "config_drive": "",
    "disk_config": "MANUAL",
    "key_name": None,
    "description": None,
    "locked": False,
    "locked_reason": None,
    "progress": 0,
    "metadata": {},
    "tags": [],
    "addresses": {},
    "image": None,
    "security_groups": [],
    "volumes_attached": [],
    "host_status": "",
    "fault": None,
    "server_groups": [],
    "trusted_image_certificates": None,
    "scheduler_hints": {},
}

REQUIRED = ("id", "project_id", "user_id", "created_at", "flavor")

FLAVOR_DEFAULTS: dict[str, Any] = {
    "name": "",
    "vcpus": 0,
    "ram": 0,
    "disk": 0,
    "ephemeral": 0,
    "swap": 0,
    "extra_specs": {},
}


class RecordError(ValueError):
    """A record is missing a required field or has one of the wrong type."""


def normalize(rec: dict) -> dict:
    """Return a complete record: defaults filled in, times in canonical form.

    The result is a new top-level dict, but nested values (metadata, addresses, …) are shared
    with ``rec``: writers hand over freshly decoded records, and a deep copy per update cost
    ~25 us on the feed's path.  Defaults that are containers are copied, so no record ever
    shares a default.
    """
    missing = [k for k in REQUIRED if not rec.get(k)]
    if missing:
        raise RecordError("server record lacks " + ", ".join(missing))
    get = rec.get
    out = {key: get(key, default) for key, default in DEFAULTS.items()}
    for key in REQUIRED:
        out[key] = rec[key]
    for key in _MUTABLE_DEFAULTS:
        if out[key] is DEFAULTS[key]:
            out[key] = type(DEFAULTS[key])()
    out["flavor"] = _flavor(out["flavor"])
    for key in _TIMES:
        value = out[key]
        if value is not None and not (type(value) is str and _CANONICAL.match(value)):
            out[key] = canonical_time(value)
    return out


def merge(old: dict, changes: dict, version: int) -> tuple[dict, frozenset]:
    """A patch applied to a normalized record: ``normalize(dict(old, **changes))`` with
    ``version`` and ``old``'s id and seq, normalizing only the fields ``changes`` names
    (normalizing all of them cost a third of a feed patch).  Also returns the record fields the
    patch changes (the writer re-renders and re-indexes what reads them): a field a cell sends
    again with the value the record holds is left out.  Unknown fields are dropped."""
    if len(old) != len(_FIELDS):      # not a normalized record (it has been, so far, always)
        new = dict(old)
        new.update(changes)
        new["id"], new["version"], new["seq"] = old["id"], version, old["seq"]
        return normalize(new), _FIELDS
    new = dict(old)
    named = []
    for key, value in changes.items():
        kind = _KIND.get(key)
        if kind is None:            # unknown, or id/seq/version (the writer's to set)
            continue
        if kind:                    # one set lookup instead of five for most fields
            if key in _REQUIRED and not value:
                raise RecordError("server record lacks " + key)
            if key == "flavor":
                value = _flavor(value)
            elif key in _MUTABLE and value is DEFAULTS[key]:
                value = type(value)()
            elif key in _TIME_SET and value is not None and not (
                    type(value) is str and _CANONICAL.match(value)):
                value = canonical_time(value)
        held = new[key]
        if type(value) is type(held) and type(value) in _SAME_IF_EQUAL and value == held:
            continue
        new[key] = value
        named.append(key)
    new["version"] = version
    return new, frozenset(named)


def _flavor(value: dict) -> dict:
    flavor = dict(FLAVOR_DEFAULTS)
    flavor.update(value)
    flavor["id"] = str(flavor.get("id", ""))
    if flavor["extra_specs"] is FLAVOR_DEFAULTS["extra_specs"]:
        flavor["extra_specs"] = {}
    return flavor


_MUTABLE_DEFAULTS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, (dict, list)))
_TIMES = ("created_at", "updated_at", "launched_at", "terminated_at", "deleted_at")
_CANONICAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$")
_FIELDS = frozenset(DEFAULTS) | frozenset(REQUIRED)
_BOOKKEEPING = frozenset(("id", "seq", "version"))
_REQUIRED = frozenset(REQUIRED)
_MUTABLE = frozenset(_MUTABLE_DEFAULTS)
_TIME_SET = frozenset(_TIMES)
# merge's view of a field: None to drop, True to check (required, flavor, container, time),
# False to take as it is.
_KIND = {key: (key in _REQUIRED or key in _MUTABLE or key in _TIME_SET or key == "flavor")
         for key in _FIELDS - _BOOKKEEPING}
# Values that render the same whenever they are equal and of one type (a float is not: 0.0 ==
# -0.0; a container is not: {"a": 1} == {"a": True}).  A feed patch usually repeats some of them
# (the benchmark's {"vm_state": "active", ...} of an active server), and leaving them out spares
# the index diff and the view parts that read them.
_SAME_IF_EQUAL = frozenset((str, int, bool, type(None)))


def canonical_time(value) -> str:
    """Any ISO 8601 time (or datetime) as nova's naive-UTC form with microseconds."""
    if isinstance(value, _dt.datetime):
        when = value
    else:
        text = str(value).strip().replace(" ", "T")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            when = _dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise RecordError("not an ISO 8601 time: %r" % (value,)) from exc
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")


_EPOCH = _dt.datetime(1970, 1, 1)


def time_micros(value: str | None) -> int:
    """Microseconds since the epoch of a canonical time; 0 for None (sorts first)."""
    if not value:
        return 0
    when = _dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f")
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def isotime(value: str | None) -> str | None:
    """nova's ``utils.isotime``: seconds precision with a Z (the "created"/"updated" fields)."""
    if value is None:
        return None
    return value[:19] + "Z"
