"""Shared steps of every command: the body, the server, nova's state and lock checks, versions.

A command follows one path: parse the body -> validate it for the microversion -> read what it
needs from the store (one short read transaction, never across an await) -> check state, lock and
quota -> at most one PostgreSQL round trip -> one group-committed store write (record + cast)
-> answer.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time

import orjson

from fastnova.api import errors

LOG = logging.getLogger("fastnova.commands")

# nova's vm_states / task_states that the commands check (nova/compute/vm_states.py, task_states.py)
ACTIVE, BUILDING, PAUSED, SUSPENDED, STOPPED = "active", "building", "paused", "suspended", "stopped"
RESIZED, ERROR, RESCUED = "resized", "error", "rescued"
ALLOW_SOFT_REBOOT = (ACTIVE,)
ALLOW_HARD_REBOOT = (ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR)
ALLOW_REBOOT_TASKS = (None, "rebooting", "reboot_pending", "reboot_started", "resuming",
                      "rebooting_hard", "reboot_pending_hard", "reboot_started_hard",
                      "pausing", "unpausing", "suspending")
METADATA_STATES = (ACTIVE, PAUSED, SUSPENDED, STOPPED)

_JSON_TYPES = ("application/json", "application/vnd.openstack.compute+json")


def parse_body(req):
    """The request body as nova's wsgi layer sees it: None when empty, else decoded JSON."""
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype and ctype != "text/plain" and ctype not in _JSON_TYPES:
        raise errors.fault(415, "Unsupported Content-Type")
    if not req.body:
        return None
    try:
        return orjson.loads(req.body)
    except orjson.JSONDecodeError:
        raise errors.bad_request("Malformed request body") from None


def now() -> str:
    return _dt.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")


