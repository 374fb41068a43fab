"""Forwarding to an upstream nova-api, for every request fastnova does not answer itself.

fastnova serves the read path (and the commands it implements) from its store; anything else
(os-hypervisors, os-aggregates, migrations, consoles, …) goes to the nova-api given by
``--upstream URL`` so that a client sees one complete compute API.  Without an upstream such
requests get nova's own 501 fault (fastnova.api.app).

The client is deliberately small: HTTP/1.1 with keep-alive connections pooled per worker, the
response parsed by httptools, hop-by-hop headers dropped, and ``X-Forwarded-Host`` /
``X-Forwarded-Proto`` set so that a nova-api with ``[oslo_middleware]
enable_proxy_headers_parsing = True`` builds its links with the host the client used.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from urllib.parse import urlsplit

import httptools

from fastnova.api import errors

LOG = logging.getLogger("fastnova.upstream")

HOP_BY_HOP = frozenset((
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length",
))
CONNECT_TIMEOUT = 5.0
ANSWER_TIMEOUT = 120.0        # nova answers some actions (live snapshot, attach) slowly
POOL_SIZE = 16


class Relayed:
    """An upstream answer to pass on as it is: status, header lines, body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: bytes, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body


class _Response:
    """httptools response callbacks, collecting one answer."""

    def __init__(self):
        self.headers = []
        self.body = []
        self.done = False

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        self.done = True


class Upstream:
    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("upstream must be an http(s) URL, got %r" % url)
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        self.netloc = parts.netloc.encode()
        self.idle = []

    async def forward(self, method: str, target: str, headers, body: bytes,
                      client_host: str | None) -> Relayed:
        """Send one request upstream and return its answer; ApiError 503 if unreachable."""
        request = self._encode(method, target, headers, body, client_host)
        for attempt in (0, 1):
            conn = self._take()
            fresh = conn is None
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port, ssl=self.ssl),
                        CONNECT_TIMEOUT)
                answer, keep = await asyncio.wait_for(self._exchange(conn, request),
                                                      ANSWER_TIMEOUT)
            except (OSError, asyncio.TimeoutError, httptools.HttpParserError,
                    ConnectionError, asyncio.IncompleteReadError) as exc:
                _close(conn)
                if not fresh and attempt == 0:
                    continue        # a pooled connection the upstream had closed: retry once
                LOG.warning("upstream %s:%d failed: %r", self.host, self.port, exc)
                raise errors.fault(503, "The upstream compute API is not available.") from exc
            self._give(conn, keep)
            return answer
        raise AssertionError("unreachable")

    def _encode(self, method, target, headers, body, client_host) -> bytes:
        lines = [b"%s %s%s HTTP/1.1\r\nHost: %s\r\n" % (
            method.encode(), self.prefix.encode(), target.encode(), self.netloc)]
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and not name.lower().startswith(b"x-forwarded-"):
                lines.append(b"%s: %s\r\n" % (name, value))
        if client_host:
            lines.append(b"X-Forwarded-Host: %s\r\nX-Forwarded-Proto: http\r\n"
                         % client_host.encode("latin-1"))
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        lines.append(body)
        return b"".join(lines)

    @staticmethod
    async def _exchange(conn, request: bytes):
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        collected = _Response()
        parser = httptools.HttpResponseParser(collected)
        while not collected.done:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("upstream closed the connection mid-answer")
            parser.feed_data(chunk)
        head = b"".join(b"%s: %s\r\n" % (n, v) for n, v in collected.headers
                        if n.lower() not in HOP_BY_HOP)
        answer = Relayed(parser.get_status_code(), head, b"".join(collected.body))
        return answer, parser.should_keep_alive()

    def _take(self):
        while self.idle:
            conn = self.idle.pop()
            if not conn[0].at_eof():
                return conn
            _close(conn)
        return None

    def _give(self, conn, keep: bool):
        if keep and len(self.idle) < POOL_SIZE:
            self.idle.append(conn)
        else:
            _close(conn)


def _close(conn):
    if conn is not None:
        conn[1].close()
