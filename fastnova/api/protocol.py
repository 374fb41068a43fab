"""The HTTP/1.1 protocol: the one module that feeds httptools.

Keep-alive and pipelining: httptools calls on_message_complete once per request in the order the
bytes arrived, and every answer is produced synchronously (a read holds no await), so pipelined
answers go out in order.  Bad input gets one fixed 4xx and the connection is closed; nothing a
client sends can raise out of data_received.

Bounded memory per connection:
- headers: httptools buffers a header line until it is complete and has no size limit of its own,
  so input is fed in slices of at most SLICE bytes and the bytes of an unfinished head are counted
  between slices: at most ``max_head + SLICE`` bytes are ever buffered for one head (431 beyond);
- answers: a client that pipelines without reading fills the transport's write buffer.  Past its
  high-water mark (``pause_writing``), or while a command's answer is awaited, parsing stops at
  the next message boundary and reading stops: the rest of the read waits in ``held`` as raw
  bytes (at most one read, which the transports keep small) and is parsed, from exactly where
  it stopped, once answers may flow again.  No request is parsed, and no answer built, early.

Message boundaries.  httptools cannot be paused, so each read is fed in pieces that end where a
message may end: after a head's blank line (heads and chunked bodies end with CRLF CRLF) or
exactly at the end of a Content-Length body.  After a piece, a parser that is not inside a
message is at a boundary, and the next piece starts the next message.  That is also where the
request line is checked (``request_line``): httptools accepts ``RTSP/1.0`` as version 1.0, and
RFC 9112 (as nginx) answers anything but ``HTTP/1.0`` or ``HTTP/1.1`` with 400.

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
from fastnova.api.http1 import (  # noqa: F401  (READ_SIZE... are read from here too)
    CONTINUE, CRLF2, DEFAULT_LIMITS, LINE_11, LINE_GET, LINE_HTTP1, READ_SIZE, SLICE,
    WRITE_HIGH, WRITE_LOW, Limits, _Reject, canned, crlf_state, parse_error_status,
    request_line, split_target)
from fastnova._ext import compiled

LOG = logging.getLogger("fastnova.http")

# Header names we keep, lower-case bytes -> Request attribute.
_WANTED = {
    b"host": "host",
    b"x-auth-token": "token",
    b"openstack-api-version": "mv_header",
    b"x-openstack-nova-api-version": "mv_legacy",
    b"content-type": "content_type",
    b"accept": "accept",            # nova answers a no-route 404 by Accept (webob)
    b"x-service-token": "service_token",    # keystone: validated beside the user's token
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
        self.held = b""                # read, not parsed: parsing stopped at a boundary
        self.crlf = 0                  # crlf_state of what was fed
        self.fresh = False             # the piece being fed starts a message
        self.line = 0                  # LINE_* of the message being parsed
        self.line_part = None          # its request line so far, while not whole
        self.content_length = None
        self.body_left = 0             # Content-Length body bytes not fed yet
        self.te = None
        self.expect = False

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
        self.held = b""
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
        self._resume()

    def _must_wait(self):
        """Answers cannot go out now: the next request must not be parsed yet."""
        return self.paused or self.waiting is not None or bool(self.pending)

    def _resume(self):
        """Answers may flow again: answer what waits, parse what is held, then read again."""
        self._answer_pending()
        if self.held and not self.closing and not self._must_wait():
            held, self.held = self.held, b""
            self._consume(held)
        if not self.closing and self.transport is not None and not self.held \
                and not self._must_wait():
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
        data = bytes(data)
        if self.held:                  # reading was paused; keep the order
            self.held += data
            self.transport.pause_reading()
            return
        self._consume(data)

    def _consume(self, data: bytes):
        """Feed data in pieces that end where a message may end (module docstring); stop at a
        boundary once answers must wait, holding the rest."""
        start, n = 0, len(data)
        while start < n:
            if self.closing or self.failed:
                return
            if not self.in_request and self._must_wait():
                self.held = data[start:]
                self.transport.pause_reading()
                return
            end = self._piece_end(data, start, n)
            self._feed(data if start == 0 and end == n else data[start:end])
            start = end

    def _piece_end(self, data, start, n):
        limit = min(n, start + SLICE)
        if self.in_request and self.headers_done and self.body_left > 0:
            return min(limit, start + self.body_left)
        if self.in_request and self.crlf:
            rest = CRLF2[self.crlf:]
            if data[start:start + len(rest)] == rest:
                return start + len(rest)         # a blank line straddling two reads
        hit = data.find(CRLF2, start, limit)
        return limit if hit < 0 else hit + 4

    def _feed(self, chunk):
        if self.closing or self.failed:
            return
        self.head_bytes += len(chunk)
        if not self.in_request:
            self.fresh = True
            self.line_part = b""
        if self.line_part is not None:
            self._scan_line(chunk)
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
        except httptools.HttpParserError as exc:
            self._fail(self.rejected or parse_error_status(exc, self.te))
        self.fresh = False
        self.crlf = crlf_state(self.crlf, chunk)

    def _scan_line(self, chunk):
        """Gather the request line of a message that starts with this piece until it is whole
        (empty lines before a request are skipped, as httptools does)."""
        part = self.line_part + chunk if self.line_part else chunk.lstrip(b"\r\n")
        eol = part.find(b"\n")
        if eol >= 0:
            self.line, self.line_part = request_line(part[:eol]), None
        elif len(part) > self.limits.max_url + 64:
            self.line, self.line_part = 0, None       # on_url answers 414 first
        else:
            self.line_part = part

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self):
        self.in_request = True
        self.headers_done = False
        if not self.fresh:             # not at a piece's start: its request line is unseen
            self.line, self.line_part = 0, None
        self.fresh = False
        self.content_length = self.te = None
        self.body_left = 0
        self.expect = False
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
                self.header_bytes > self.limits.max_head or \
                len(name) + len(value) > self.limits.max_line:
            self._reject(431)
        self.raw_headers.append((name, value))
        lower = name.lower()
        attr = _WANTED.get(lower)
        if attr is None:
            self._framing(lower, value)
        else:
            if attr not in self.headers:
                self.headers[attr] = value
            elif attr == "host":
                self._reject(400)      # RFC 9112 3.2: more than one Host is a 400
            else:
                # Repeated fields read as one comma-joined list, as WSGI servers hand them on
                # (nova then takes the last microversion item, as microversion_parse does).
                self.headers[attr] += b", " + value

    def _framing(self, lower, value):
        """The headers that say how the body comes (kept for on_headers_complete)."""
        if lower == b"content-length":
            try:
                self.content_length = int(value)
            except ValueError:
                pass                   # httptools refuses it
        elif lower == b"transfer-encoding":
            if self.te is not None:
                self._reject(400)      # nginx takes one Transfer-Encoding field only
            self.te = value
        elif lower == b"expect":
            self.expect = value.strip().lower() == b"100-continue"

    def on_headers_complete(self):
        # llhttp takes "GET /" as HTTP/0.9 and "GET / RTSP/1.0" as 1.0; nova never spoke them
        if not self.line & LINE_HTTP1:
            self._reject(400)
        if self.line & LINE_11 and "host" not in self.headers:
            self._reject(400)          # RFC 9112 3.2, as nginx (HTTP/1.0 needs none)
        if self.te is not None:
            if not self.line & LINE_11:
                self._reject(400)      # as nginx: HTTP/1.0 has no Transfer-Encoding
            if self.te.lower() != b"chunked":
                self._reject(501)      # as nginx: ",chunked", "gzip, chunked", ...
        length = self.content_length
        if length is not None:
            if length > self.limits.max_body:
                self._reject(413)      # at once: the body is not read
            self.body_left = length
        if self.expect and self.line & LINE_11 and (length or self.te is not None) \
                and not self._must_wait():
            self.transport.write(CONTINUE)
        self.headers_done = True
        self.head_bytes = 0

    def on_body(self, body):
        self.body_size += len(body)
        self.body_left -= len(body)
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
        self._resume()

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
                and self.waiting is None and not self.held):
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
        self.held = b""
        if self.transport is not None:
            self.transport.close()


# The class the workers use: the compiled twin (fastnova/_ext/_protocol.pyx) unless
# FASTNOVA_PURE=1 or it is not built.  FASTNOVA_REQUIRE_EXT=1 makes "not built" an error.
PureHttpProtocol = HttpProtocol


def _select():
    return compiled("_protocol", "HttpProtocol") or PureHttpProtocol


HttpProtocol = _select()
