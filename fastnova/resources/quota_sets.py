"""os-quota-sets: show, /defaults, /detail for the project (or one of its users), and admin
update and delete, per project and per user.

The limits are the ones fastnova enforces (fastnova.commands.quota): the configured defaults
(``--quota``), a project's override (``quota:<project>``) and, over it, a user's
(``quotau:<project> NUL <user>``); usage is counted from the store as create counts it.
"""
from __future__ import annotations

import orjson

from fastnova.api import errors
from fastnova.commands import common as cmd, quota, runtime
from fastnova.commands.schemas import BOOLEAN, _obj, _wrap
from fastnova.commands.validation import by_minor
from fastnova.resources import common as C

RULE = "os_compute_api:os-quota-sets:%s"
USER = quota.META_USER_QUOTA
# nova's quota resources (nova/quota.py QUOTAS), in its order.
RESOURCES = ("cores", "injected_files", "injected_file_content_bytes",
             "injected_file_path_bytes", "instances", "key_pairs", "metadata_items", "ram",
             "server_groups", "server_group_members", "fixed_ips", "floating_ips",
             "security_groups", "security_group_rules")
_NETWORK = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
_FILES = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")
_BUILTIN = {"fixed_ips": -1, "injected_file_path_bytes": 255}
_QUOTA = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
          "maximum": 0x7FFFFFFF}


def hidden(minor: int) -> tuple:
    if minor >= 57:
        return _NETWORK + _FILES
    return _NETWORK if minor >= 36 else ()


def _update_schema(minor: int) -> dict:
    props = {r: _QUOTA for r in RESOURCES if r not in hidden(minor)}
    props["force"] = BOOLEAN
    return _wrap("quota_set", _obj(props))


UPDATE = by_minor([(lo, hi, _update_schema(lo)) for lo, hi in
                   ((0, 35), (36, 56), (57, 255))])


def user_key(project_id: str, user_id: str) -> bytes:
    return C.fit(USER + project_id.encode() + C.SEP + user_id.encode())


def defaults(rt) -> dict:
    return dict(_BUILTIN, **rt.cfg.quotas)


def limits(rt, txn, project_id: str, user_id: str | None = None) -> dict:
    out = dict(_BUILTIN, **quota.limits(rt, txn, project_id))
    if user_id:
        out.update(C.get_json(rt, txn, user_key(project_id, user_id)) or {})
    return out


def in_use(rt, txn, project_id: str, user_id: str) -> dict:
    used = dict.fromkeys(RESOURCES, 0)
    used.update(quota.usage(rt, txn, project_id))
    from fastnova.resources import keypairs, server_groups
    used["key_pairs"] = C.count(rt, txn, keypairs.PREFIX + user_id.encode() + C.SEP)
    used["server_groups"] = C.count(rt, txn, server_groups.BY_PROJECT + project_id.encode()
                                    + C.SEP)
    return used


def _format(values: dict, minor: int, project_id: str | None) -> bytes:
    out = {"id": project_id} if project_id is not None else {}
    skip = hidden(minor)
    for res in RESOURCES:
        if res not in skip and res in values:
            out[res] = values[res]
    return orjson.dumps({"quota_set": out})


def _user_param(q) -> str | None:
    values = q.getall("user_id")
    return values[0] if values else None


def _read_check(ctx, project_id, action):
    if not ctx.is_admin and project_id != ctx.project_id:
        raise C.forbidden(RULE % action)


# -- handlers ----------------------------------------------------------------------------------

async def show(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    q = C.query(req)
    C.reject_unknown(q, ("user_id",), minor)
    _read_check(ctx, args[0], "show")
    with rt.begin() as txn:
        values = limits(rt, txn, args[0], _user_param(q))
    return 200, _format(values, minor, args[0])


async def detail(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    q = C.query(req)
    C.reject_unknown(q, ("user_id",), minor)
    _read_check(ctx, args[0], "detail")
    user = _user_param(q)
    with rt.begin() as txn:
        values = limits(rt, txn, args[0], user)
        used = in_use(rt, txn, args[0], user or ctx.user_id)
    detail_ = {r: {"limit": v, "in_use": used.get(r, 0), "reserved": 0}
               for r, v in values.items()}
    return 200, _format(detail_, minor, args[0])


async def defaults_(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    return 200, _format(defaults(rt), minor, args[0])


async def update(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "update")
    rt = runtime.get(app)
    q = C.query(req)
    C.reject_unknown(q, ("user_id",), minor)
    body = cmd.parse_body(req)
    UPDATE[minor].check(body)
    project, user = args[0], _user_param(q)
    quota_set = body["quota_set"]
    force = str(quota_set.get("force", "False")).lower() in ("1", "t", "true", "on", "y",
                                                              "yes")
    wanted = {k: int(v) for k, v in quota_set.items()
              if k != "force" and (v or v == 0)}
    with rt.begin() as txn:
        current = limits(rt, txn, project)
        used = in_use(rt, txn, project, user or ctx.user_id)
    if not force:
        for res, value in wanted.items():
            maximum = current.get(res, -1) if user else -1
            _validate(res, value, used.get(res, 0), maximum)
    key = user_key(project, user) if user else quota.project_key(project)

    def change(b):
        raw = b.get_meta(key)
        held = orjson.loads(raw) if raw else {}
        held.update(wanted)
        b.set_meta(key, orjson.dumps(held))
    await rt.write(change)
    with rt.begin() as txn:
        values = limits(rt, txn, project, user)
    return 200, _format(values, minor, None)


def _validate(res, limit, minimum, maximum):
    def inf(value):
        return float("inf") if value == -1 else value
    if inf(limit) < inf(minimum):
        raise errors.bad_request("Quota limit %s for %s must be greater than or equal to "
                                 "already used and reserved %s." % (limit, res, minimum))
    if inf(limit) > inf(maximum):
        raise errors.bad_request("Quota limit %s for %s must be less than or equal to %s."
                                 % (limit, res, maximum))


async def delete(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "delete")
    rt = runtime.get(app)
    q = C.query(req)
    C.reject_unknown(q, ("user_id",), minor)
    project, user = args[0], _user_param(q)

    def change(b):
        if user:
            C.delete(b, user_key(project, user))
            return
        C.delete(b, quota.project_key(project))
        with b.txn.cursor(db=b.dbs[C.L.DB_META]) as cur:     # and its users' overrides
            prefix = USER + project.encode() + C.SEP
            while cur.set_range(prefix) and cur.key().startswith(prefix):
                cur.delete()
    await rt.write(change)
    return 202, b""
