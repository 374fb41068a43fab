"""Routes of fastnova.resources: (method, path segments) -> (handler, path arguments).

The router asks ``match`` first for every path under a version; what it returns is answered by
``handler(app, req, ctx, minor, args, links)`` (a coroutine giving (status, body)).  Kept apart
from fastnova.api.router so each resource adds its routes here.
"""
from __future__ import annotations

import importlib

# (collection, sub-path shape, method) -> "module:function".  In shapes, "*" is one path
# argument; a literal matches itself.  Sub-paths of a server start after "servers/*".
_ROUTES = {
    ("os-keypairs", (), "GET"): "keypairs:index",
    ("os-keypairs", (), "POST"): "keypairs:create",
    ("os-keypairs", ("*",), "GET"): "keypairs:show",
    ("os-keypairs", ("*",), "DELETE"): "keypairs:delete",
    ("os-availability-zone", (), "GET"): "services:index",
    ("os-availability-zone", ("detail",), "GET"): "services:detail",
    ("servers", ("*", "ips"), "GET"): "ips:index",
    ("servers", ("*", "ips", "*"), "GET"): "ips:show",
    ("os-server-groups", (), "GET"): "server_groups:index",
    ("os-server-groups", (), "POST"): "server_groups:create",
    ("os-server-groups", ("*",), "GET"): "server_groups:show",
    ("os-server-groups", ("*",), "DELETE"): "server_groups:delete",
    ("servers", ("*", "os-instance-actions"), "GET"): "actions:index",
    ("servers", ("*", "os-instance-actions", "*"), "GET"): "actions:show",
    ("os-quota-sets", ("*",), "GET"): "quota_sets:show",
    ("os-quota-sets", ("*",), "PUT"): "quota_sets:update",
    ("os-quota-sets", ("*",), "DELETE"): "quota_sets:delete",
    ("os-quota-sets", ("*", "defaults"), "GET"): "quota_sets:defaults_",
    ("os-quota-sets", ("*", "detail"), "GET"): "quota_sets:detail",
    ("os-simple-tenant-usage", (), "GET"): "usage:index",
    ("os-simple-tenant-usage", ("*",), "GET"): "usage:show",
    ("flavors", (), "POST"): "flavors:create",
    ("flavors", ("*",), "PUT"): "flavors:update",
    ("flavors", ("*",), "DELETE"): "flavors:delete",
    ("flavors", ("*", "action"), "POST"): "flavors:action",
    ("flavors", ("*", "os-flavor-access"), "GET"): "flavors:access_index",
    ("flavors", ("*", "os-extra_specs"), "GET"): "extra_specs:index",
    ("flavors", ("*", "os-extra_specs"), "POST"): "extra_specs:create",
    ("flavors", ("*", "os-extra_specs", "*"), "GET"): "extra_specs:show",
    ("flavors", ("*", "os-extra_specs", "*"), "PUT"): "extra_specs:update",
    ("flavors", ("*", "os-extra_specs", "*"), "DELETE"): "extra_specs:delete",
}

_CACHE: dict = {}


def _resolve(target: str):
    fn = _CACHE.get(target)
    if fn is None:
        mod, name = target.split(":")
        fn = _CACHE[target] = getattr(importlib.import_module("fastnova.resources." + mod), name)
    return fn


def routes():
    return dict(_ROUTES)


def match(method: str, segs: list[str]):
    """(handler, args) for a path fastnova.resources answers; None otherwise."""
    head, rest = segs[0], segs[1:]
    for shape, verb, target in _BY_HEAD.get((head, len(rest)), ()):
        args = []
        for want, got in zip(shape, rest):
            if want == "*":
                args.append(got)
            elif want != got:
                break
        else:
            if verb == method:
                return _resolve(target), tuple(args)
    return None


def _by_head() -> dict:
    out: dict = {}
    for (coll, shape, verb), target in _ROUTES.items():
        out.setdefault((coll, len(shape)), []).append((shape, verb, target))
    return out


_BY_HEAD = _by_head()
