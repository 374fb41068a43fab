"""GET /servers query parameters -> a Spec, step for step as nova 34 treats them.

The steps follow nova's code path, each a few lines here:

1. query schema (schemas/servers.py, per microversion): unknown keys are stripped below 2.75
   and rejected from 2.75 ("Additional properties are not allowed"; nova's validator lets a
   query made only of unknown keys through, and so does this); regex-format values must be
   non-empty and compile; changes-since/before must be ISO 8601; sort_key must be in the
   version's enum.
2. servers.remove_invalid_options: an admin keeps every filter; a member keeps only the
   version's allowed list (everything else is dropped silently).
3. JOINED_TABLE params and ``_``-prefixed ones: 400 "Invalid filter field" (admins only, as
   members never get this far with them).
4. status -> vm_state/task_state lists (2.38+: unknown status 400, before: empty list);
   changes-since/before; deleted (non-strict bool); status DELETED (admin: deleted rows,
   member: 403); tags split on commas; all_tenants (strict bool, policy 403); locked (strict).
5. compute API remaps (image->image_ref, name->display_name, tenant_id->project_id,
   flavor->instance_type_id or an empty list when the flavor does not exist) and the DB API's
   exact/regex split.
6. sort keys: ignored keys dropped with their direction, host/node admin-only (403), then the
   effective order (fastnova.query.sort).
"""
from __future__ import annotations

import datetime as _dt

from fastnova.api import errors
from fastnova.query import filters as F
from fastnova.query import regex as R
from fastnova.query.sort import effective_order
from fastnova.views.status import states_for_statuses

# -- schema (nova/api/openstack/compute/schemas/servers.py) -----------------------------------

JOINED_TABLE = ("block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
                "security_groups", "pci_devices")
_PLAIN = ("user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "vm_state",
          "task_state", "host", "uuid", "sort_dir", "all_tenants", "soft_deleted", "deleted",
          "status", "limit", "marker")
_REGEX = ("kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "node", "flavor",
          "reservation_id", "launched_at", "terminated_at", "availability_zone", "name",
          "display_name", "description", "display_description", "locked_by", "root_device_name",
          "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "ip",
          "ip6", "created_at")
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
IGNORE_SORT_KEYS = ("architecture", "cell_name", "cleaned", "default_ephemeral_device",
                    "default_swap_device", "deleted", "deleted_at", "disable_terminate",
                    "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
                    "locked", "memory_mb", "os_type", "reservation_id", "root_gb",
                    "shutdown_terminate", "user_data", "vcpus", "vm_mode")
IGNORE_SORT_KEYS_V273 = tuple(k for k in IGNORE_SORT_KEYS if k != "locked")
_SORT_BASE = ("access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone",
              "config_drive", "created_at", "display_description", "display_name", "host",
              "hostname", "image_ref", "instance_type_id", "kernel_id", "key_name",
              "launch_index", "launched_at", "locked_by", "node", "power_state", "progress",
              "project_id", "ramdisk_id", "root_device_name", "task_state", "terminated_at",
              "updated_at", "user_id", "uuid", "vm_state")
SORT_KEYS = _SORT_BASE + IGNORE_SORT_KEYS
SORT_KEYS_V273 = ("locked",) + _SORT_BASE + IGNORE_SORT_KEYS_V273
SORT_KEYS_V275 = ("locked",) + _SORT_BASE


def properties(minor: int) -> frozenset:
    props = set(_PLAIN + _REGEX + JOINED_TABLE + ("sort_key", "changes-since"))
    if minor >= 26:
        props.update(TAG_FILTERS)
    if minor >= 66:
        props.add("changes-before")
    if minor >= 73:
        props.add("locked")
    return frozenset(props)


def sort_enum(minor: int) -> tuple:
    return SORT_KEYS_V275 if minor >= 75 else SORT_KEYS_V273 if minor >= 73 else SORT_KEYS


