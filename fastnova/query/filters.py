"""Filter predicates over query rows (fastnova.query.row), with nova's DB API semantics.

nova's ``instance_get_all_by_filters_sort`` splits filters into exact ones (``=`` or ``IN``:
project_id, user_id, image_ref, vm_state, instance_type_id, uuid, host, task_state, locked) and
regular-expression ones (every other instances column), adds changes-since/before on
updated_at, the deleted/soft_deleted rules and the four tag filters; the compute API adds
``ip``/``ip6`` in Python.  Each is one small class here with ``test(row) -> bool``.

Under the MySQL flavour (the default) string equality follows nova's utf8 *_ci collation:
case and trailing spaces do not count.  Under PostgreSQL it is exact.
"""
from __future__ import annotations

from fastnova.query.regex import MYSQL
from fastnova.store.layout import name_collate

# nova's exact-match filter names (db/main/api.py), less metadata/system_metadata (rejected by
# the API before they get here) and hidden (fastnova has no hidden instances).
EXACT = frozenset(("project_id", "user_id", "image_ref", "vm_state", "instance_type_id", "uuid",
                   "host", "task_state", "locked"))
# Columns of nova's instances table that a regex filter can name (others are ignored by nova).
REGEX_COLUMNS = frozenset((
    "user_id", "project_id", "image_ref", "kernel_id", "ramdisk_id", "hostname", "launch_index",
    "key_name", "power_state", "vm_state", "task_state", "host", "node", "instance_type_id",
    "reservation_id", "launched_at", "terminated_at", "availability_zone", "display_name",
    "display_description", "locked", "locked_by", "uuid", "root_device_name", "config_drive",
    "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "created_at", "updated_at",
    "deleted_at"))
TIME_COLUMNS = frozenset(("created_at", "updated_at", "launched_at", "terminated_at",
                          "deleted_at"))
SOFT_DELETED = "soft-delete"


def column_text(field: str, value):
    """A column as the database's REGEXP sees it: DATETIME without fractions, BOOL as 0/1."""
    if value is None:
        return None
    if field in TIME_COLUMNS:
        return value[:10] + " " + value[11:19]
    if value is True or value is False:
        return "1" if value else "0"
    return str(value)


def equal_fn(flavour: str):
    if flavour == MYSQL:
        return lambda a, b: (a == b or (isinstance(a, str) and isinstance(b, str)
                                        and name_collate(a) == name_collate(b)))
    return lambda a, b: a == b


class Exact:
    """``field = value`` or ``field IN values`` (a list)."""

    __slots__ = ("field", "values", "eq", "many")

    def __init__(self, field: str, value, flavour: str):
        self.field = field
        self.many = isinstance(value, list)
        self.values = value if self.many else [value]
        # project_id is exact in both flavours: it is also the index scope (keystone ids are
        # lowercase hex, so MySQL's case-folding never mattered for it in practice).
        self.eq = equal_fn(flavour if field != "project_id" else "exact")

    def test(self, row) -> bool:
        have = row.get(self.field)
        if have is None:
            return False
        eq = self.eq
        return any(eq(have, want) for want in self.values)


class Regex:
    """``field REGEXP pattern`` (MySQL) / ``field ~ pattern`` (PostgreSQL)."""

    __slots__ = ("field", "matcher")

    def __init__(self, field: str, matcher):
        self.field = field
        self.matcher = matcher

    def test(self, row) -> bool:
        return self.matcher.test(column_text(self.field, row.get(self.field)))


class Changes:
    """changes-since (updated_at >= since) and changes-before (updated_at <= before), micros."""

    __slots__ = ("since", "before")

    def __init__(self, since: int | None, before: int | None):
        self.since, self.before = since, before

    def test(self, row) -> bool:
        ua = row["ua"]
        return ((self.since is None or ua >= self.since)
                and (self.before is None or ua <= self.before))


class Deleted:
    """nova's deleted/soft_deleted rules.

    deleted=True:  deleted rows, plus soft-deleted ones unless soft_deleted was given empty.
    deleted=False: live rows, minus soft-deleted ones unless soft_deleted was given (non-empty).
    """

    __slots__ = ("deleted", "soft")

    def __init__(self, deleted: bool, soft: bool):
        self.deleted, self.soft = deleted, soft

    def test(self, row) -> bool:
        if self.deleted:
            return bool(row.get("deleted")) or (self.soft and row.get("vm_state") == SOFT_DELETED)
        if row.get("deleted"):
            return False
        return self.soft or row.get("vm_state") != SOFT_DELETED


class Tags:
    """tags (all of), tags-any, not-tags (not all of), not-tags-any (none of)."""

    __slots__ = ("mode", "tags", "fold")

    def __init__(self, mode: str, tags: list[str], flavour: str):
        self.mode = mode
        self.fold = name_collate if flavour == MYSQL else (lambda t: t)
        self.tags = [self.fold(t) for t in tags]

    def test(self, row) -> bool:
        have = {self.fold(t) for t in row.get("tags") or ()}
        if self.mode == "tags":
            return all(t in have for t in self.tags)
        if self.mode == "tags-any":
            return any(t in have for t in self.tags)
        if self.mode == "not-tags":
            return not all(t in have for t in self.tags)
        return not any(t in have for t in self.tags)


class Ip:
    """nova's compute-API ip/ip6 filter: re.match on fixed addresses of that IP version."""

    __slots__ = ("v4", "v6")

    def __init__(self, v4, v6):
        self.v4, self.v6 = v4, v6

    def test(self, row) -> bool:
        if self.v4 is not None and any(self.v4.test(a) for a in row.get("ips4") or ()):
            return True
        return self.v6 is not None and any(self.v6.test(a) for a in row.get("ips6") or ())