def next_version(old: int) -> int:
    """Versions are microseconds of wall time, and always grow: cells use the same clock, so a
    cell's update made after a command's write sorts after it (fastnova.outbound.simcell_embedded)."""
    return max(old + 1, time.time_ns() // 1000)


def load(rt, txn, ctx, uuid: str) -> dict:
    """The live record of a server the caller may act on, or nova's 404."""
    rec = rt.reader.record(txn, uuid.encode())
    if rec is None or rec.get("deleted") or "project_id" not in rec:
        raise errors.server_not_found(uuid)
    if not ctx.is_admin and rec["project_id"] != ctx.project_id:
        raise errors.server_not_found(uuid)
    return rec


def check_lock(ctx, rec):
    if rec.get("locked") and not ctx.is_admin:
        raise errors.fault(409, "Instance %s is locked" % rec["id"])


def check_state(rec, action: str, vm_states=None, task_states=(None,),
                must_have_launched=True):
    """nova's check_instance_state, answered as the API answers it (409 conflictingRequest)."""
    if vm_states is not None and rec["vm_state"] not in vm_states:
        conflict(action, rec["id"], "vm_state", rec["vm_state"])
    if task_states is not None and rec["task_state"] not in task_states:
        conflict(action, rec["id"], "task_state", rec["task_state"])
    if must_have_launched and not rec.get("launched_at"):
        conflict(action, rec["id"], "launched_at", rec.get("launched_at"))


def check_host(rec):
    if not rec.get("host"):
        raise errors.fault(409, "Instance %s is not ready" % rec["id"])


def conflict(action, uuid, attr, state):
    raise errors.fault(409, "Cannot '%s' instance %s while it is in %s %s"
                       % (action, uuid, attr, state))


def unchanged(expected: dict):
    """A recheck for the write transaction: the fields the command validated still hold.

    Between the read and the group commit another command (or a cell update) may have moved the
    server on; nova's equivalent is ``instance.save(expected_task_state=...)``.
    """
    def check(b, uuid: str) -> dict:
        cur = b.get_record(uuid)
        if cur is None or cur.get("deleted"):
            raise errors.server_not_found(uuid)
        for key, value in expected.items():
            if cur.get(key) != value:
                raise errors.fault(409, "Conflict updating instance %s. Expected: {'%s': %r}. "
                                        "Actual: {'%s': %r}" % (uuid, key, value, key,
                                                               cur.get(key)))
        return cur
    return check


def runtime_fault(name: str):
    from fastnova.commands.runtime import fault_point
    fault_point(name)


# nova's generate_password: 12 characters without look-alikes (0/O, 1/l/I).
_PASSWORD_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def admin_password(server: dict) -> str:
    if "adminPass" in server:
        return server["adminPass"]
    return random_text(_PASSWORD_ALPHABET, 12)


def random_text(alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly from ``alphabet`` (at most 256) by rejection
    sampling from one os.urandom call: secrets.choice makes a system call per character
    (17 us for a password, profiled at 7% of a create)."""
    import os
    size = len(alphabet)
    limit = 256 - 256 % size
    out = []
    while len(out) < length:
        out.extend(alphabet[b % size] for b in os.urandom(length * 2) if b < limit)
    return "".join(out[:length])


def id_from_href(href) -> str:
    """nova's get_id_from_href: the last path segment of a URL (or the value itself)."""
    from urllib.parse import urlsplit
    return urlsplit("%s" % href).path.split("/")[-1]


def self_href(links, uuid: str) -> str:
    return links.vroot.decode() + "/servers/" + uuid


def server_links(links, uuid: str) -> list:
    return [{"href": self_href(links, uuid), "rel": "self"},
            {"href": links.root.decode() + "/servers/" + uuid, "rel": "bookmark"}]


async def change(rt, rec: dict, changes: dict, cast: tuple | None = None,
                 expected: dict | None = None, delete: bool = False,
                 meta: dict | None = None) -> dict:
    """Apply a command's change to one server: PostgreSQL (one statement, when configured),
    then one group-committed store write holding the new record and the cast to its cell (with a
    cast and a forwarder, the two overlapped: fastnova.commands.runtime.write_with_db).

    ``cast`` is (nova RPC method, args).  ``expected`` are fields that must still hold at write
    time (else 409; on the serial path the row has committed by then: ``outrank`` and
    ``retract`` see that the refused change is never carried out).  ``delete`` removes the
    server at once (nova's local delete of a server no cell has yet).  Returns the record as
    written.
    """
    from fastnova.outbound import outbox
    uuid = rec["id"]
    when = now()
    fields = dict(changes, updated_at=when)
    new = dict(rec, **fields)
    new["version"] = next_version(rec.get("version", 0))
    if delete:
        new.update(deleted=True, vm_state="deleted", task_state=None, deleted_at=when,
                   terminated_at=rec.get("terminated_at") or when)
    from fastnova.resources import actions
    pending = actions.PENDING.get()     # read here: the write runs on the committer's thread
    cast_doc = None
    if cast is not None:
        cast_doc = outbox.make_cast(cast[0], new, cast[1], rt.cfg.api_host)
        cast_doc["request_id"] = actions.request_id()
    overlap = cast_doc is not None and rt.overlapped
    row_first = rt.db is not None and not overlap
    if row_first:
        await rt.db.save_server(new, cast_doc)
        runtime_fault("after_db_commit")
    recheck = unchanged(expected or {})
    keys = []
    refused = []

    def write(b):
        keys.clear()            # a group retried one by one runs this again
        refused.clear()
        try:
            cur = recheck(b, uuid)
        except errors.ApiError:
            if not row_first:
                raise
            cur = b.get_record(uuid)
            if cur is not None and cur.get("version") == new["version"]:
                return cur      # the recovery pass carried the command out (a slow write)
            refused.append(outrank(b, uuid, new["version"]))   # final with the refusal
            raise
        version = max(new["version"], cur.get("version", 0) + 1)
        if delete:
            b.delete_server(uuid, version, when)
            done = b.get_record(uuid)
        else:
            b.patch_server(uuid, version, fields)
            done = dict(cur, **fields, version=version)
        for key, value in (meta or {}).items():
            b.set_meta(key, value)
        actions.record(b, uuid, pending=pending)   # the command's instance action, same txn
        if cast_doc is not None:
            cast_doc["version"] = version
            cast_doc["instance"] = done
            keys.append(outbox.append(b, cast_doc))
        return done
    if not overlap:
        try:
            return await rt.write(write)
        except errors.ApiError:
            if refused:
                await retract(rt, refused[0], new["version"])
            raise
    cast_doc["db_version"] = new["version"]

    def undo(b, done) -> bool:
        """The statement failed: withdraw the cast and, unless something wrote the server
        since, put back the record the command read."""
        if not outbox.withdraw(b, [outbox.key(k) for k in keys]):
            return False
        cur = b.get_record(uuid)
        if cur is not None and cur.get("version") == done["version"]:
            b.upsert_server(dict(rec, version=done["version"] + 1))
        return True
    return await rt.write_with_db(write, lambda: rt.db.save_server(new, cast_doc), undo)


def outrank(b, uuid: str, version: int) -> dict | None:
    """The store's record of ``uuid`` raised to ``version`` if below it, otherwise unchanged.

    A command refused by its recheck after its row committed (the serial path) leaves a row of
    that version which the store will never have; fastnova.db.recover writes a row into the
    store only when it is newer than the store's record, so this makes the refusal final in the
    transaction that decided it (a worker killed before ``retract`` leaves nothing to redo).
    A tombstone stays one.  Returns the record as it now stands."""
    cur = b.get_record(uuid)
    if cur is not None and cur.get("version", 0) >= version:
        return cur
    if cur is None or cur.get("deleted"):
        b.delete_server(uuid, version, cur.get("deleted_at") if cur else None)
    else:
        b.patch_server(uuid, version, {})
    return b.get_record(uuid)


async def retract(rt, held: dict | None, version: int):
    """Put the store's record back in the row a refused command wrote (``version``), so the
    row shows no change the server never had and no pending cast.  Failure is only logged: the
    store already outranks the row (``outrank``) and the next command replaces it."""
    if held is None or "project_id" not in held:
        return
    try:
        await rt.db.retract_server(held, version)
    except Exception as exc:
        LOG.warning("could not take back the row of a refused command on %s (%s); the store "
                    "outranks it, so recovery leaves it alone", held["id"], exc)
