"""The HTTP/1.1 protocol: the one module that feeds httptools.

Keep-alive and pipelining: httptools calls on_message_complete once per request in the order the
bytes arrived, and every answer is produced synchronously (a read holds no await), so pipelined
answers go out in order.  Bad input gets one fixed 4xx and the connection is closed; nothing a
client sends can raise out of data_received.

Bounded memory per connection:
- headers: httptools buffers a header line until it is complete and has no size limit of its own,
  so input is fed in slices of at most SLICE bytes and the bytes of an unfinished head are counted
  between slices: at most ``max_head + SLICE`` bytes are ever buffered for one head (431 beyond);
- answers: a client that pipelines without reading fills the transport's write buffer; past its
  high-water mark further complete requests wait in ``pending`` (small objects, not answers) and
  reading stops, so at most one read's worth of requests waits and no answer is built early.

Timeouts cost no timer per request: the worker calls ``check(now)`` on every connection a few
times per timeout, and a connection whose state has not moved for too long is closed (408 when a
request was under way).
"""
from __future__ import annotations

import asyncio
import collections
import logging

import httptools

from fastnova.api.app import Request
from fastnova._ext import compiled

LOG = logging.getLogger("fastnova.http")

SLICE = 16384                    # bytes fed to httptools at once (see module docstring)

_CANNED = {
    400: b"Bad Request", 408: b"Request Timeout", 413: b"Request Entity Too Large",
    414: b"Request-URI Too Long", 431: b"Request Header Fields Too Large",
}


class Limits:
    """Sizes and timeouts; the worker builds one from the serve options."""

    __slots__ = ("max_url", "max_head", "max_headers", "max_body", "header_timeout",
                 "keepalive_timeout", "drain_grace")

    def __init__(self, max_url=16384, max_head=65536, max_headers=100, max_body=114688,
                 header_timeout=30.0, keepalive_timeout=75.0, drain_grace=5.0):
        self.max_url = max_url              # eventlet's max_header_line in nova-api is 16384
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


# Header names we keep, lower-case bytes -> Request attribute.
_WANTED = {
    b"host": "host",
    b"x-auth-token": "token",
    b"openstack-api-version": "mv_header",
    b"x-openstack-nova-api-version": "mv_legacy",
    b"content-type": "content_type",
    b"accept": "accept",            # nova answers a no-route 404 by Accept (webob)
}


