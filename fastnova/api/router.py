"""The route table: path and method to a small integer route and its arguments.

nova mounts ``/`` (versions), ``/v2`` (legacy v2, microversion headers ignored) and ``/v2.1``;
under a version every resource is reachable with or without ``/{project_id}`` first, where a
project id is hex digits and dashes (nova's ProjectMapper requirement).
"""
from __future__ import annotations

import re

from fastnova.resources import table as resource_table

VERSION_LIST, VERSION_CHOICES, VERSION_DOC = 1, 2, 3
SERVERS_INDEX, SERVERS_DETAIL, SERVER_SHOW = 10, 11, 12
FLAVORS_INDEX, FLAVORS_DETAIL, FLAVOR_SHOW = 20, 21, 22
# Commands and the server sub-resources (fastnova.commands); arg is the server id, or
# (server id,) / (server id, key) for metadata and tags.
SERVER_CREATE, SERVER_UPDATE, SERVER_DELETE, SERVER_ACTION = 30, 31, 32, 33
METADATA_INDEX, METADATA_SHOW, METADATA_CREATE, METADATA_UPDATE_ALL = 40, 41, 42, 43
METADATA_UPDATE, METADATA_DELETE = 44, 45
TAGS_INDEX, TAG_CHECK, TAG_ADD, TAGS_UPDATE_ALL, TAG_DELETE, TAGS_DELETE_ALL = (
    50, 51, 52, 53, 54, 55)
LIMITS = 60
RESOURCE = 70        # fastnova.resources (key pairs, groups, actions, ...): arg = (handler, args)
NOT_SERVED = 90      # a nova resource fastnova does not answer itself (yet): forward or 501
NO_ROUTE = 99        # no nova route matches: webob's plain 404

_PROJECT_RE = re.compile(r"^[0-9a-f-]+$")

# Top-level collections of nova 34's compute API (nova/api/openstack/compute/routes.py).
NOVA_COLLECTIONS = frozenset((
    "servers", "flavors", "images", "os-keypairs", "limits", "os-availability-zone",
    "os-hypervisors", "os-services", "os-aggregates", "os-quota-sets", "os-quota-class-sets",
    "os-server-groups", "os-simple-tenant-usage", "os-migrations", "os-instance_usage_audit_log",
    "os-server-external-events", "os-console-auth-tokens", "os-assisted-volume-snapshots",
    "os-volumes", "os-volumes_boot", "os-snapshots", "os-networks", "os-tenant-networks",
    "os-security-groups", "os-security-group-rules", "os-security-group-default-rules",
    "os-floating-ips", "os-floating-ip-pools", "os-floating-ips-bulk", "os-fixed-ips",
    "os-hosts", "os-cells", "os-certificates", "os-cloudpipe", "os-fping", "os-agents",
    "os-baremetal-nodes", "os-floating-ip-dns", "extensions", "os-instance-actions",
))


class Route:
    __slots__ = ("kind", "legacy", "project_id", "arg")

    def __init__(self, kind, legacy=False, project_id=None, arg=None):
        self.kind = kind
        self.legacy = legacy
        self.project_id = project_id
        self.arg = arg


# Sub-resources of a server in nova's route table (routes.py): anything else under
# /servers/{id}/ matches no route (webob's 404), not a resource fastnova does not serve.
SERVER_SUBRESOURCES = frozenset((
    "action", "consoles", "diagnostics", "ips", "metadata", "migrations", "os-instance-actions",
    "os-interface", "os-server-password", "os-virtual-interfaces", "os-volume_attachments",
    "remote-consoles", "os-security-groups", "shares", "tags", "topology"))
_DOUBLE_SLASH = re.compile(r"//+")


def normalize(path: str) -> str:
    """nova's URL map collapses repeated slashes (paste's normalize_url) before routing:
    ``//`` is ``/`` and ``/v2.1//servers`` is ``/v2.1/servers``; a trailing slash stays."""
    return _DOUBLE_SLASH.sub("/", path) if "//" in path else path


