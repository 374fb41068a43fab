"""Quotas from the local store: limits (defaults, or a project's override) and usage.

Usage is counted as nova counts it since Pike (no reservations): the project's live servers, their
vCPUs and RAM, read from the store.  Cost is O(servers in the project), which
nova's default quota (10 instances) keeps small; the count is exact for what this host's store
holds (the live part of its ``ix`` index).  A project's override lives in the store's meta database (``quota:<project_id>`` -> JSON).
"""
from __future__ import annotations

import orjson

from fastnova.api import errors
from fastnova.store import layout as L
from fastnova.store.reader import get

META_QUOTA = b"quota:"
META_USER_QUOTA = b"quotau:"      # + project NUL user (fastnova.resources.quota_sets)


def project_key(project_id: str) -> bytes:
    from fastnova.resources.common import fit
    return fit(META_QUOTA + project_id.encode())


def limits(rt, txn, project_id: str) -> dict:
    out = dict(rt.cfg.quotas)
    raw = get(txn, project_key(project_id), rt.reader.dbs[L.DB_META])
    if raw:
        out.update(orjson.loads(raw))
    return out


def user_limits(rt, txn, project_id: str, user_id: str) -> dict | None:
    """A user's own override within the project (os-quota-sets ?user_id=), or None."""
    from fastnova.resources.common import fit
    raw = txn.get(fit(META_USER_QUOTA + project_id.encode() + b"\x00" + user_id.encode()),
                  db=rt.reader.dbs[L.DB_META])
    return orjson.loads(raw) if raw else None


def usage(rt, txn, project_id: str, user_id: str | None = None) -> dict:
    """Live servers, vCPUs and RAM of the project (of one of its users, given ``user_id``)."""
    instances = cores = ram = 0
    prefix = L.part_prefix(project_id.encode(), L.PART_LIVE)
    records = rt.reader.dbs[L.DB_RECORDS]
    with txn.cursor(db=rt.reader.dbs[L.DB_INDEX]) as cur:
        if cur.set_range(prefix):
            for key in cur.iternext(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                raw = txn.get(L.key_uuid(key), db=records)
                if raw is None:
                    continue
                rec = orjson.loads(raw)
                if user_id is not None and rec.get("user_id") != user_id:
                    continue
                flavor = rec.get("flavor") or {}
                instances += 1
                cores += flavor.get("vcpus", 0)
                ram += flavor.get("ram", 0)
    return {"instances": instances, "cores": cores, "ram": ram}


def check_create(rt, txn, project_id: str, flavor: dict, min_count: int, max_count: int,
                 user_id: str | None = None) -> int:
    """nova's check_num_instances_quota: how many to create (max_count, or fewer that fit),
    against the project's limits and, when the user has an override of their own, theirs."""
    allowed = _fit(rt, txn, project_id, limits(rt, txn, project_id), None, flavor, min_count,
                   max_count)
    mine = user_limits(rt, txn, project_id, user_id) if user_id else None
    if mine:
        allowed = _fit(rt, txn, project_id, dict(limits(rt, txn, project_id), **mine), user_id,
                       flavor, min_count, allowed)
    return allowed


def _fit(rt, txn, project_id, quotas, user_id, flavor, min_count, max_count) -> int:
    if all(quotas.get(res, -1) < 0 for res in ("instances", "cores", "ram")):
        return max_count                     # unlimited: nothing to count
    used = usage(rt, txn, project_id, user_id)
    vcpus, ram = flavor.get("vcpus", 0), flavor.get("ram", 0)
    allowed = max_count
    for res, per in (("instances", 1), ("cores", vcpus), ("ram", ram)):
        limit = quotas.get(res, -1)
        if limit < 0 or not per:
            continue
        allowed = min(allowed, (limit - used[res]) // per)
    if allowed >= max_count:
        return max_count
    if allowed >= min_count:
        return allowed
    requested = {"instances": max_count, "cores": max_count * vcpus, "ram": max_count * ram}
    overs = [res for res in ("cores", "instances", "ram")
             if quotas.get(res, -1) >= 0 and used[res] + requested[res] > quotas[res]]
    shown = dict(requested)
    if min_count != max_count:
        shown["instances"] = "%d-%d" % (min_count, max_count)
    raise over_quota(overs, shown, used, quotas)


def check_delta(rt, txn, project_id: str, deltas: dict):
    """Resize: the growth in cores/ram must fit (nova's _check_quota_for_upsize)."""
    quotas = limits(rt, txn, project_id)
    used = usage(rt, txn, project_id)
    overs = [res for res in ("cores", "ram") if deltas.get(res, 0) > 0
             and quotas.get(res, -1) >= 0 and used[res] + deltas[res] > quotas[res]]
    if overs:
        raise over_quota(overs, deltas, used, quotas)


def over_quota(overs, requested, used, quotas) -> errors.ApiError:
    join = ", ".join
    return errors.fault(403, "Quota exceeded for %s: Requested %s, but already used %s of %s %s"
                        % (join(overs), join(str(requested[r]) for r in overs),
                           join(str(used[r]) for r in overs),
                           join(str(quotas[r]) for r in overs), join(overs)))


def check_metadata(rt, txn, project_id: str, metadata: dict):
    allowed = limits(rt, txn, project_id).get("metadata_items", -1)
    if 0 <= allowed < len(metadata):
        raise errors.fault(403, "Maximum number of metadata items exceeds %d" % allowed)
