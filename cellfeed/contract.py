"""The cell-update message contract, version 1 (docs/cellfeed.md is the prose twin of this file).

A message body is UTF-8 JSON: one update object, or a JSON array of update objects applied in
order (a cell that batches its changes cuts the per-message cost of the broker and of pika, which
is ~90 µs a message on the reference machine; see docs/cellfeed.md).  Every update carries:

    "contract": 1                    this file's version; anything else is refused (dead-lettered)
    "kind":     one of KINDS
    "id":       server uuid or flavor id
    "version":  int >= 1, grows with every change of that server (or flavor)
    "sent_at":  optional float, unix seconds when the cell published it (lag measurement)

and, per kind:

    server.upsert   "server":  full canonical record (fastnova.record); its "id" must equal "id"
    server.patch    "changes": top-level record fields to replace (PATCHABLE)
    server.delete   "deleted_at": optional time
    flavor.upsert   "flavor":  flavor record with "id" equal to "id"
    flavor.delete   (nothing more)
    service.upsert  "service": {host, binary, zone, disabled, disabled_reason, forced_down, up,
                    updated_at}; "id" is "<host>/<binary>" (os-availability-zone)
    action.event    "event": {request_id, event, start_time, finish_time, result, host,
                    traceback, details}; "id" is the server uuid (os-instance-actions)
    call.reply      "reply": the answer to a call a command waits for (os-getConsoleOutput);
                    "id" is the call's id

``decode`` validates everything a store write could trip over, so a message that passes it can
always be applied; one that fails is poison and goes to the dead-letter queue with the reason.
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from fastnova.record import DEFAULTS, REQUIRED, RecordError, canonical_time, normalize

CONTRACT_VERSION = 1
CONTENT_TYPE = "application/json"

SERVER_UPSERT = "server.upsert"
SERVER_PATCH = "server.patch"
SERVER_DELETE = "server.delete"
FLAVOR_UPSERT = "flavor.upsert"
FLAVOR_DELETE = "flavor.delete"
SERVICE_UPSERT = "service.upsert"
ACTION_EVENT = "action.event"
CALL_REPLY = "call.reply"
KINDS = (SERVER_UPSERT, SERVER_PATCH, SERVER_DELETE, FLAVOR_UPSERT, FLAVOR_DELETE,
         SERVICE_UPSERT, ACTION_EVENT, CALL_REPLY)

# Fields a partial update may carry.  id/seq/version are the store's bookkeeping and "deleted"
# only changes through server.delete, so that a tombstone always has a version of its own.
PATCHABLE = ((frozenset(DEFAULTS) | frozenset(REQUIRED))
             - {"id", "seq", "version", "deleted", "deleted_at"})

_TIME_FIELDS = ("created_at", "updated_at", "launched_at", "terminated_at")
_FLAVOR_INTS = ("vcpus", "ram", "disk", "ephemeral", "swap")


class ContractError(ValueError):
    """The message is not a valid v1 cell update; str() is the reason logged and dead-lettered."""


# -- decoding -----------------------------------------------------------------------------------

def decode(body: bytes) -> list[dict]:
    """Parse and validate a message body into a list of updates ready for the applier."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ContractError("body is not JSON: %s" % exc) from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise ContractError("empty batch")
    out = []
    for index, item in enumerate(items):
        try:
            out.append(validate(item))
        except ContractError as exc:
            raise ContractError("update %d: %s" % (index, exc)) from None
    return out


def validate(item: Any) -> dict:
    """Check one update and return it with its payload normalized."""
    if not isinstance(item, dict):
        raise ContractError("update is not a JSON object")
    if item.get("contract") != CONTRACT_VERSION:
        raise ContractError("contract %r is not %d" % (item.get("contract"), CONTRACT_VERSION))
    kind = item.get("kind")
    check = _CHECKS.get(kind)
    if check is None:
        raise ContractError("unknown kind %r" % (kind,))
    _check_identity(item)
    try:
        return check(item)
    except (RecordError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ContractError):
            raise
        raise ContractError("%s %s: %s" % (kind, item["id"], exc)) from None


