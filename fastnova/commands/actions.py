"""POST /servers/{id}/action: the actions clients use most, with nova's state and lock rules.

Each entry: the state checks nova's compute API applies (check_instance_lock /
check_instance_state / check_instance_host), the task_state nova saves before it casts, and the
RPC method the cell receives.  A command answers 202 (confirmResize 204) with no body, except
rebuild and createImage (2.45+).
"""
from __future__ import annotations

import uuid as uuidlib

import orjson

from fastnova.api import errors
from fastnova.resources import console
from fastnova.commands import common, quota, runtime, schemas
from fastnova.commands.common import (ACTIVE, ALLOW_HARD_REBOOT, ALLOW_REBOOT_TASKS,
                                      ALLOW_SOFT_REBOOT, ERROR, PAUSED, RESIZED, STOPPED,
                                      SUSPENDED)
from fastnova.auth.nova_rules import ACTIONS as ACTION_RULES
from fastnova.commands.servers import server_doc
from fastnova.store.reader import get as reader_get

META_OLD_FLAVOR = b"old_flavor:"
META_LOCKED_BY = b"locked_by:"

# action -> (nova's name for it in 409 messages, vm_states allowed, task_states allowed,
#            lock checked, host required, task_state saved, cast)
_SIMPLE = {
    "os-start": ("start", (STOPPED,), (None,), True, True, "powering-on", "start_instance"),
    "os-stop": ("stop", (ACTIVE, ERROR), (None,), True, True, "powering-off", "stop_instance"),
    "pause": ("pause", (ACTIVE,), (None,), True, False, "pausing", "pause_instance"),
    "unpause": ("unpause", (PAUSED,), (None,), True, False, "unpausing", "unpause_instance"),
    "suspend": ("suspend", (ACTIVE,), (None,), True, False, "suspending", "suspend_instance"),
    "resume": ("resume", (SUSPENDED,), (None,), True, False, "resuming", "resume_instance"),
    "confirmResize": ("confirmResize", (RESIZED,), (None,), True, False, None,
                      "confirm_resize"),
    "revertResize": ("revertResize", (RESIZED,), (None,), True, False, "resize_reverting",
                     "revert_resize"),
}


async def action(app, req, ctx, minor, route, links):
    rt = runtime.get(app)
    body = common.parse_body(req)
    if not isinstance(body, dict) or len(body) != 1:
        raise errors.bad_request("Malformed request body")
    name = next(iter(body))
    handler = _HANDLERS.get(name)
    if handler is None:
        raise errors.bad_request("There is no such action: %s" % name)
    if name in _ACTION_NAMES:
        from fastnova.resources import actions as instance_actions
        instance_actions.start(req, ctx, _ACTION_NAMES[name])
    if handler is console.get_output:      # waits for the cell: no snapshot held meanwhile
        with rt.begin() as txn:
            rec = common.load(rt, txn, ctx, route.arg)
            ctx.authorize("os_compute_api:os-console-output", rec["project_id"])
            rt.check_outbox(txn)
        return await handler(rt, None, ctx, minor, links, rec, body)
    with rt.begin() as txn:
        rec = common.load(rt, txn, ctx, route.arg)
        ctx.authorize(ACTION_RULES[name], rec["project_id"])
        rt.check_outbox(txn)
        return await handler(rt, txn, ctx, minor, links, rec, body)


async def _simple(rt, txn, ctx, minor, links, rec, body):
    name = next(iter(body))
    schemas.SIMPLE[name][minor].check(body)
    label, vms, tasks, lock, host, task, method = _SIMPLE[name]
    txn.abort()
    if lock:
        common.check_lock(ctx, rec)
    common.check_state(rec, label, vms, tasks)
    if host:
        common.check_host(rec)
    changes = {"task_state": task} if task else {}
    if name == "os-stop":
        changes["progress"] = 0
    args = {}
    if name == "revertResize":
        with rt.begin() as rtxn:
            raw = rtxn.get(META_OLD_FLAVOR + rec["id"].encode(), db=rt.reader.dbs[b"meta"])
        args["old_flavor"] = orjson.loads(raw) if raw else None
    await common.change(rt, rec, changes, cast=(method, args),
                        expected={"task_state": rec["task_state"], "vm_state": rec["vm_state"]})
    return (204 if name == "confirmResize" else 202), b""


