"""Link values with the per-request prefix markers of fastnova.store.layout.

A marker byte stands where nova puts "{scheme}://{host}[/v2.1][/{project_id}]", so one rendering
serves every host name and path style a client uses.  orjson would escape the marker (it is a
control character) into ``\\u0001``, so hrefs are joined by hand around an encoded path.
"""
from __future__ import annotations

import orjson

from fastnova.store.layout import MARK_ROOT, MARK_VERSION


def _href(mark: bytes, collection: str, ident: str) -> bytes:
    # nova joins the id into the URL as it is (no percent-encoding); only JSON-escape it.
    path = orjson.dumps("/%s/%s" % (collection, ident))
    return b'{"href":"' + mark + path[1:-1] + b'"'


def bookmark(collection: str, ident: str) -> bytes:
    """One ``{"href": ..., "rel": "bookmark"}`` object."""
    return _href(MARK_ROOT, collection, ident) + b',"rel":"bookmark"}'


def self_link(collection: str, ident: str) -> bytes:
    """One ``{"href": ..., "rel": "self"}`` object."""
    return _href(MARK_VERSION, collection, ident) + b',"rel":"self"}'


def resource_links(collection: str, ident: str) -> bytes:
    """The ``links`` value of a resource: self then bookmark, nova's order."""
    return b"[" + self_link(collection, ident) + b"," + bookmark(collection, ident) + b"]"


def bookmark_links(collection: str, ident: str) -> bytes:
    """A ``links`` value holding only the bookmark (embedded image and flavor)."""
    return b"[" + bookmark(collection, ident) + b"]"
