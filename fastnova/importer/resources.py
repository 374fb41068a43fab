"""import-nova for the everyday API's resources (fastnova.resources): key pairs, server groups
(with policy, rules and members), quotas (per project and per user), services with their zones,
and every cell's instance actions with their events.

Written into the new store with the same doors the API and the feed use (keypairs key,
server_groups keys, quota keys, services.put, actions.put_action), so an imported cloud answers
as its nova-api.  Actions and events stream (two cursors merge-joined on the action id); the
other tables are small and read whole.
"""
from __future__ import annotations

import datetime as _dt

import orjson

from fastnova.importer.mapping import HOST_UP, host_status
from fastnova.resources import actions, keypairs, server_groups, services
from fastnova.resources import common as C
from fastnova.commands import quota

KEY_PAIRS = """
SELECT id, name, user_id, fingerprint, public_key, type, created_at
  FROM key_pairs ORDER BY id"""
GROUPS = """
SELECT g.id, g.uuid, g.name, g.user_id, g.project_id, g.created_at, p.policy, p.rules
  FROM instance_groups g LEFT JOIN instance_group_policy p ON p.group_id = g.id
 ORDER BY g.id"""
GROUP_MEMBERS = "SELECT group_id, instance_uuid FROM instance_group_member ORDER BY group_id, id"
QUOTAS = "SELECT project_id, resource, hard_limit FROM quotas ORDER BY id"
USER_QUOTAS = """
SELECT project_id, user_id, resource, hard_limit FROM project_user_quotas ORDER BY id"""
SERVICES = """
SELECT host, {binary}, disabled, disabled_reason, forced_down, last_seen_up, updated_at,
       created_at, version FROM services WHERE deleted = 0 ORDER BY id"""
ACTIONS = """
SELECT id, action, instance_uuid, request_id, user_id, project_id, start_time, finish_time,
       message, created_at, updated_at FROM instance_actions WHERE deleted = 0 ORDER BY id"""
EVENTS = """
SELECT action_id, event, start_time, finish_time, result, traceback, host, details
  FROM instance_actions_events WHERE deleted = 0 ORDER BY action_id, id"""


def _t(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return str(value)


def write_api_resources(api, nb) -> dict:
    """Key pairs, server groups and quotas from the API database, in one store batch."""
    counts = {"key_pairs": 0, "server_groups": 0, "quotas": 0}
    for row in api.stream(KEY_PAIRS):
        C.put_json(nb, keypairs.key(row["user_id"], row["name"]), {
            "name": row["name"], "user_id": row["user_id"], "type": row["type"] or "ssh",
            "public_key": row["public_key"], "fingerprint": row["fingerprint"],
            "created_at": _t(row["created_at"]), "updated_at": None, "deleted": False,
            "deleted_at": None, "id": row["id"]})
        counts["key_pairs"] += 1
    members: dict = {}
    for row in api.stream(GROUP_MEMBERS):
        members.setdefault(row["group_id"], []).append(row["instance_uuid"])
    seen = set()
    for row in api.stream(GROUPS):
        if row["id"] in seen:          # one policy row per group since Rocky; keep the first
            continue
        seen.add(row["id"])
        _put_group(nb, row, members.get(row["id"], []))
        counts["server_groups"] += 1
    for row in api.stream(QUOTAS):
        if row["project_id"]:
            _merge(nb, quota.project_key(row["project_id"]), row)
            counts["quotas"] += 1
    for row in api.stream(USER_QUOTAS):
        _merge(nb, C.fit(quota.META_USER_QUOTA + row["project_id"].encode() + C.SEP
                         + row["user_id"].encode()), row)
        counts["quotas"] += 1
    seq = max(seen, default=0)
    nb.set_meta(b"seq:sgroup", b"%d" % seq)
    return counts


def _put_group(nb, row, members):
    rules = orjson.loads(row["rules"]) if row.get("rules") else {}
    group = {"id": row["uuid"], "name": row["name"], "policy": row["policy"] or "",
             "rules": {k: int(v) if str(v).isdigit() else v for k, v in rules.items()},
             "members": members, "project_id": row["project_id"], "user_id": row["user_id"],
             "created_at": _t(row["created_at"]), "seq": row["id"]}
    seq = row["id"].to_bytes(8, "big")
    C.put_json(nb, server_groups.group_key(row["uuid"]), group)
    nb.set_meta(server_groups.BY_PROJECT + (row["project_id"] or "").encode() + C.SEP + seq,
                row["uuid"].encode())
    nb.set_meta(server_groups.ALL + seq, row["uuid"].encode())


def _merge(nb, key: bytes, row):
    raw = nb.get_meta(key)
    held = orjson.loads(raw) if raw else {}
    held[row["resource"]] = row["hard_limit"] if row["hard_limit"] is not None else -1
    nb.set_meta(key, orjson.dumps(held))


def write_services(cell_db, nb, ctx) -> int:
    """A cell's services, each with its zone resolved and whether it was up at import time."""
    settings = ctx.settings
    count = 0
    for row in cell_db.stream(SERVICES):
        binary = row["binary"] or ""
        if binary == "nova-compute":
            zone = ctx.host_az.get(row["host"]) or settings.default_availability_zone
        else:
            zone = services.INTERNAL
        # nova's DB servicegroup driver: up when not forced down and its last heartbeat is
        # within service_down_time (disabled or not), as of the import
        up = host_status(dict(row, disabled=False), ctx.now,
                         settings.service_down_time) == HOST_UP
        services.put(nb, {"host": row["host"], "binary": binary, "zone": zone,
                          "disabled": bool(row["disabled"]),
                          "disabled_reason": row["disabled_reason"],
                          "forced_down": bool(row["forced_down"]), "up": up,
                          "updated_at": _t(row["updated_at"]), "version": 0})
        count += 1
    return count


def write_actions(cell_db, writer, batch: int = 2000) -> int:
    """A cell's instance actions with their events: two streams merge-joined on action id,
    written ``batch`` at a time."""
    events = iter(cell_db.stream(EVENTS))
    head = next(events, None)
    pending, count = [], 0
    for row in cell_db.stream(ACTIONS):
        evs = []
        while head is not None and head["action_id"] < row["id"]:
            head = next(events, None)
        while head is not None and head["action_id"] == row["id"]:
            evs.append({"event": head["event"], "start_time": _t(head["start_time"]),
                        "finish_time": _t(head["finish_time"]), "result": head["result"],
                        "traceback": head["traceback"], "host": head["host"],
                        "details": head["details"]})
            head = next(events, None)
        start = _t(row["start_time"] or row["created_at"])
        pending.append({"action": row["action"], "instance_uuid": row["instance_uuid"],
                        "request_id": row["request_id"] or "req-%d" % row["id"],
                        "user_id": row["user_id"], "project_id": row["project_id"],
                        "start_time": start, "message": row["message"],
                        "updated_at": _t(row["updated_at"]) or start, "events": evs})
        if len(pending) >= batch:
            count += _flush(writer, pending)
            pending = []
    return count + _flush(writer, pending)


def _flush(writer, docs) -> int:
    if docs:
        with writer.batch() as nb:
            for doc in docs:
                actions.put_action(nb, doc)
    return len(docs)
