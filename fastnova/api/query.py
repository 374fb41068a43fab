"""Query strings of list requests: parsing, pagination parameters and nova's next link.

nova reads query parameters through webob: repeated keys are kept (``getall``), a plain lookup
takes the last value, and blank values are kept.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlencode

from fastnova.api.errors import bad_request

MAX_LIMIT = 1000          # nova's [api] max_limit default
_DIGITS = re.compile(r"^[0-9]+$")
_SEPARATORS = re.compile(rb"[&;]")


def parse_pairs(qs: str) -> list[tuple[str, str]]:
    """(key, value) pairs as webob reads QUERY_STRING (compat.parse_qsl_text): "&" and ";" both
    separate, empty pieces are dropped, "+" is a space, a piece without "=" has an empty value,
    and escapes must decode as UTF-8: nova's query-schema decorator answers 400 "Query string is
    not UTF-8 encoded" otherwise."""
    raw = qs.encode("utf-8", "surrogateescape").replace(b"+", b" ")
    pairs = []
    try:
        for piece in _SEPARATORS.split(raw):
            if piece:
                key, _, value = piece.partition(b"=")
                pairs.append((unquote_to_bytes(key).decode("utf-8"),
                              unquote_to_bytes(value).decode("utf-8")))
    except UnicodeDecodeError:
        raise bad_request("Query string is not UTF-8 encoded") from None
    return pairs


class Query:
    """The parsed query: ``pairs`` in order, ``last`` the webob-style single value per key."""

    __slots__ = ("pairs", "last")

    def __init__(self, qs: str):
        self.pairs = parse_pairs(qs) if qs else []
        self.last = dict(self.pairs)

    def dict_of_lists(self) -> dict[str, list[str]]:
        """webob's MultiDict.dict_of_lists: what nova's query schemas validate."""
        out: dict[str, list[str]] = {}
        for key, value in self.pairs:
            out.setdefault(key, []).append(value)
        return out

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
