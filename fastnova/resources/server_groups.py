"""os-server-groups: create, list (limit/offset), show, delete; ``policies`` before 2.64,
``policy`` and ``rules`` from it; quota; members filled by creates with the ``group`` hint.

A group is ``sgroup:<uuid>`` in the meta database; ``sgproj:<project> NUL <seq>`` and
``sgall:<seq>`` list it in nova's order (creation, the table's id), so a page walks at most
offset + limit keys.  Members are the group's own list (deleted servers are dropped from the
documents when shown, as nova drops them).
"""
from __future__ import annotations

import uuid as uuidlib

import orjson

from fastnova.api import errors
from fastnova.api.query import MAX_LIMIT
from fastnova.commands import common as cmd, quota, runtime
from fastnova.commands.schemas import NAME, _obj, _wrap
from fastnova.commands.validation import by_minor
from fastnova.resources import common as C

RULE = "os_compute_api:os-server-groups:%s"
GROUP = b"sgroup:"
BY_PROJECT = b"sgproj:"
ALL = b"sgall:"
_POLICIES = ["anti-affinity", "affinity"]
_POLICIES_215 = _POLICIES + ["soft-anti-affinity", "soft-affinity"]
_POSITIVE = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1,
             "minLength": 1}


def _schema(minor: int) -> dict:
    props = {"name": NAME}
    if minor < 64:
        props["policies"] = {"type": "array", "prefixItems": [
            {"type": "string", "enum": _POLICIES if minor < 15 else _POLICIES_215}],
            "uniqueItems": True, "minItems": 1, "maxItems": 1}
        required = ["name", "policies"]
    else:
        props["policy"] = {"type": "string", "enum": _POLICIES_215}
        props["rules"] = _obj({"max_server_per_host": _POSITIVE})
        required = ["name", "policy"]
    return _wrap("server_group", _obj(props, required=required))


CREATE = by_minor([(lo, hi, _schema(lo)) for lo, hi in ((0, 14), (15, 63), (64, 255))])


def group_key(uuid: str) -> bytes:
    return GROUP + uuid.encode()


