"""Microversion negotiation, resolved once per request to a small integer (the minor number).

nova 34 accepts ``OpenStack-API-Version: compute 2.X`` (a comma-separated list of
"service version" pairs; the newer header wins) or the legacy ``X-OpenStack-Nova-API-Version: 2.X``.
It reads them with microversion_parse.get_version: the *last* "compute ..." item of the standard
header (everything after "compute", stripped), else the legacy header's last comma-separated item.
No header means 2.1; ``latest`` means 2.104.  A string that is not MAJOR.MINOR is a 400 without
version headers; a version outside 2.1-2.104 is a 406 (computeFault) that carries the version
headers of the version asked for (nova stores the request version before its range check raises,
and wsgi.Fault reads it back from the request environ).  The legacy /v2 endpoint ignores both
headers and answers as 2.1 without version headers.
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


def _requested(header: str | None, legacy: str | None) -> str | None:
    """The version string as microversion_parse.get_version finds it (None: no version)."""
    if header is not None:
        for item in reversed(header.split(",")):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "compute":
                return parts[1].strip()
    if legacy is not None:
        return legacy.split(",")[-1].strip()
    return None


def _asked_headers(major: int, minor: int) -> bytes:
    return (b"OpenStack-API-Version: compute %d.%d\r\nX-OpenStack-Nova-API-Version: %d.%d\r\n"
            b"Vary: OpenStack-API-Version, X-OpenStack-Nova-API-Version\r\n"
            % (major, minor, major, minor))


def negotiate(header: str | None, legacy: str | None) -> int:
    """The requested minor version, or ApiError (400/406) as nova answers."""
    text = _requested(header, legacy)
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
        err = fault(406, "Version %d.%d is not supported by the API. Minimum is 2.%d and "
                         "maximum is 2.%d." % (major, minor, MIN_MINOR, MAX_MINOR))
        err.extra = _asked_headers(major, minor)
        raise err
    return minor
