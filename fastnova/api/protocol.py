"""The HTTP/1.1 protocol: the one module that feeds httptools.

Keep-alive and pipelining: httptools calls on_message_complete once per request in the order the
bytes arrived, and every answer is produced synchronously (a read holds no await), so pipelined
answers go out in order.  Bad input gets one fixed 4xx and the connection is closed; nothing a
client sends can raise out of data_received.  A client that stops reading makes us stop reading
(transport flow control), and an idle or trickling connection is closed by a timer.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

import httptools

from fastnova.api.app import Request

LOG = logging.getLogger("fastnova.http")

MAX_URL = 16384                  # bytes; eventlet's max_header_line in nova-api is 16384 too
MAX_HEADERS_BYTES = 65536        # all header lines together
MAX_HEADERS = 100
MAX_BODY = 114688                # nova's [oslo_middleware] max_request_body_size default
IDLE_TIMEOUT = 75.0              # keep-alive idle, seconds
HEADER_TIMEOUT = 30.0            # a request must be complete this long after its first byte

_CANNED = {
    400: b"Bad Request", 408: b"Request Timeout", 413: b"Request Entity Too Large",
    414: b"Request-URI Too Long", 431: b"Request Header Fields Too Large",
}


def canned(status: int) -> bytes:
    """A fixed answer for input we will not parse further; the connection closes after it."""
    body = b"%d %s" % (status, _CANNED[status])
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, _CANNED[status], len(body), body))


class _Reject(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


# Header names we keep, lower-case bytes -> Request attribute.
_WANTED = {
    b"host": "host",
    b"x-auth-token": "token",
    b"openstack-api-version": "mv_header",
    b"x-openstack-nova-api-version": "mv_legacy",
    b"content-type": "content_type",
}


class HttpProtocol:
    """An asyncio protocol (uvloop calls these methods; no base class needed)."""

    def __init__(self, app, loop, stats=None):
        self.app = app
        self.loop = loop
        self.stats = stats
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers = {}
        self.header_bytes = 0
        self.header_count = 0
        self.body_size = 0
        self.timer = None
        self.closing = False
        self.paused = False
        self.in_request = False
        self.draining = False
        self.body = []
        # Answers not yet written, in request order: bytes, or a future for a command that
        # awaits the database.  Pipelined answers must leave in the order requests came.
        self.queue = deque()

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        if self.stats is not None:
            self.stats.connections += 1
        self._arm(IDLE_TIMEOUT)

    def connection_lost(self, exc):
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None

    def eof_received(self):
        return False

    def pause_writing(self):
        # The client is not reading its answers: stop reading its requests until it does.
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def data_received(self, data):
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except _Reject as rej:
            self._fail(rej.status)
        except httptools.HttpParserUpgrade:
            # Upgrade/CONNECT: nova speaks neither; whatever was answered stands, then close.
            self._close()
        except httptools.HttpParserError:
            self._fail(400)

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self):
        self.in_request = True
        self.url = b""
        self.headers = {}
        self.header_bytes = 0
        self.header_count = 0
        self.body_size = 0
        self.body = []
        self._arm(HEADER_TIMEOUT)

    def on_url(self, url):
        self.url += url
        if len(self.url) > MAX_URL:
            raise _Reject(414)

    def on_header(self, name, value):
        self.header_count += 1
        self.header_bytes += len(name) + len(value)
        if self.header_count > MAX_HEADERS or self.header_bytes > MAX_HEADERS_BYTES:
            raise _Reject(431)
        attr = _WANTED.get(name.lower())
        if attr is not None:
            self.headers[attr] = value

    def on_body(self, body):
        self.body_size += len(body)
        if self.body_size > MAX_BODY:
            raise _Reject(413)
        self.body.append(body)

    def on_message_complete(self):
        if self.closing or self.transport is None:
            return
        self.in_request = False
        req = self._request()
        if req is None:
            raise _Reject(400)
        if self.stats is not None:
            self.stats.requests += 1
        result = self.app.handle(req)
        if not self.queue and isinstance(result, bytes):
            self._send(result, req.keep_alive)     # the read path: answered at once
            return
        if not isinstance(result, bytes):
            result = asyncio.ensure_future(result, loop=self.loop)
            result.add_done_callback(self._flush)
        self.queue.append((result, req.keep_alive))
        self._flush()

    def _flush(self, _future=None):
        while self.queue and not self.closing:
            item, keep_alive = self.queue[0]
            if not isinstance(item, bytes):
                if not item.done():
                    return
                item = item.result()     # App.handle's coroutine never raises
            self.queue.popleft()
            self._send(item, keep_alive)

    def _send(self, data, keep_alive):
        if self.transport is None or self.closing:
            return
        self.transport.write(data)
        if not keep_alive or (self.draining and not self.queue and not self.in_request):
            self._close()
        elif not self.in_request:
            self._arm(IDLE_TIMEOUT)

    def drain(self):
        """Graceful stop: close now if idle, else right after the answers in progress."""
        self.draining = True
        if not self.in_request and not self.queue:
            self._close()

    # -- helpers -------------------------------------------------------------------------------

    def _request(self):
        try:
            parsed = httptools.parse_url(self.url)
            h = {k: v.decode("latin-1") for k, v in self.headers.items()}
            return Request(
                body=b"".join(self.body),
                method=self.parser.get_method().decode("ascii"),
                path=(parsed.path or b"/").decode("utf-8"),
                query=(parsed.query or b"").decode("utf-8"),
                keep_alive=self.parser.should_keep_alive(),
                **h)
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError, ValueError):
            return None

    def _arm(self, seconds):
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._timeout)

    def _timeout(self):
        self.timer = None
        if self.transport is not None and not self.closing:
            if self.in_request:
                self._fail(408)
            else:
                self._close()

    def _fail(self, status):
        if self.transport is not None and not self.closing:
            self.transport.write(canned(status))
        self._close()

    def _close(self):
        self.closing = True
        if self.transport is not None:
            self.transport.close()
