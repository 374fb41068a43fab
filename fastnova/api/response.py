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
    """``req-<uuid4>`` ids, made 256 at a time from one urandom read (a pop per request)."""

    __slots__ = ("pool",)
    BATCH = 256

    def __init__(self):
        self.pool = []

    def next(self) -> bytes:
        if not self.pool:
            self.pool = _batch(self.BATCH)
        return self.pool.pop()


_VARIANT = b"89ab"


def _batch(n: int) -> list[bytes]:
    raw = os.urandom(16 * n)
    h = binascii.hexlify(raw)
    out = []
    for i in range(n):
        x = h[32 * i:32 * i + 32]
        # version 4 nibble and RFC 4122 variant (10xx), as uuid.uuid4() sets them
        variant = _VARIANT[raw[16 * i + 8] & 3:(raw[16 * i + 8] & 3) + 1]
        out.append(b"req-%s-%s-4%s-%s%s-%s" % (x[0:8], x[8:12], x[13:16], variant, x[17:20],
                                               x[20:32]))
    return out


def frame(status: int, body, content_type: bytes, extra: bytes, date: bytes,
          request_id: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    """The whole response as one bytes object (one write, one syscall).

    ``body`` is bytes, or a list of bytes parts (a page: joined here, once, with the head)."""
    parts = body if type(body) is list else [body]
    head = [
        STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
        b"Content-Type: ", content_type,
        b"\r\nContent-Length: %d\r\n" % sum(map(len, parts)),
        b"x-openstack-request-id: ", request_id, b"\r\nx-compute-request-id: ", request_id,
        b"\r\n", extra, date,
        b"" if keep_alive else b"Connection: close\r\n",
        b"\r\n",
    ]
    if not head_only:
        head.extend(parts)
    return b"".join(head)


def relay(answer, date: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    """An upstream nova-api's answer passed on: its status, its headers (nova's request ids
    included, so operators can find the request in nova's logs), our framing."""
    status = STATUS_LINES.get(answer.status) or b"HTTP/1.1 %d Unknown\r\n" % answer.status
    head = b"".join((status, answer.headers, b"Content-Length: %d\r\n" % len(answer.body),
                     b"" if b"\ndate:" in b"\n" + answer.headers.lower() else date,
                     b"" if keep_alive else b"Connection: close\r\n", b"\r\n"))
    return head if head_only else head + answer.body
