"""The rules and sizes of fastnova's HTTP/1.1, shared by both protocol twins
(fastnova/api/protocol.py, which says why, and fastnova/_ext/_protocol.pyx): limits, the fixed
answers to refused input, and the request-line and blank-line tests that find where messages
start and end (docs/http.md)."""
from __future__ import annotations

import httptools

SLICE = 16384                    # bytes fed to httptools at once (see module docstring)
# Per connection: the most one read takes (what may be held), and the write buffer's marks
# (fastnova/_ext/_edge.pyx has the same; the worker sets them on uvloop's transports).  The
# kernel's socket buffers absorb bursts; more here only grows a worker for clients not reading.
READ_SIZE = 16384
WRITE_HIGH = 16384
WRITE_LOW = 4096

_CANNED = {
    400: b"Bad Request", 408: b"Request Timeout", 413: b"Request Entity Too Large",
    414: b"Request-URI Too Long", 431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CRLF2 = b"\r\n\r\n"
LINE_HTTP1 = 1          # the request line ends in " HTTP/1.0" or " HTTP/1.1"
LINE_GET = 2            # and its method is GET
LINE_11 = 4             # and its version is 1.1
# In llhttp's messages for a Transfer-Encoding it refuses ("gzip", "chunked, gzip"); nginx says
# 501 to any Transfer-Encoding but exactly "chunked", and 400 to a second one.
_BAD_TE = "`Transfer-Encoding`"


def parse_error_status(exc, te_seen) -> int:
    return 501 if _BAD_TE in str(exc) and te_seen is None else 400


class Limits:
    """Sizes and timeouts; the worker builds one from the serve options."""

    __slots__ = ("max_url", "max_head", "max_headers", "max_body", "header_timeout",
                 "keepalive_timeout", "drain_grace", "max_line")

    def __init__(self, max_url=16384, max_head=65536, max_headers=100, max_body=114688,
                 header_timeout=30.0, keepalive_timeout=75.0, drain_grace=5.0, max_line=16384):
        self.max_url = max_url              # eventlet's max_header_line in nova-api is 16384
        self.max_line = max_line            # one header line, name and value: the same bound
        self.max_head = max_head            # all header lines together
        self.max_headers = max_headers
        self.max_body = max_body            # nova's [oslo_middleware] max_request_body_size
        self.header_timeout = header_timeout    # a request must be complete this long after
        self.keepalive_timeout = keepalive_timeout  # its first byte; idle / not-reading limit
        # A drain closes idle keep-alive connections at once, but a connection that has not sent
        # its first byte yet is a request on its way (the client connects, then writes): it gets
        # this long to start one before the drain closes it (Go's Shutdown does the same for
        # connections in StateNew).  Closing it at once reset clients in the middle of a reload.
        self.drain_grace = drain_grace

    @classmethod
    def from_options(cls, options):
        given = {name: getattr(options, name) for name in cls.__slots__
                 if getattr(options, name, None) is not None}
        return cls(**given)

    def shortest(self) -> float:
        return min(self.header_timeout, self.keepalive_timeout)


DEFAULT_LIMITS = Limits()


def request_line(line: bytes) -> int:
    """LINE_* flags of a whole request line (without its line end)."""
    if line[-1:] == b"\r":
        line = line[:-1]
    if line[-9:-1] != b" HTTP/1." or line[-1:] not in (b"0", b"1"):
        return 0
    flags = LINE_HTTP1 | (LINE_11 if line[-1:] == b"1" else 0)
    return flags | (LINE_GET if line[:4] == b"GET " else 0)


def crlf_state(state: int, piece: bytes) -> int:
    """How much of CRLF CRLF the bytes fed so far end with (0-3), after ``piece``: a blank line
    may straddle two reads.  Only the last three bytes matter once there are three."""
    if len(piece) >= 3:
        state, piece = 0, piece[-3:]
    for c in piece:
        if c == 13:
            state = 3 if state == 2 else 1
        elif c == 10 and state in (1, 3):
            state = 2 if state == 1 else 0
        else:
            state = 0
    return state


def canned(status: int) -> bytes:
    """A fixed answer for input we will not parse further; the connection closes after it."""
    body = b"%d %s" % (status, _CANNED[status])
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, _CANNED[status], len(body), body))


def split_target(url: bytes) -> tuple[bytes, bytes]:
    """(path, query) of a request target.  The origin form every client sends is split here
    (httptools.parse_url builds a URL object, ~0.5 us); other forms go through httptools."""
    if url[:1] == b"/" and b"#" not in url:
        path, _, query = url.partition(b"?")
        return path, query
    parsed = httptools.parse_url(url)
    return parsed.path or b"/", parsed.query or b""


class _Reject(Exception):
    """Raised from a parser callback; httptools re-raises it as HttpParserCallbackError, so the
    status travels in ``HttpProtocol.rejected``."""
