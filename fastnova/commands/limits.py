"""GET /limits: the project's absolute limits and usage, shaped per microversion as nova does."""
from __future__ import annotations

import orjson

from fastnova.api.query import Query
from fastnova.commands import quota, runtime

_NAMES = (("ram", ("maxTotalRAMSize",)), ("instances", ("maxTotalInstances",)),
          ("cores", ("maxTotalCores",)), ("key_pairs", ("maxTotalKeypairs",)),
          ("floating_ips", ("maxTotalFloatingIps",)),
          ("metadata_items", ("maxServerMeta", "maxImageMeta")),
          ("injected_files", ("maxPersonality",)),
          ("injected_file_content_bytes", ("maxPersonalitySize",)),
          ("security_groups", ("maxSecurityGroups",)),
          ("security_group_rules", ("maxSecurityGroupRules",)),
          ("server_groups", ("maxServerGroups",)),
          ("server_group_members", ("maxServerGroupMembers",)))
_USED = (("totalRAMUsed", "ram"), ("totalCoresUsed", "cores"),
         ("totalInstancesUsed", "instances"), ("totalFloatingIpsUsed", "floating_ips"),
         ("totalSecurityGroupsUsed", "security_groups"),
         ("totalServerGroupsUsed", "server_groups"))
_NETWORK = ("floating_ips", "security_groups", "security_group_rules")


async def index(app, req, ctx, minor, route, links):
    rt = runtime.get(app)
    q = Query(req.query)
    project = ctx.project_id
    tenants = q.getall("tenant_id")
    tenant = tenants[-1] if tenants else None
    if tenant:
        ctx.authorize("os_compute_api:limits:other_project", tenant)
        project = tenant
    hidden = set(_NETWORK) if minor >= 36 else set()
    if minor >= 57:
        hidden |= {"injected_files", "injected_file_content_bytes"}
    with rt.begin() as txn:
        limits = quota.limits(rt, txn, project)
        used = quota.usage(rt, txn, project)
        from fastnova.resources import common as C, server_groups
        groups = C.count(rt, txn, server_groups.BY_PROJECT + project.encode() + C.SEP)
    used.update(floating_ips=0, security_groups=0, server_groups=groups)
    absolute = {}
    for res, names in _NAMES:
        if res in hidden or res not in limits:
            continue
        for name in names:
            if name == "maxImageMeta" and minor >= 39:
                continue
            absolute[name] = limits[res]
    for name, res in _USED:
        if res not in hidden:
            absolute[name] = used[res]
    return 200, orjson.dumps({"limits": {"rate": [], "absolute": absolute}})
