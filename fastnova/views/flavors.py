"""Write-time rendering of the flavor documents (GET /flavors, /flavors/detail, /flavors/{id}).

Flavor record: {id (flavorid, str), name, vcpus, ram, disk, ephemeral, swap, rxtx_factor,
is_public, disabled, description, extra_specs}.  Pieces are gated like the server's
(fastnova.store.layout).  Microversions that change a flavor document:
  2.55  "description" in every view
  2.61  "extra_specs" in detail/show (os-flavor-extra-specs:index is PROJECT_READER_OR_ADMIN,
        so both roles see it)
  2.75  "swap" is 0 instead of "" when the flavor has no swap
  2.102 "rxtx_factor" and "OS-FLV-DISABLED:disabled" are gone
"""
from __future__ import annotations

import orjson

from fastnova.store.layout import (MAX_MINOR, ROLE_ADMIN, ROLE_MEMBER, VIEW_DETAIL,
                                   VIEW_INDEX, VIEW_SHOW)
from fastnova.views import links

FIRST = 0
LAST = MAX_MINOR
EVERYONE = ROLE_ADMIN | ROLE_MEMBER
FULL = EVERYONE | VIEW_SHOW | VIEW_DETAIL
ALL = FULL | VIEW_INDEX


def _piece(lo: int, hi: int, mask: int, key: str, value) -> tuple[int, int, int, bytes]:
    return (lo, hi, mask, orjson.dumps(key) + b":" + orjson.dumps(value))


def _brief(frec: dict) -> list:
    fid = str(frec["id"])
    return [
        _piece(FIRST, LAST, ALL, "id", fid),
        _piece(FIRST, LAST, ALL, "name", frec.get("name", "")),
        (FIRST, LAST, ALL, b'"links":' + links.resource_links("flavors", fid)),
        _piece(55, LAST, ALL, "description", frec.get("description")),
    ]


def _sizes(frec: dict) -> list:
    swap = frec.get("swap") or 0
    return [
        _piece(FIRST, LAST, FULL, "ram", frec.get("ram", 0)),
        _piece(FIRST, LAST, FULL, "disk", frec.get("disk", 0)),
        _piece(FIRST, LAST, FULL, "vcpus", frec.get("vcpus", 0)),
        _piece(FIRST, LAST, FULL, "OS-FLV-EXT-DATA:ephemeral", frec.get("ephemeral", 0)),
        # Before 2.75 nova showed "no swap" as an empty string.
        _piece(FIRST, 74, FULL, "swap", swap or ""),
        _piece(75, LAST, FULL, "swap", swap),
    ]


def _flags(frec: dict) -> list:
    return [
        _piece(FIRST, LAST, FULL, "os-flavor-access:is_public", bool(frec.get("is_public", True))),
        _piece(FIRST, 101, FULL, "OS-FLV-DISABLED:disabled", bool(frec.get("disabled", False))),
        # nova shows a zero/None factor as "" (it is 1.0 unless an admin set it).
        _piece(FIRST, 101, FULL, "rxtx_factor", frec.get("rxtx_factor", 1.0) or ""),
        _piece(61, LAST, FULL, "extra_specs", frec.get("extra_specs") or {}),
    ]


def render_flavor(frec: dict) -> list[tuple[int, int, int, bytes]]:
    """All gated pieces of one flavor's documents."""
    return _brief(frec) + _sizes(frec) + _flags(frec)


def flavor_sort_key(frec: dict) -> bytes:
    """Key of nova's default flavor order: flavorid ascending (sort_key="flavorid",
    sort_dir="asc" in the flavors controller; the DB adds the internal id as a tie-break, which
    unique flavorids never need).  flavorid is a string column, so "10" sorts before "2"."""
    return str(frec["id"]).encode("utf-8")