def route(method: str, path: str) -> Route:
    if path == "/":
        return Route(VERSION_LIST if method == "GET" else NO_ROUTE)
    for prefix, legacy in (("/v2.1", False), ("/v2", True)):
        if path == prefix or path == prefix + "/":
            return Route(VERSION_DOC if method == "GET" else NO_ROUTE, legacy)
        if path.startswith(prefix + "/"):
            segs = path[len(prefix) + 1:].split("/")
            if "" in segs:      # routes' {id} needs a character: /servers/ matches nothing
                return Route(NO_ROUTE, legacy)
            return _resource(method, segs, legacy)
    return Route(VERSION_CHOICES if method == "GET" else NO_ROUTE)


def _resource(method: str, segs: list[str], legacy: bool) -> Route:
    pid = None
    if len(segs) >= 2 and segs[1] in NOVA_COLLECTIONS and _PROJECT_RE.match(segs[0]):
        pid, segs = segs[0], segs[1:]
    if not segs or segs[0] not in NOVA_COLLECTIONS or not _known_server_path(segs):
        return Route(NO_ROUTE, legacy, pid)
    found = resource_table.match(method, segs)
    if found is not None:
        return Route(RESOURCE, legacy, pid, found)
    kind = _get_kind(segs) if method == "GET" else NOT_SERVED
    arg = segs[1] if len(segs) == 2 else None
    if kind == NOT_SERVED:
        kind, arg = _command_kind(method, segs, arg)
    return Route(kind, legacy, pid, arg)


def _known_server_path(segs: list[str]) -> bool:
    """Whether a /servers/... path has a shape of nova's route table (any method)."""
    if segs[0] != "servers" or len(segs) <= 2:
        return True
    if segs[2] not in SERVER_SUBRESOURCES:
        return False
    n = len(segs)
    if n == 5:
        return segs[2] == "migrations" and segs[4] == "action"
    return n <= 4 and not (n == 4 and segs[2] == "action")


def _get_kind(segs: list[str]) -> int:
    head, n = segs[0], len(segs)
    if head == "servers":
        if n == 1:
            return SERVERS_INDEX
        if n == 2:
            return SERVERS_DETAIL if segs[1] == "detail" else SERVER_SHOW
    elif head == "flavors":
        if n == 1:
            return FLAVORS_INDEX
        if n == 2:
            return FLAVORS_DETAIL if segs[1] == "detail" else FLAVOR_SHOW
    return NOT_SERVED


_SERVER_SUB = {
    ("metadata", "GET", False): METADATA_INDEX, ("metadata", "POST", False): METADATA_CREATE,
    ("metadata", "PUT", False): METADATA_UPDATE_ALL, ("metadata", "GET", True): METADATA_SHOW,
    ("metadata", "PUT", True): METADATA_UPDATE, ("metadata", "DELETE", True): METADATA_DELETE,
    ("tags", "GET", False): TAGS_INDEX, ("tags", "PUT", False): TAGS_UPDATE_ALL,
    ("tags", "DELETE", False): TAGS_DELETE_ALL, ("tags", "GET", True): TAG_CHECK,
    ("tags", "PUT", True): TAG_ADD, ("tags", "DELETE", True): TAG_DELETE,
}


def _command_kind(method: str, segs: list[str], arg):
    """Routes of fastnova.commands: (kind, arg), or (NOT_SERVED, arg) when none matches."""
    head, n = segs[0], len(segs)
    if head == "limits" and n == 1 and method == "GET":
        return LIMITS, None
    # A path of nova's whose method nova does not route is webob's 404 (routes' conditions),
    # on the server routes fastnova answers completely.
    if head != "servers" or n > 4:
        return NOT_SERVED, arg
    if n == 1:
        return (SERVER_CREATE if method == "POST" else NO_ROUTE), None
    if n == 2:
        kind = {"PUT": SERVER_UPDATE, "DELETE": SERVER_DELETE}.get(method, NO_ROUTE)
        return kind, arg
    if n == 3 and segs[2] == "action":
        return (SERVER_ACTION if method == "POST" else NO_ROUTE), segs[1]
    if segs[2] not in ("metadata", "tags"):
        return NOT_SERVED, arg
    kind = _SERVER_SUB.get((segs[2], method, n == 4), NO_ROUTE)
    return kind, tuple(segs[1:2] + segs[3:])