async def _reboot(rt, txn, ctx, minor, links, rec, body):
    schemas.REBOOT[minor].check(body)
    txn.abort()
    kind = body["reboot"]["type"].upper()
    common.check_lock(ctx, rec)
    if kind == "SOFT":
        common.check_state(rec, "reboot", ALLOW_SOFT_REBOOT, (None,))
        task = "rebooting"
    else:
        common.check_state(rec, "reboot", ALLOW_HARD_REBOOT, ALLOW_REBOOT_TASKS)
        task = "rebooting_hard"
    await common.change(rt, rec, {"task_state": task}, cast=("reboot_instance",
                                                            {"reboot_type": kind}),
                        expected={"task_state": rec["task_state"], "vm_state": rec["vm_state"]})
    return 202, b""


async def _lock(rt, txn, ctx, minor, links, rec, body):
    schemas.LOCK[minor].check(body)
    txn.abort()
    owner = rec["project_id"] == ctx.project_id
    if rec.get("locked") and owner:
        return 202, b""
    reason = None
    if minor >= 73 and body["lock"] is not None:
        reason = body["lock"].get("locked_reason")
    by = b"owner" if owner else b"admin"
    await _set_lock(rt, rec, {"locked": True, "locked_reason": reason}, by)
    return 202, b""


async def _unlock(rt, txn, ctx, minor, links, rec, body):
    schemas.UNLOCK[minor].check(body) if schemas.UNLOCK[minor] else None
    locked_by = txn.get(META_LOCKED_BY + rec["id"].encode(), db=rt.reader.dbs[b"meta"])
    txn.abort()
    expected = b"owner" if rec["project_id"] == ctx.project_id else b"admin"
    if locked_by and locked_by != expected:
        ctx.authorize("os_compute_api:os-lock-server:unlock:unlock_override", rec["project_id"])
    await _set_lock(rt, rec, {"locked": False, "locked_reason": None}, None)
    return 202, b""


async def _set_lock(rt, rec, changes, by):
    """Lock state is API-only (no cast); who locked it is kept beside the record.  The common
    path gives the row a new version: the upsert is guarded by version, so a row sent with the
    version the command read would be left as it was."""
    await common.change(rt, rec, changes, meta={META_LOCKED_BY + rec["id"].encode(): by or b""})


async def _resize(rt, txn, ctx, minor, links, rec, body):
    schemas.RESIZE[minor].check(body)
    fid = str(body["resize"]["flavorRef"])
    common.check_lock(ctx, rec)
    common.check_state(rec, "resize", (ACTIVE, STOPPED), (None,))
    common.check_host(rec)
    new = rt.reader.flavor_record(txn, common.id_from_href(fid).encode())
    old = rec["flavor"]
    if new is None or (new.get("disabled") and str(new["id"]) != str(old["id"])):
        raise errors.bad_request("Flavor %s could not be found." % fid)
    if str(new["id"]) == str(old["id"]):
        raise errors.bad_request("When resizing, instances must change flavor!")
    if new.get("disk", 0) == 0 and old.get("disk", 0) != 0 and rec.get("image"):
        raise errors.bad_request("Server disk was unable to be resized because: Resize to "
                                 "zero disk flavor is not allowed.")
    quota.check_delta(rt, txn, rec["project_id"],
                      {"cores": new.get("vcpus", 0) - old.get("vcpus", 0),
                       "ram": new.get("ram", 0) - old.get("ram", 0)})
    txn.abort()
    flavor = {k: new.get(k, 0) for k in ("vcpus", "ram", "disk", "ephemeral", "swap")}
    flavor.update(id=str(new["id"]), name=new.get("name", ""),
                  extra_specs=new.get("extra_specs") or {})
    changes = {"task_state": "resize_prep"}
    if "OS-DCF:diskConfig" in body["resize"]:
        changes["disk_config"] = body["resize"]["OS-DCF:diskConfig"]
    await common.change(rt, rec, changes, cast=("resize_instance",
                                                {"flavor": flavor, "old_flavor": old}),
                        expected={"task_state": None, "vm_state": rec["vm_state"]},
                        meta={META_OLD_FLAVOR + rec["id"].encode(): orjson.dumps(old)})
    return 202, b""