def _check_identity(item: dict):
    ident, version = item.get("id"), item.get("version")
    if not isinstance(ident, str) or not ident or len(ident) > 255:
        raise ContractError("id must be a non-empty string")
    # bool is an int subclass: true must not pass as version 1.
    if type(version) is not int or version < 1 or version >= 1 << 63:
        raise ContractError("version must be an integer >= 1")
    sent = item.get("sent_at")
    if sent is not None and not isinstance(sent, (int, float)):
        raise ContractError("sent_at must be a number")


def _check_upsert(item: dict) -> dict:
    server = item.get("server")
    if not isinstance(server, dict):
        raise ContractError("server.upsert needs a \"server\" object")
    if server.get("id", item["id"]) != item["id"]:
        raise ContractError("server.id %r differs from id %r" % (server.get("id"), item["id"]))
    record = normalize(dict(server, id=item["id"], version=item["version"]))
    _check_record_types(record)
    return dict(item, server=record)


def _check_patch(item: dict) -> dict:
    changes = item.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise ContractError("server.patch needs a non-empty \"changes\" object")
    unknown = sorted(set(changes) - PATCHABLE)
    if unknown:
        raise ContractError("fields not patchable: " + ", ".join(unknown))
    changes = dict(changes)
    for key in _TIME_FIELDS:
        if changes.get(key) is not None:
            changes[key] = canonical_time(changes[key])
    for key in ("project_id", "user_id", "created_at", "flavor"):
        if key in changes and not changes[key]:
            raise ContractError("%s cannot be emptied" % key)
    if "flavor" in changes and not isinstance(changes["flavor"], dict):
        raise ContractError("flavor must be an object")
    _check_record_types(changes)
    return dict(item, changes=changes)


def _check_delete(item: dict) -> dict:
    when = item.get("deleted_at")
    return dict(item, deleted_at=canonical_time(when) if when is not None else None)


def _check_flavor_upsert(item: dict) -> dict:
    flavor = item.get("flavor")
    if not isinstance(flavor, dict):
        raise ContractError("flavor.upsert needs a \"flavor\" object")
    if str(flavor.get("id", item["id"])) != item["id"]:
        raise ContractError("flavor.id %r differs from id %r" % (flavor.get("id"), item["id"]))
    for key in _FLAVOR_INTS:
        if key in flavor and type(flavor[key]) is not int:
            raise ContractError("flavor %s must be an integer" % key)
    if not isinstance(flavor.get("extra_specs", {}), dict):
        raise ContractError("flavor extra_specs must be an object")
    return dict(item, flavor=dict(flavor, id=item["id"]))


def _check_flavor_delete(item: dict) -> dict:
    return item


def _check_service(item: dict) -> dict:
    svc = item.get("service")
    if not isinstance(svc, dict):
        raise ContractError("service.upsert needs a \"service\" object")
    for field in ("host", "binary"):
        if not isinstance(svc.get(field), str) or not svc[field]:
            raise ContractError("service %s must be a non-empty string" % field)
    if svc.get("zone") is not None and not isinstance(svc["zone"], str):
        raise ContractError("service zone must be a string")
    when = svc.get("updated_at")
    svc = dict(svc, updated_at=canonical_time(when) if when is not None else None)
    return dict(item, service=svc)


def _check_event(item: dict) -> dict:
    event = item.get("event")
    if not isinstance(event, dict):
        raise ContractError("action.event needs an \"event\" object")
    for field in ("request_id", "event"):
        if not isinstance(event.get(field), str) or not event[field]:
            raise ContractError("event %s must be a non-empty string" % field)
    event = dict(event)
    for field in ("start_time", "finish_time"):
        if event.get(field) is not None:
            event[field] = canonical_time(event[field])
    return dict(item, event=event)


def _check_reply(item: dict) -> dict:
    if not isinstance(item.get("reply"), dict):
        raise ContractError("call.reply needs a \"reply\" object")
    return item


# Container types the views iterate over: a wrong type here would only fail at render time,
# after the message was acknowledged, so it is refused up front.
_CONTAINERS = {"metadata": dict, "tags": list, "addresses": dict, "security_groups": list,
               "volumes_attached": list, "server_groups": list, "scheduler_hints": dict}
