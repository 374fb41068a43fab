"""Microversion negotiation, resolved once per request to a small integer (the minor number).

nova 34 accepts ``OpenStack-API-Version: compute 2.X`` (a comma-separated list of
"service version" pairs; the newer header wins) or the legacy ``X-OpenStack-Nova-API-Version: 2.X``.
No header means 2.1; ``latest`` means 2.104.  A string that is not MAJOR.MINOR is a 400, a version
outside 2.1-2.104 a 406 (computeFault), both without version headers on the answer.  The legacy
/v2 endpoint ignores both headers and answers as 2.1 without version headers.
"""
from __future__ import annotations

import re

from fastnova.api.errors import fault

MIN_MINOR = 1
MAX_MINOR = 104
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")

# Precomputed response headers per minor, so a request pays one list index.
_HEADERS = [b""] + [
    b"OpenStack-API-Version: compute 2.%d\r\nX-OpenStack-Nova-API-Version: 2.%d\r\n"
    b"Vary: OpenStack-API-Version, X-OpenStack-Nova-API-Version\r\n" % (m, m)
    for m in range(1, MAX_MINOR + 1)
]


def version_headers(minor: int) -> bytes:
    return _HEADERS[minor]


def _from_openstack_header(value: str) -> str | None:
    for item in value.split(","):
        parts = item.split()
        if len(parts) == 2 and parts[0].lower() == "compute":
            return parts[1]
    return None


def negotiate(header: str | None, legacy: str | None) -> int:
    """The requested minor version, or ApiError (400/406) as nova answers."""
    text = _from_openstack_header(header) if header is not None else None
    if text is None and legacy is not None:
        text = legacy.strip()
    if text is None:
        return MIN_MINOR
    if text == "latest":
        return MAX_MINOR
    match = _VERSION_RE.match(text)
    if match is None:
        raise fault(400, "API Version String %s is of invalid format. Must be of format "
                         "MajorNum.MinorNum." % text, versioned=False)
    major, minor = int(match.group(1)), int(match.group(2))
    if major != 2 or not MIN_MINOR <= minor <= MAX_MINOR:
        raise fault(406, "Version %d.%d is not supported by the API. Minimum is 2.%d and "
                         "maximum is 2.%d." % (major, minor, MIN_MINOR, MAX_MINOR),
                    versioned=False)
    return minor
