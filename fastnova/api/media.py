"""Media types as nova's URL map and wsgi layer choose them (nova/api/openstack/urlmap.py,
wsgi.py).

- The response's Content-Type is the best match of the Accept header among nova's two JSON
  types, ``application/json`` and ``application/vnd.openstack.compute+json`` (urlmap's Accept:
  highest q, ties to the more specific range, then to the first offer), else application/json.
- A request whose path names no API version takes one from a ``version`` parameter: of its
  Content-Type first, then of the best Accept match.  ``2.1`` and ``2`` map to the version
  documents' apps, which answer any path with their document.
- A request body type (any method) other than those two, empty or text/plain is 415
  "Unsupported Content-Type" (Request.get_content_type; compared as sent).
"""
from __future__ import annotations

import re

from fastnova.api import errors

JSON = b"application/json"
VND = b"application/vnd.openstack.compute+json"
SUPPORTED = ("application/json", "application/vnd.openstack.compute+json")
# What /v<version> reaches in nova's URL map: the v2.1 or the legacy v2 version document.
VERSION_APPS = {"2.1": False, "2": True}
_PARAM = re.compile(r';\s*([^\s;=]+)\s*(?:=\s*("[^"]*"|[^;]*))?')


def _options(item: str) -> tuple[str, dict]:
    """(media range, {param: value}) of one Accept/Content-Type item."""
    name, _, rest = item.partition(";")
    params = {}
    for key, value in _PARAM.findall(";" + rest):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[key] = value
    return name.strip(), params


def _matches(mask: str, offer: str) -> bool:
    if "*" not in mask:
        return mask == offer
    if mask == "*/*":
        return True
    return offer.split("/", 1)[0] == mask[:-2]


def best_accept(accept: str | None) -> tuple[str | None, dict]:
    """urlmap's Accept.best_match over nova's types: (type or None, the range's params)."""
    if not accept:
        return None, {}
    ranges = [_options(item) for item in accept.split(",") if item.strip()]
    best, best_q, best_params, best_mask = None, -1.0, {}, "*/*"
    for offer in SUPPORTED:
        for mask, params in ranges:
            try:
                q = float(params.get("q", 1))
            except ValueError:
                continue
            if q < best_q or (q == best_q and best_mask.count("*") <= mask.count("*")):
                continue
            if _matches(mask, offer):
                best, best_q, best_params, best_mask = offer, q, params, mask
    return best, best_params


def negotiate(accept: str | None, content_type: str | None) -> tuple[bytes, bool | None]:
    """(response Content-Type, the version app a version-less path goes to: False for v2.1,
    True for legacy v2, None for the versions list)."""
    offer, params = best_accept(accept)
    ctype = VND if offer == SUPPORTED[1] else JSON
    app = None
    if content_type:
        app = VERSION_APPS.get(_options(content_type)[1].get("version"))
    if app is None:
        app = VERSION_APPS.get(params.get("version"))
    return ctype, app


def check_body_type(content_type: str | None):
    """nova's get_content_type: 415 for a type it does not read."""
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip()
    if media and media != "text/plain" and media not in SUPPORTED:
        raise errors.fault(415, "Unsupported Content-Type")