async def _rebuild(rt, txn, ctx, minor, links, rec, body):
    schemas.REBUILD[minor].check(body)
    args = body["rebuild"]
    from fastnova.commands.create import keypair_key
    if minor >= 54 and args.get("key_name") is not None and reader_get(
            txn, keypair_key(ctx.user_id, args["key_name"]), rt.reader.dbs[b"meta"]) is None:
        raise errors.bad_request("Invalid key_name provided.")
    if "metadata" in args:
        quota.check_metadata(rt, txn, rec["project_id"], args["metadata"])
    txn.abort()
    common.check_lock(ctx, rec)
    common.check_state(rec, "rebuild", (ACTIVE, STOPPED, ERROR), (None,))
    password = common.admin_password(args)
    changes = {"task_state": "rebuilding", "image": {"id": args["imageRef"], "properties": {}}}
    for field, key in (("name", "name"), ("metadata", "metadata"),
                       ("access_ip_v4", "accessIPv4"), ("access_ip_v6", "accessIPv6"),
                       ("disk_config", "OS-DCF:diskConfig"), ("description", "description"),
                       ("hostname", "hostname"), ("user_data", "user_data"),
                       ("trusted_image_certificates", "trusted_image_certificates")):
        if key in args:
            changes[field] = args[key].strip() if field == "name" else args[key]
    if minor >= 54 and "key_name" in args:
        changes["key_name"] = args["key_name"]
    await common.change(rt, rec, changes, cast=("rebuild_instance",
                                                {"image_ref": args["imageRef"]}),
                        expected={"task_state": None, "vm_state": rec["vm_state"]})
    extra = {}
    if rt.cfg.enable_instance_password:
        extra["adminPass"] = password
    if minor >= 57:
        extra["user_data"] = changes.get("user_data", rec.get("user_data"))
    doc = server_doc(rt, ctx, minor, links, rec["id"], extra)
    if 54 > minor or minor >= 75:
        pass
    elif b'"key_name"' not in doc:
        data = orjson.loads(doc)
        data["key_name"] = changes.get("key_name", rec.get("key_name"))
        doc = orjson.dumps(data)
    loc = b"Location: " + common.self_href(links, rec["id"]).encode() + b"\r\n"
    return 202, b'{"server":' + doc + b"}", loc


async def _create_image(rt, txn, ctx, minor, links, rec, body):
    schemas.CREATE_IMAGE[minor].check(body)
    txn.abort()
    # nova does not check the lock for snapshots (a locked server can still be backed up).
    common.check_state(rec, "createImage", (ACTIVE, STOPPED, PAUSED, SUSPENDED), (None,))
    image_id = str(uuidlib.uuid4())
    entity = body["createImage"]
    await common.change(rt, rec, {"task_state": "image_snapshot_pending"},
                        cast=("snapshot_instance", {"image_id": image_id,
                                                    "name": entity["name"].strip(),
                                                    "metadata": entity.get("metadata", {})}),
                        expected={"task_state": None, "vm_state": rec["vm_state"]})
    if minor >= 45:
        return 202, orjson.dumps({"image_id": image_id})
    href = links.root.decode() + "/images/" + image_id
    return 202, b"", b"Location: " + href.encode() + b"\r\n"


_HANDLERS = {name: _simple for name in _SIMPLE}
_HANDLERS["os-getConsoleOutput"] = console.get_output   # a call to the cell, not a cast
# The instance action each one records (nova/compute/instance_actions.py).
_ACTION_NAMES = {"reboot": "reboot", "os-start": "start", "os-stop": "stop", "pause": "pause",
                 "unpause": "unpause", "suspend": "suspend", "resume": "resume",
                 "resize": "resize", "confirmResize": "confirmResize",
                 "revertResize": "revertResize", "rebuild": "rebuild",
                 "createImage": "createImage", "lock": "lock", "unlock": "unlock"}
_HANDLERS.update({"reboot": _reboot, "lock": _lock, "unlock": _unlock, "resize": _resize,
                  "rebuild": _rebuild, "createImage": _create_image})


def handles(body: bytes) -> bool:
    """Does fastnova take this action itself?  An action it does not know (migrate, shelve, …)
    goes to the upstream nova-api when there is one; without one it gets nova's 400 "There is
    no such action".  os-getConsoleOutput goes upstream too when there is one (nova's cells
    have the consoles); without one the embedded or broker cell answers it (issue 20).  A body
    that is not one action is ours to refuse."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return True
    if not isinstance(doc, dict) or len(doc) != 1:
        return True
    name = next(iter(doc))
    return name in _HANDLERS and name not in _UPSTREAM_FIRST


# Actions fastnova answers only without an upstream nova-api (issue 20: "with an upstream nova
# these are forwarded").
_UPSTREAM_FIRST = frozenset(("os-getConsoleOutput",))
