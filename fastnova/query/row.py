"""The query row: a server's fields as nova's ``instances`` table holds them, for filters and sorts.

The writer stores one per server (``qrows``, ~300 bytes of orjson) beside the full record, so a
filter that the indexes cannot answer parses a small row instead of the whole record.  Keys are
nova's column names, so the filter and sort code reads like nova's DB API:

    display_name, display_description, image_ref ("" when booted from volume, as nova stores
    it), instance_type_id (the flavor's flavorid: fastnova keeps the instance's own flavor copy,
    not nova's internal flavor row id), auto_disk_config (bool), ips4/ips6 (fixed addresses by
    IP version, what nova's ``ip``/``ip6`` filters read), ca/ua (micros of created_at and of
    updated_at, which is created_at while the record has none).

A deleted server's row has no tags: nova's instance_destroy deletes the tag rows.
"""
from __future__ import annotations

import datetime as _dt

import orjson

from fastnova._ext import compiled

_EPOCH = _dt.datetime(1970, 1, 1)
_SECOND = _dt.timedelta(seconds=1)


def micros_pure(value: str | None) -> int:
    """Microseconds since the epoch of a canonical (naive UTC) time; 0 for None.

    record.time_micros via strptime cost a third of the writer's time; fromisoformat is C."""
    if not value:
        return 0
    delta = _dt.datetime.fromisoformat(value) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


micros = micros_pure

_COPIED = ("project_id", "user_id", "host", "node", "vm_state", "task_state", "power_state",
           "launched_at", "terminated_at", "created_at", "availability_zone", "key_name",
           "config_drive", "locked", "hostname", "reservation_id", "launch_index", "kernel_id",
           "ramdisk_id", "root_device_name", "progress", "deleted", "seq")


def build_pure(rec: dict) -> dict:
    """The query row of a normalized canonical record; twin of fastnova/_ext/_rows.pyx
    ``build_row``."""
    row = {key: rec.get(key) for key in _COPIED}
    row["uuid"] = rec["id"]
    row["display_name"] = rec.get("name")
    row["display_description"] = rec.get("description")
    image = rec.get("image")
    row["image_ref"] = image.get("id", "") if image else ""
    row["instance_type_id"] = str((rec.get("flavor") or {}).get("id", ""))
    row["updated_at"] = rec.get("updated_at") or rec["created_at"]
    row["access_ip_v4"] = rec.get("access_ip_v4") or None
    row["access_ip_v6"] = rec.get("access_ip_v6") or None
    row["auto_disk_config"] = rec.get("disk_config") == "AUTO"
    row["locked_by"] = rec.get("locked_by")
    row["tags"] = [] if rec.get("deleted") else list(rec.get("tags") or ())
    ips4, ips6 = [], []
    for addrs in (rec.get("addresses") or {}).values():
        for addr in addrs:
            if addr.get("type", "fixed") != "fixed" or not addr.get("addr"):
                continue
            (ips6 if addr.get("version") == 6 else ips4).append(addr["addr"])
    row["ips4"], row["ips6"] = ips4, ips6
    row["ca"] = micros(rec["created_at"])
    row["ua"] = micros(row["updated_at"])
    return row


# Fields a row copies as they are (and updated_at): a patch of only these changes only them.
_PLAIN = (frozenset(_COPIED) - {"created_at", "deleted"}) | {"updated_at"}


def update(row: dict, rec: dict, changed) -> dict:
    """The query row of ``rec``, given the ``row`` of a record that differs from it only in the
    fields ``changed``: equal to ``build(rec)``, without rebuilding what did not change."""
    if not _PLAIN.issuperset(changed):
        return build(rec)
    out = dict(row)
    for key in changed:
        if key == "updated_at":
            out["updated_at"] = rec["updated_at"] or rec["created_at"]
            out["ua"] = micros(out["updated_at"])
        else:
            out[key] = rec.get(key)
    return out


def dumps(row: dict) -> bytes:
    return orjson.dumps(row)


loads = orjson.loads

# The compiled twin unless the pure one is chosen (fastnova._ext.compiled decides).
build = build_pure
if compiled("_rows", "build_row") is not None:
    build = compiled("_rows", "build_row")
    micros = compiled("_rows", "micros")  # noqa: F811
