"""Pure-Python twin of the compiled assembly in fastnova/_ext/_speedups.pyx.

Selects a view blob's pieces for one (microversion, role, view) and joins them into a JSON object,
then fills in the link markers.  The compiled module does the same with no Python objects per
piece; tests/unit/test_speedups.py runs both (the ``twin`` fixture of tests/conftest.py) and
compares them.
"""
from __future__ import annotations

import struct

from fastnova.store.layout import _COUNT, _HEAD, _PIECE, BLOB_FORMAT, FLAG_DELETED


def blob_owner(blob) -> tuple[bytes, bool]:
    """(project_id bytes, deleted) from a view blob's header, without reading the pieces."""
    try:
        fmt, flags, plen = _HEAD.unpack_from(blob, 0)
    except struct.error as exc:
        raise ValueError("not a view blob") from exc
    if fmt != BLOB_FORMAT or len(blob) < _HEAD.size + plen + _COUNT.size:
        raise ValueError("not a view blob")
    return bytes(blob[_HEAD.size:_HEAD.size + plen]), bool(flags & FLAG_DELETED)


def select(blob, minor: int, mask: int) -> bytes:
    """The JSON object made of the pieces whose gate admits (minor, mask): ``{p1,p2,...}``.

    ``mask`` is one role bit and one view bit (fastnova.store.layout); a piece is taken when both
    of them are in its own mask.
    """
    view = memoryview(blob)
    try:
        fmt, _flags, plen = _HEAD.unpack_from(view, 0)
        pos = _HEAD.size + plen
        (count,) = _COUNT.unpack_from(view, pos)
        pos += _COUNT.size
        parts = []
        for _ in range(count):
            lo, hi, pmask, size = _PIECE.unpack_from(view, pos)
            pos += _PIECE.size
            if pos + size > len(view):
                raise ValueError("truncated view blob piece")
            if lo <= minor <= hi and (pmask & mask) == mask:
                parts.append(view[pos:pos + size])
            pos += size
    except struct.error as exc:
        raise ValueError("truncated view blob") from exc
    if fmt != BLOB_FORMAT:
        raise ValueError("not a view blob")
    return b"{" + b",".join(parts) + b"}"


def fill_links(doc: bytes, root: bytes, version_root: bytes) -> bytes:
    """Replace MARK_ROOT and MARK_VERSION with the request's link prefixes."""
    return doc.replace(b"\x01", root).replace(b"\x02", version_root)


def show_doc(blob, minor: int, mask: int, owner: bytes | None, root: bytes,
             version_root: bytes) -> bytes | None:
    """One document with links filled in; None when deleted or (owner given) not the owner's."""
    project_id, deleted = blob_owner(blob)
    if deleted or (owner is not None and project_id != owner):
        return None
    return fill_links(select(blob, minor, mask), root, version_root)


def page_docs(blobs, minor: int, mask: int, root: bytes, version_root: bytes) -> bytes:
    """Documents of a page, comma-joined, links filled in (one pass over the joined bytes)."""
    return fill_links(b",".join([select(b, minor, mask) for b in blobs]), root, version_root)
