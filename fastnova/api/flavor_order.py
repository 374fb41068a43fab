"""The order of a flavor list: nova's FlavorList.get_all(sort_key, sort_dir).

nova sorts in the API database with oslo.db's paginate_query over ``[sort_key, 'id']`` (``id`` is
the internal autoincrement key, which makes the order total), both keys in ``sort_dir``.  Here
the flavors are few (tens), so the order is made per request from the records:

- text columns compare as the database compares them: MySQL's default collation ignores case
  and trailing spaces, PostgreSQL compares the characters;
- NULL is the smallest value on MySQL and the largest on PostgreSQL (ascending);
- the internal id is the record's ``internal_id`` (the importer keeps the row's id), or for a
  store without it the flavor's position in flavorid order.
"""
from __future__ import annotations

from fastnova.query.regex import MYSQL
from fastnova.store.layout import name_collate

# nova's sort keys (schemas/flavors.py VALID_SORT_KEYS) -> the store's flavor record fields.
FIELDS = {"created_at": "created_at", "description": "description", "disabled": "disabled",
          "ephemeral_gb": "ephemeral", "flavorid": "id", "id": "internal_id",
          "is_public": "is_public", "memory_mb": "ram", "name": "name", "root_gb": "disk",
          "rxtx_factor": "rxtx_factor", "swap": "swap", "updated_at": "updated_at",
          "vcpu_weight": "vcpu_weight", "vcpus": "vcpus"}


def flavor_order(q, flavour: str, position: dict):
    """(key function over (flavorid bytes, record), reverse) for the query's sort_key/sort_dir,
    or None for nova's default (flavorid asc), which is the store's key order already on
    PostgreSQL-like byte comparison and is made here otherwise."""
    sort_key = q.last.get("sort_key") or "flavorid"
    reverse = (q.last.get("sort_dir") or "asc") == "desc"
    if sort_key == "flavorid" and not reverse and flavour != MYSQL:
        return None
    field = FIELDS[sort_key]
    nulls_first = flavour == MYSQL
    fold = name_collate if flavour == MYSQL else str

    def value(frec, key):
        if key == "internal_id":
            return frec.get("internal_id") or 0
        raw = frec.get(key)
        if raw is None:
            return None
        if key in ("id", "name", "description", "created_at", "updated_at"):
            return fold(str(raw))
        return raw

    def sort_key_of(item):
        fid, frec = item
        primary = value(frec, field)
        tie = frec.get("internal_id") or position.get(fid, 0) + 1
        # (is-null rank, value): NULLs first on MySQL, last on PostgreSQL, ascending.
        null_rank = (0 if nulls_first else 1) if primary is None else (1 if nulls_first else 0)
        return (null_rank, _comparable(primary), tie)

    return sort_key_of, reverse


def _comparable(value):
    """Values of one column compare among themselves; a NULL's place is its rank."""
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, value)