def member_options(minor: int) -> frozenset:
    """servers._get_server_search_options: what a non-admin may filter on."""
    opts = ["reservation_id", "name", "status", "image", "flavor", "ip", "changes-since",
            "all_tenants"]
    if minor >= 5:
        opts.append("ip6")
    if minor >= 26:
        opts.extend(TAG_FILTERS)
    if minor >= 66:
        opts.append("changes-before")
    if minor >= 73:
        opts.append("locked")
    if minor >= 83:
        opts.extend(("availability_zone", "config_drive", "key_name", "created_at",
                     "launched_at", "terminated_at", "power_state", "task_state", "vm_state",
                     "progress", "user_id"))
    if minor >= 90:
        opts.append("hostname")
    return frozenset(opts)


# -- oslo helpers ----------------------------------------------------------------------------

_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


def bool_from_string(value: str, strict: bool = False) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if strict and lowered not in _FALSE:
        acceptable = ", ".join("'%s'" % s for s in sorted(_TRUE + _FALSE))
        raise errors.bad_request("Invalid input received: Unrecognized value '%s', acceptable "
                                 "values are: %s" % (value, acceptable))
    return False


def parse_isotime(value: str) -> _dt.datetime | None:
    """oslo timeutils.parse_isotime (iso8601): an aware datetime, None when not ISO 8601."""
    text = value.strip()
    if len(text) < 10 or text[4:5] != "-":
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def micros_of(when: _dt.datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _schema_error(key: str, value: str, message: str):
    return errors.bad_request("Invalid input for query parameters %s. Value: %s. %s"
                              % (key, value, message))


# -- the spec --------------------------------------------------------------------------------

class Spec:
    """What to list: scope (a project id, or None for every project), predicates, order."""

    __slots__ = ("scope", "predicates", "order", "limit", "marker", "empty", "deleted",
                 "changes", "vm_states", "tags", "tags_any", "uuids", "flavour", "kept")

    def __init__(self):
        self.scope = None
        self.predicates = []
        self.order = []
        self.limit = 0
        self.marker = None
        self.empty = False
        self.deleted = None         # filters.Deleted, or None: deleted and live rows alike
        self.changes = None         # filters.Changes
        self.vm_states = None       # exact vm_state list (index-answerable)
        self.tags = None            # tags= list
        self.tags_any = None        # tags-any= list
        self.uuids = None           # exact uuid list
        self.flavour = R.MYSQL
        self.kept = frozenset()     # query keys left after the schema (what next links carry)


def _validate(q, minor: int):
    """Step 1: the query schema.  Returns the keys that survive (webob order, no repeats)."""
    props = properties(minor)
    keys = list(dict.fromkeys(k for k, _v in q.pairs))
    extra = [k for k in keys if k not in props and not k.startswith("_")]
    if minor >= 75 and extra and len(extra) != len(keys):
        verb = "was" if len(extra) == 1 else "were"
        raise errors.bad_request("Additional properties are not allowed (%s %s unexpected)"
                                 % (", ".join(repr(k) for k in extra), verb))
    enum = sort_enum(minor)
    for key, value in q.pairs:
        if key in _REGEX or (key in TAG_FILTERS and key in props):
            if not R.valid_python_regex(value):
                raise _schema_error(key, value, "%r is not a 'regex'" % value)
        elif key in ("changes-since", "changes-before") and key in props:
            if parse_isotime(value) is None:
                raise _schema_error(key, value, "%r is not a 'date-time'" % value)
        elif key == "sort_key" and value not in enum:
            raise _schema_error(key, value, "%r is not one of %r" % (value, list(enum)))
        elif key == "limit" and not (value.isdigit() and value.isascii()):
            raise _schema_error(key, value, "%r does not match '^[0-9]*$'" % value)
    if minor >= 75 and extra and len(extra) == len(keys):
        return keys
    return [k for k in keys if k in props or k.startswith("_")]


def parse(q, minor: int, ctx, detail: bool, flavour: str = R.MYSQL,
          flavor_exists=None, max_limit: int = 1000) -> Spec:
    """The Spec of one list request (raises ApiError with nova's answer for bad ones)."""
    spec = Spec()
    spec.flavour = flavour
    kept = _validate(q, minor)
    spec.kept = frozenset(kept)
    opts = {k: q.last[k] for k in kept}
    # Step 2: remove_invalid_options.
    if ctx.can("os_compute_api:servers:allow_all_filters"):
        for key in ("sort_key", "sort_dir", "limit", "marker"):
            opts.pop(key, None)
    else:
        allowed = member_options(minor)
        opts = {k: v for k, v in opts.items() if k in allowed}
    # Step 3: joined tables and internal attributes.
    for key in opts:
        if key in JOINED_TABLE or key.startswith("_"):
            raise errors.bad_request("Invalid filter field: %s." % key)
    # Step 4.
    opts.pop("status", None)
    if "status" in q.last:
        vm_states, task_states = states_for_statuses(q.getall("status"))
        if not vm_states and not task_states:
            if minor >= 38:
                raise errors.bad_request("Invalid status value")
            spec.empty = True
            return spec
        opts["vm_state"] = vm_states
        if "default" not in task_states:
            opts["task_state"] = task_states
    since = before = None
    if "changes-since" in opts:
        since = parse_isotime(opts["changes-since"])
        if since is None:
            raise errors.bad_request("Invalid filter field: changes-since.")
    if "changes-before" in opts:
        before = parse_isotime(opts["changes-before"])
        if before is None:
            raise errors.bad_request("Invalid filter field: changes-before.")
        if since is not None and before < since:
            raise errors.bad_request("The value of changes-since must be less than or equal "
                                     "to changes-before.")
    if "deleted" not in opts:
        deleted = False if since is None and before is None else None
    else:
        deleted = bool_from_string(opts.pop("deleted"))
    if opts.get("vm_state") == ["deleted"]:
        if not ctx.is_admin:
            raise errors.fault(403, "Only administrators may list deleted instances")
        deleted = True
    if minor >= 26:
        for key in TAG_FILTERS:
            if key in opts:
                opts[key] = opts[key].split(",")
    all_tenants = _all_tenants(opts)
    opts.pop("all_tenants", None)
    if "locked" in opts:
        opts["locked"] = bool_from_string(opts["locked"], strict=True)
    if all_tenants:
        ctx.authorize("os_compute_api:servers:%s:get_all_tenants"
                      % ("detail" if detail else "index"))
    else:
        opts.pop("tenant_id", None)
        opts["project_id"] = ctx.project_id
    spec.limit = min(max_limit, int(q.last["limit"])) if "limit" in q.last else max_limit
    # nova tests the marker for truth (compute API, BuildRequestList, multi_cell_list): an
    # empty one is no marker.
    spec.marker = q.last.get("marker") or None
    spec.order, sort_error = _order(q, minor, ctx)
    # Step 5: compute API remaps, then the DB API's filters.
    soft = opts.pop("soft_deleted", None)
    if deleted is not None:
        # db api: deleted -> pop('soft_deleted', True); not deleted -> pop('soft_deleted', False)
        spec.deleted = F.Deleted(deleted, deleted if soft is None else bool(soft))
        spec.predicates.append(spec.deleted)
    if since is not None or before is not None:
        spec.changes = F.Changes(since and micros_of(since), before and micros_of(before))
        spec.predicates.append(spec.changes)
    _db_filters(spec, opts, flavour, flavor_exists)
    if sort_error is not None and not spec.empty:
        # BuildRequestList.get_by_filters raises it (400) unless it short-circuits (deleted
        # or limit 0); then the cell query fails alone and nova skips the cell: an empty list.
        if deleted or spec.limit == 0:
            spec.empty = True
        else:
            raise sort_error
    return spec


def _all_tenants(opts) -> bool:
    """common.is_all_tenants: a present-but-empty value means yes; otherwise a strict bool."""
    if "all_tenants" not in opts:
        return False
    value = opts["all_tenants"]
    return bool_from_string(value, strict=True) if value else True


_REMAP = {"image": "image_ref", "name": "display_name", "tenant_id": "project_id"}
_SKIP = frozenset(("changes-since", "changes-before", "ip", "ip6", "flavor") + TAG_FILTERS)


def _db_filters(spec: Spec, opts: dict, flavour: str, flavor_exists):
    filters = {}
    for key, value in opts.items():
        if key == "flavor":
            if flavor_exists is not None and not flavor_exists(value):
                spec.empty = True       # FlavorNotFound: nova answers an empty list
                return
            filters["instance_type_id"] = value
        elif key not in _SKIP:
            filters[_REMAP.get(key, key)] = value
    if "project_id" in filters:
        spec.scope = filters["project_id"]
    for key in ("tags", "tags-any", "not-tags", "not-tags-any"):
        if key in opts:
            spec.predicates.append(F.Tags(key, opts[key], flavour))
    if "tags" in opts:
        spec.tags = opts["tags"]
    if "tags-any" in opts:
        spec.tags_any = opts["tags-any"]
    for key, value in filters.items():
        if key in F.EXACT:
            if isinstance(value, list) and not value:
                spec.empty = True
                return
            spec.predicates.append(F.Exact(key, value, flavour))
            if key == "vm_state":
                spec.vm_states = value if isinstance(value, list) else [value]
            elif key == "uuid":
                spec.uuids = value if isinstance(value, list) else [value]
        elif key in F.REGEX_COLUMNS:
            spec.predicates.append(F.Regex(key, _matcher(key, value, flavour)))
    if "ip" in opts or "ip6" in opts:
        v4 = _ip(opts, "ip")
        v6 = _ip(opts, "ip6")
        spec.predicates.append(F.Ip(v4, v6))


def _matcher(key: str, pattern: str, flavour: str):
    try:
        return R.column_matcher(pattern, flavour)
    except R.UnsupportedPattern as exc:
        raise _unsupported(key, pattern, exc)


def _ip(opts, key):
    # nova compiles str(filters.get('ip')): an absent one is the pattern 'None'.
    pattern = opts.get(key, "None")
    try:
        return R.ip_matcher(pattern)
    except R.UnsupportedPattern as exc:
        raise _unsupported(key, pattern, exc)


def _unsupported(key, pattern, exc):
    return errors.bad_request("Invalid input for query parameters %s. Value: %s. fastnova "
                              "evaluates regular expressions in linear time and does not "
                              "support this one (%s)." % (key, pattern, exc))


def _order(q, minor: int, ctx):
    """(effective order, the 400 nova's sort-parameter check would raise or None)."""
    keys = [v.strip() for v in q.getall("sort_key")]
    dirs = [v.strip() for v in q.getall("sort_dir")]
    if not keys:
        keys = ["created_at"]
    if not dirs:
        dirs = ["desc"]
    ignored = IGNORE_SORT_KEYS_V273 if minor >= 73 else IGNORE_SORT_KEYS
    for key in list(keys):
        if key in ignored:
            index = keys.index(key)
            if len(dirs) > index:
                dirs.pop(index)
            keys.pop(index)
        elif key in ("host", "node") and not ctx.is_admin:
            raise errors.fault(403, "Only administrators can sort servers by %s" % key)
    error = None
    if any(d not in ("asc", "desc") for d in dirs):
        error = errors.bad_request("Invalid input received: Unknown sort direction, must be "
                                   "'desc' or 'asc'")
    elif len(dirs) > len(keys):
        error = errors.bad_request("Invalid input received: Sort direction size exceeds sort "
                                   "key size")
    if error is not None:
        return effective_order([], []), error
    return effective_order(keys, dirs), None