_STRINGS = ("name", "project_id", "user_id", "vm_state")


def _check_record_types(fields: dict):
    for key, kind in _CONTAINERS.items():
        if key in fields and not isinstance(fields[key], kind):
            raise ContractError("%s must be %s" % (key, "an object" if kind is dict else "a list"))
    for key in _STRINGS:
        if key in fields and not isinstance(fields[key], str):
            raise ContractError("%s must be a string" % key)
    if "power_state" in fields and type(fields["power_state"]) is not int:
        raise ContractError("power_state must be an integer")


_CHECKS = {SERVER_UPSERT: _check_upsert, SERVER_PATCH: _check_patch,
           SERVER_DELETE: _check_delete, FLAVOR_UPSERT: _check_flavor_upsert,
           FLAVOR_DELETE: _check_flavor_delete, SERVICE_UPSERT: _check_service,
           ACTION_EVENT: _check_event, CALL_REPLY: _check_reply}


# -- encoding (what a cell calls) ---------------------------------------------------------------

def _envelope(kind: str, ident: str, version: int, **payload) -> dict:
    return dict(contract=CONTRACT_VERSION, kind=kind, id=ident, version=version,
                sent_at=time.time(), **payload)


def server_upsert(record: dict, version: int | None = None) -> dict:
    """A full-state update; version defaults to record["version"]."""
    version = record.get("version") if version is None else version
    return _envelope(SERVER_UPSERT, record["id"], version, server=record)


def server_patch(uuid: str, version: int, changes: dict) -> dict:
    return _envelope(SERVER_PATCH, uuid, version, changes=changes)


def server_delete(uuid: str, version: int, deleted_at: str | None = None) -> dict:
    return _envelope(SERVER_DELETE, uuid, version, deleted_at=deleted_at)


def flavor_upsert(flavor: dict, version: int) -> dict:
    return _envelope(FLAVOR_UPSERT, str(flavor["id"]), version, flavor=flavor)


def flavor_delete(flavorid: str, version: int) -> dict:
    return _envelope(FLAVOR_DELETE, str(flavorid), version)


def service_upsert(service: dict, version: int) -> dict:
    return _envelope(SERVICE_UPSERT, "%s/%s" % (service["host"], service["binary"]), version,
                     service=service)


def action_event(uuid: str, version: int, event: dict) -> dict:
    return _envelope(ACTION_EVENT, uuid, version, event=event)


def call_reply(call_id: str, version: int, reply: dict) -> dict:
    return _envelope(CALL_REPLY, call_id, version, reply=reply)


# -- the journal's form ---------------------------------------------------------------------------

# Set by the consumer on every update it journals, after validating it: an entry of that form is
# read back (cellfeed.applyproc, replay) without validating and normalizing it again (~20 us an
# update, a fifth of the applier's time).  A cell cannot forge it: the consumer journals only
# what it encoded itself, never a message's body.  A cellfeed that predates it validates the
# entry as an ordinary v1 batch (the field is ignored there), and so does this one for entries
# journaled before it.
JOURNALED = "journaled"


def encode_journal(updates: list[dict]) -> bytes:
    """A journal entry holding updates as ``decode`` returned them."""
    return orjson.dumps([dict(update, journaled=True) for update in updates])


def decode_journal(payload: bytes) -> list[dict]:
    """The updates of a journal entry: ``decode``'s result for the message it came from."""
    doc = orjson.loads(payload)
    if type(doc) is list and doc and all(type(u) is dict and u.get(JOURNALED) is True
                                         for u in doc):
        return doc
    return decode(payload)


def encode(updates: dict | list[dict]) -> bytes:
    """The message body for one update or a batch of them."""
    return orjson.dumps(updates)


def routing_key(updates: dict | list[dict]) -> str:
    """Routing key: the kind of a single update, "batch" for a list (consumers bind "#")."""
    if isinstance(updates, list):
        return "batch" if len(updates) != 1 else updates[0]["kind"]
    return updates["kind"]