def _seq(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _not_found(uuid):
    return errors.not_found("Instance group %s could not be found." % uuid)


def load(rt, txn, uuid: str) -> dict | None:
    return C.get_json(rt, txn, group_key(uuid))


def _view(rt, txn, group: dict, minor: int) -> dict:
    out = {"id": group["id"], "name": group["name"]}
    if minor >= 64:
        out["policy"] = group["policy"]
        out["rules"] = group.get("rules") or {}
    else:
        out["policies"] = [group["policy"]]
        out["metadata"] = {}
    records = rt.reader.dbs[C.L.DB_RECORDS]
    members = []
    for uuid in group.get("members") or ():
        raw = txn.get(uuid.encode(), db=records)
        if raw is not None and not orjson.loads(raw).get("deleted"):
            members.append(uuid)
    out["members"] = members
    if minor >= 13:
        out["project_id"] = group["project_id"]
        out["user_id"] = group["user_id"]
    return out


# -- handlers ----------------------------------------------------------------------------------

async def create(app, req, ctx, minor, args, links):
    ctx.authorize(RULE % "create")          # nova's target: the caller's project and user
    rt = runtime.get(app)
    body = cmd.parse_body(req)
    CREATE[minor].check(body)
    vals = body["server_group"]
    if minor >= 64:
        policy, rules = vals["policy"], vals.get("rules", {})
        if policy != "anti-affinity" and rules:
            raise errors.bad_request("Only anti-affinity policy supports rules.")
        rules = {k: int(v) for k, v in rules.items()}
    else:
        policy, rules = vals["policies"][0], {}
    group = {"id": str(uuidlib.uuid4()), "name": vals["name"], "policy": policy,
             "rules": rules, "members": [], "project_id": ctx.project_id,
             "user_id": ctx.user_id, "created_at": cmd.now()}
    with rt.begin() as txn:
        allowed = quota.limits(rt, txn, ctx.project_id).get("server_groups", -1)

    def change(b):
        db = b.dbs[C.L.DB_META]
        prefix = BY_PROJECT + ctx.project_id.encode() + C.SEP
        if allowed >= 0 and C.count_in(b.txn, db, prefix) + 1 > allowed:
            raise errors.fault(403, "Quota exceeded, too many server groups.")
        seq = C.next_id(b, b"sgroup")
        group["seq"] = seq
        C.put_json(b, group_key(group["id"]), group)
        b.set_meta(prefix + _seq(seq), group["id"].encode())
        b.set_meta(ALL + _seq(seq), group["id"].encode())
    await rt.write(change)
    with rt.begin() as txn:
        doc = _view(rt, txn, group, minor)
    return 200, orjson.dumps({"server_group": doc})


async def show(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    C.reject_unknown(C.query(req), (), minor, since=102)
    with rt.begin() as txn:
        group = load(rt, txn, args[0])
        if group is None:
            raise _not_found(args[0])
        _check(ctx, group, "show")
        doc = _view(rt, txn, group, minor)
    return 200, orjson.dumps({"server_group": doc})


def _check(ctx, group, action):
    """nova's ``context.can(rule, target={group's project and user})``: 403 with its body."""
    ctx.authorize(RULE % action, group["project_id"], group.get("user_id"))


async def delete(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    uuid = args[0]

    def change(b):
        raw = b.get_meta(group_key(uuid))
        if raw is None:
            raise _not_found(uuid)
        group = orjson.loads(raw)
        _check(ctx, group, "delete")
        C.delete(b, group_key(uuid))
        C.delete(b, BY_PROJECT + group["project_id"].encode() + C.SEP + _seq(group["seq"]))
        C.delete(b, ALL + _seq(group["seq"]))
        _leave(b, uuid, group.get("members") or ())
    await rt.write(change)
    return 204, b""


def _leave(b, uuid: str, members):
    """The members' documents stop showing the group (2.71 server_groups), as nova's, which
    reads the membership that the group's deletion removed; same transaction."""
    for member in members:
        cur = b.get_record(member)
        if cur is None or cur.get("deleted") or uuid not in (cur.get("server_groups") or ()):
            continue
        kept = [g for g in cur["server_groups"] if g != uuid]
        b.patch_server(member, cmd.next_version(cur.get("version", 0)), {"server_groups": kept})


async def index(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    q = C.query(req)
    C.reject_unknown(q, ("all_projects", "limit", "offset"), minor)
    limit, offset = _int(q, "limit", MAX_LIMIT), _int(q, "offset", 0)
    limit = min(limit or MAX_LIMIT, MAX_LIMIT)
    ctx.authorize(RULE % "index")
    if "all_projects" in q.last and ctx.can(RULE % "index:all_projects"):
        prefix = ALL
    else:
        prefix = BY_PROJECT + ctx.project_id.encode() + C.SEP
    with rt.begin() as txn:
        rows = C.walk(rt, txn, prefix, None, offset + limit)[offset:]
        groups = [load(rt, txn, v.decode()) for _k, v in rows]
        docs = [_view(rt, txn, g, minor) for g in groups if g is not None]
    return 200, orjson.dumps({"server_groups": docs})


def _int(q, name, default):
    values = q.getall(name)
    if not values:
        return default
    value = values[-1]
    if not value.isdigit():
        raise errors.bad_request("Invalid input for query parameters %s. Value: %s. '%s' does "
                                 "not match '^[0-9]*$'" % (name, value, value))
    return int(value)


# -- membership, from POST /servers with the "group" scheduler hint ---------------------------

def check_hint(rt, txn, hints: dict, count: int, project_id: str) -> str | None:
    """The group a create names (400 when it does not exist; 403 over server_group_members)."""
    uuid = (hints or {}).get("group")
    if not uuid:
        return None
    if isinstance(uuid, list):
        uuid = uuid[0]
    group = load(rt, txn, str(uuid))
    if group is None:
        raise errors.bad_request("Instance group %s could not be found." % uuid)
    allowed = quota.limits(rt, txn, project_id).get("server_group_members", -1)
    if allowed >= 0 and len(group.get("members") or ()) + count > allowed:
        raise errors.fault(403, "Quota exceeded, too many servers in group")
    return group["id"]


def add_members(b, uuid: str, members: list[str]):
    """In the create's store write: the new servers join the group."""
    raw = b.get_meta(group_key(uuid))
    if raw is None:
        return
    group = orjson.loads(raw)
    group["members"] = list(group.get("members") or ()) + list(members)
    C.put_json(b, group_key(uuid), group)
