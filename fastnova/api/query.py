"""Query strings of list requests: parsing, pagination parameters and nova's next link.

nova reads query parameters through webob: repeated keys are kept (``getall``), a plain lookup
takes the last value, and blank values are kept.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from fastnova.api.errors import bad_request

MAX_LIMIT = 1000          # nova's [api] max_limit default
_DIGITS = re.compile(r"^[0-9]+$")


class Query:
    """The parsed query: ``pairs`` in order, ``last`` the webob-style single value per key."""

    __slots__ = ("pairs", "last")

    def __init__(self, qs: str):
        self.pairs = parse_qsl(qs, keep_blank_values=True) if qs else []
        self.last = dict(self.pairs)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]


def limit_and_marker(q: Query, max_limit: int = MAX_LIMIT) -> tuple[int, str | None]:
    """nova's common.get_limit_and_marker with its query-schema check of ``limit``."""
    for value in q.getall("limit"):
        if not _DIGITS.match(value):
            raise bad_request("Invalid input for query parameters limit. Value: %s. "
                              "'%s' does not match '^[0-9]*$'" % (value, value))
    limit = max_limit
    if "limit" in q.last:
        limit = min(max_limit, int(q.last["limit"]))
    return limit, q.last.get("marker")


def next_link(q: Query, version_root: str, collection: str, marker: str,
              keep=None) -> str:
    """nova's _get_next_link: the request's parameters sorted, marker replaced, urlencoded.

    ``keep``: the keys the query schema left in the request (nova strips unknown ones from
    req.GET before the controller, so its links do not carry them); None keeps all."""
    params = {}
    for key, value in sorted(q.pairs):
        if keep is None or key in keep:
            params[key] = value
    params["marker"] = marker
    return "%s/%s?%s" % (version_root, collection, urlencode(params))
