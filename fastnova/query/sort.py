"""nova's server list order: the sort keys nova's database ends up using, and row comparison.

nova's pipeline (api common.get_sort_params -> compute instance_list.InstanceSortContext ->
db utils.process_sort_params) turns the request's keys K and directions D into:

* no keys left (none given, or all ignored):  created_at desc, id desc, uuid asc;
* otherwise: K + [uuid] with directions D + ["asc"], padded with D[0], so the first direction
  also applies to keys given without one (e.g. ``sort_key=a&sort_key=b`` with no sort_dir gives
  a desc, b asc: get_sort_params defaulted D to ["desc"], then "asc" was appended for uuid).

uuid is unique, so the order is total and a marker continues exactly after itself.  ``id`` (the
row id, here ``seq``) only matters when it comes before uuid.

NULLs: MySQL sorts them first ascending; PostgreSQL last ascending.  Strings: MySQL compares
under *_ci (case and trailing spaces ignored, fastnova.store.layout.name_collate); PostgreSQL by
code point (a C collation).
"""
from __future__ import annotations

from fastnova.query.regex import MYSQL
from fastnova.store.layout import name_collate

# Request sort key -> query row field.
FIELDS = {"id": "seq", "locked": "locked"}


def effective_order(keys: list[str], dirs: list[str]) -> list[tuple[str, str]]:
    """The (key, dir) list nova's database orders by, truncated after uuid."""
    if not keys:
        keys, dirs = ["created_at", "id"], ["desc", "desc"]
    keys, dirs = list(keys), list(dirs)
    if "uuid" not in keys:
        keys.append("uuid")
        dirs.append("asc")
    first = dirs[0] if dirs else "desc"
    while len(dirs) < len(keys):
        dirs.append(first)
    order = []
    for key, direction in zip(keys, dirs):
        order.append((key, direction))
        if key == "uuid":
            break
    return order


def _norm(flavour: str):
    """value -> a tuple that sorts like the database sorts the column (NULLs included)."""
    if flavour == MYSQL:
        def norm(value):
            if value is None:
                return (0,)
            if isinstance(value, str):
                return (1, name_collate(value))
            return (1, value)
    else:
        def norm(value):
            if value is None:
                return (1,)
            return (0, value)
    return norm


class Order:
    """An effective order: sorting lists of rows and comparing a row with the marker."""

    __slots__ = ("keys", "norm")

    def __init__(self, order: list[tuple[str, str]], flavour: str):
        self.keys = [(FIELDS.get(k, k), d == "desc") for k, d in order]
        self.norm = _norm(flavour)

    @property
    def primary(self) -> tuple[str, bool]:
        return self.keys[0]

    def sort(self, rows: list[dict]) -> list[dict]:
        """Rows in order: stable sorts from the last key to the first."""
        norm = self.norm
        for field, desc in reversed(self.keys):
            rows.sort(key=lambda r, f=field: norm(r.get(f)), reverse=desc)
        return rows

    def after(self, row: dict, marker: dict) -> bool:
        """Whether ``row`` comes strictly after ``marker`` in this order."""
        norm = self.norm
        for field, desc in self.keys:
            a, b = norm(row.get(field)), norm(marker.get(field))
            if a != b:
                return (a < b) if desc else (a > b)
        return False
