"""Response framing: precomputed status lines, a Date header refreshed once a second, request ids.

Every answer carries nova's request-id pair (``x-openstack-request-id`` and the older
``x-compute-request-id``, the same ``req-<uuid>``) and, when the microversion is known, nova's
version headers.
"""
from __future__ import annotations

import binascii
import os
import time
from email.utils import formatdate

REASONS = {
    200: "OK", 202: "Accepted", 204: "No Content", 300: "Multiple Choices", 302: "Found",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
    409: "Conflict", 411: "Length Required", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable",
}
STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, text.encode()) for code, text in REASONS.items()}

JSON = b"application/json"


class DateCache:
    """The Date header, formatted at most once a second (formatdate costs ~5 us)."""

    __slots__ = ("second", "header")

    def __init__(self):
        self.second = -1
        self.header = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.header = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.header


class RequestIds:
    """``req-<uuid4>`` ids from a pool of urandom bytes (one syscall per 256 ids)."""

    __slots__ = ("pool", "pos")
    BATCH = 256

    def __init__(self):
        self.pool = b""
        self.pos = 0

    def next(self) -> bytes:
        if self.pos >= len(self.pool):
            self.pool = os.urandom(16 * self.BATCH)
            self.pos = 0
        raw = bytearray(self.pool[self.pos:self.pos + 16])
        self.pos += 16
        raw[6] = (raw[6] & 0x0F) | 0x40   # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80   # RFC 4122 variant
        h = binascii.hexlify(raw)
        return b"req-%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def frame(status: int, body: bytes, content_type: bytes, extra: bytes, date: bytes,
          request_id: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    """The whole response as one bytes object (one write, one syscall)."""
    head = b"".join((
        STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
        b"Content-Type: ", content_type, b"\r\nContent-Length: %d\r\n" % len(body),
        b"x-openstack-request-id: ", request_id, b"\r\nx-compute-request-id: ", request_id,
        b"\r\n", extra, date,
        b"" if keep_alive else b"Connection: close\r\n",
        b"\r\n",
    ))
    return head if head_only else head + body