class HttpProtocol:
    """An asyncio protocol (uvloop calls these methods; no base class needed)."""

    def __init__(self, app, loop, stats=None, limits: Limits = DEFAULT_LIMITS):
        self.app = app
        self.loop = loop
        self.stats = stats
        # The worker's recorder (fastnova.serve.observe): counters and the access log.
        self.rec = stats if hasattr(stats, "record") else None
        self.t0 = 0
        self.peer = "-"
        self.limits = limits
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers = {}
        self.header_bytes = 0
        self.header_count = 0
        self.head_bytes = 0            # raw bytes fed since the last head or message ended
        self.body_size = 0
        self.body = []
        self.raw_headers = []          # every header as sent: forwarded to an upstream nova-api
        self.waiting = None            # a command's answer being awaited: later ones queue
        self.in_request = False
        self.headers_done = False
        self.answered = 0
        self.pending = collections.deque()  # complete requests waiting for write room
        self.paused = False
        self.closing = False
        self.rejected = 0              # status a callback chose before raising _Reject
        self.failed = False            # an error answer is queued behind pending ones
        self.draining = False
        self.mark = None               # (answered, in_request, len(pending)) at the last check
        self.since = 0.0

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.since = self.loop.time()
        if self.stats is not None:
            self.stats.connections += 1
        if self.rec is not None and self.rec.logging:
            peer = transport.get_extra_info("peername")
            self.peer = peer[0] if peer else "-"

    def connection_lost(self, exc):
        self.closing = True
        self.pending.clear()
        self.transport = None
        if self.waiting is not None:
            self.waiting.cancel()

    def eof_received(self):
        return False

    def pause_writing(self):
        # The client is not reading its answers: stop reading its requests until it does.
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        self._answer_pending()
        if not self.paused and not self.closing and self.transport is not None \
                and self.waiting is None:
            self.transport.resume_reading()

    def _answer_pending(self):
        while self.pending and not self.paused and not self.closing and self.waiting is None:
            item = self.pending.popleft()
            if isinstance(item, int):
                self._fail(item)
            else:
                self._answer(item)

    def data_received(self, data):
        if self.rec is not None:
            self.t0 = self.rec.now()
        if len(data) <= SLICE:
            self._feed(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), SLICE):
            if self.closing or self.failed:
                return
            self._feed(view[start:start + SLICE])

    def _feed(self, chunk):
        if self.closing or self.failed:
            return
        self.head_bytes += len(chunk)
        try:
            self.parser.feed_data(chunk)
            if self.in_request and not self.headers_done and \
                    self.head_bytes > self.limits.max_head:
                self._reject(431)
        except _Reject:
            self._fail(self.rejected or 400)
        except httptools.HttpParserUpgrade:
            # Upgrade/CONNECT: nova speaks neither; whatever was answered stands, then close.
            self._close()
        except httptools.HttpParserError:
            self._fail(self.rejected or 400)

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self):
        self.in_request = True
        self.headers_done = False
        self.url = b""
        self.headers = {}
        self.header_bytes = 0
        self.header_count = 0
        self.body_size = 0
        self.body = []
        self.raw_headers = []

    def on_url(self, url):
        self.url += url
        if len(self.url) > self.limits.max_url:
            self._reject(414)

    def on_header(self, name, value):
        self.header_count += 1
        self.header_bytes += len(name) + len(value)
        if self.header_count > self.limits.max_headers or \
                self.header_bytes > self.limits.max_head:
            self._reject(431)
        self.raw_headers.append((name, value))
        attr = _WANTED.get(name.lower())
        if attr is not None:
            if attr not in self.headers:
                self.headers[attr] = value
            elif attr == "host":
                self._reject(400)      # RFC 9112 3.2: more than one Host is a 400
            else:
                # Repeated fields read as one comma-joined list, as WSGI servers hand them on
                # (nova then takes the last microversion item, as microversion_parse does).
                self.headers[attr] += b", " + value

    def on_headers_complete(self):
        if self.parser.get_http_version() not in ("1.1", "1.0"):
            self._reject(400)          # llhttp takes "GET /" as HTTP/0.9; nova never spoke it
        self.headers_done = True
        self.head_bytes = 0

    def on_body(self, body):
        self.body_size += len(body)
        if self.body_size > self.limits.max_body:
            self._reject(413)
        self.body.append(body)

    def on_message_complete(self):
        self.in_request = False
        self.head_bytes = 0
        if self.closing:
            return
        req = self._request()
        if req is None:
            self._reject(400)
        if self.pending or self.paused or self.waiting is not None:
            # Stop reading until the queue empties: it then holds at most one read's requests.
            self.pending.append(req)
            self.transport.pause_reading()
        else:
            self._answer(req)

    # -- answering -----------------------------------------------------------------------------

    def _answer(self, req):
        if self.draining:
            req.keep_alive = False     # the answer says "Connection: close", then we close
        answer = self.app.handle(req)
        if type(answer) is not bytes:
            # A command awaits the database or an upstream: answers after it must wait for it,
            # so that pipelined answers still leave in request order.
            self.waiting = asyncio.ensure_future(answer, loop=self.loop)
            self.waiting.add_done_callback(lambda fut: self._awaited(fut, req))
            return
        self._write(answer, req)

    def _awaited(self, fut, req):
        self.waiting = None
        if self.closing or fut.cancelled():
            return
        self._write(fut.result(), req)     # App.handle's coroutine answers every error itself
        self._answer_pending()
        if not self.paused and not self.closing and self.transport is not None:
            self.transport.resume_reading()

    def _write(self, answer, req):
        rec = self.rec
        if rec is not None:            # before it leaves: a client with its answer finds it
            rec.record(req.route, answer, self.t0)
            if rec.logging:
                rec.log(self.peer, req.method, req.path + ("?" + req.query if req.query else ""),
                        answer, self.t0, req.token)
        elif self.stats is not None:
            self.stats.requests += 1
        self.transport.write(answer)
        self.answered += 1
        if not req.keep_alive:
            self._close()

    def drain(self):
        """Graceful stop: close now if idle, else right after the answer in progress.

        A connection that has answered nothing and is not inside a request is not idle: its
        first request may be on the wire.  It is answered (then closed), or closed by check()
        after ``limits.drain_grace``.
        """
        self.draining = True
        if (self.answered and not self.in_request and not self.pending
                and self.waiting is None):
            self._close()

    def check(self, now: float):
        """Called periodically by the worker: close a connection stuck in one state too long."""
        if self.closing:
            self._check_closing(now)
            return
        mark = (self.answered, self.in_request, len(self.pending))
        if mark != self.mark or self.waiting is not None:
            self.mark, self.since = mark, now
            return
        if self.pending or self.paused:
            limit, status = self.limits.keepalive_timeout, None   # client not reading
        elif self.in_request:
            limit, status = self.limits.header_timeout, 408
        elif self.answered == 0:
            limit, status = self.limits.header_timeout, None      # connected, sent nothing
            if self.draining:
                limit = min(limit, self.limits.drain_grace)
        else:
            limit, status = self.limits.keepalive_timeout, None   # idle keep-alive
        if now - self.since > limit:
            if status is None:
                self._close()
            else:
                self._fail(status)

    def _check_closing(self, now: float):
        """Closed, its last answers still being flushed: a peer that takes no byte of them for
        keepalive_timeout would hold the connection and its buffer for ever; abort it."""
        if self.transport is None:
            return
        mark = ("closing", self.transport.get_write_buffer_size())
        if mark != self.mark:
            self.mark, self.since = mark, now
        elif now - self.since > self.limits.keepalive_timeout:
            self.transport.abort()

    # -- helpers -------------------------------------------------------------------------------

    def _request(self):
        try:
            path, query = split_target(self.url)
            h = {k: v.decode("latin-1") for k, v in self.headers.items()}
            return Request(
                method=self.parser.get_method().decode("ascii"),
                path=path.decode("utf-8"),
                query=query.decode("utf-8"),
                keep_alive=self.parser.should_keep_alive(),
                body=b"".join(self.body),
                raw_headers=self.raw_headers,
                **h)
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError, ValueError):
            return None

    def _reject(self, status):
        self.rejected = status
        raise _Reject(status)

    def _fail(self, status):
        if (self.pending or self.waiting is not None) and not self.closing:
            # Earlier requests still wait for their answers: the error goes out after them.
            self.pending.append(status)
            self.failed = True
            return
        if self.transport is not None and not self.closing:
            self.transport.write(canned(status))
        self._close()

    def _close(self):
        self.closing = True
        self.pending.clear()
        if self.transport is not None:
            self.transport.close()


# The class the workers use: the compiled twin (fastnova/_ext/_protocol.pyx) unless
# FASTNOVA_PURE=1 or it is not built.  FASTNOVA_REQUIRE_EXT=1 makes "not built" an error.
PureHttpProtocol = HttpProtocol


def _select():
    return compiled("_protocol", "HttpProtocol") or PureHttpProtocol


HttpProtocol = _select()
