# cython: language_level=3
"""Compiled twin of fastnova/api/protocol.py (the HTTP/1.1 protocol that feeds httptools).

Same states, limits and answers as the pure class, line for line; what changes is the cost.
httptools calls on_header once per header line: in Python that callback (count, bound checks,
lower-case, lookup) was ~1 us of a ~20 us request; typed here it is ~0.1 us.  Tests run the same
cases against both (tests/functional/test_http_protocol.py), and the worker takes this one when it is
built (fastnova.api.protocol.HttpProtocol).
"""
import asyncio
import collections

import httptools

from fastnova.api.app import LOG, Request
from fastnova._ext._fastpath cimport FastShow, Span
from fastnova._ext._observe cimport Recorder
from fastnova.api.http1 import (CONTINUE, DEFAULT_LIMITS, SLICE, _Reject, canned,
                                parse_error_status, split_target)

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp

cdef extern from "<strings.h>":
    int strncasecmp(const char* a, const char* b, size_t n)


cdef extern from "<string.h>":
    void* memchr(const void* s, int c, size_t n)
    void* memmem(const void* h, size_t hn, const void* n, size_t nn)


cdef enum:
    LINE_HTTP1 = 1      # the request line ends in HTTP/1.0 or HTTP/1.1
    LINE_GET = 2        # and its method is GET
    LINE_11 = 4         # and its version is 1.1


cdef inline int _line_flags(const char* p, Py_ssize_t end) noexcept:
    """LINE_* flags of a whole request line p[:end] (without its LF); as the pure
    fastnova.api.http1.request_line.  httptools parses the same line and rejects it if it is
    malformed; the flags also spare two Python calls (get_http_version, get_method)."""
    cdef int flags
    if end > 0 and p[end - 1] == 13:
        end -= 1
    if end < 9 or memcmp(p + end - 9, b" HTTP/1.", 8) != 0 or \
            (p[end - 1] != 49 and p[end - 1] != 48):                  # "1" or "0"
        return 0
    flags = LINE_HTTP1 | (LINE_11 if p[end - 1] == 49 else 0)
    if end >= 4 and memcmp(p, b"GET ", 4) == 0:
        flags |= LINE_GET
    return flags


cdef inline int _crlf_state(int state, const char* p, Py_ssize_t n) noexcept:
    """As the pure fastnova.api.http1.crlf_state."""
    cdef Py_ssize_t i
    cdef char c
    if n >= 3:
        state = 0
        p += n - 3
        n = 3
    for i in range(n):
        c = p[i]
        if c == 13:
            state = 3 if state == 2 else 1
        elif c == 10 and (state == 1 or state == 3):
            state = 2 if state == 1 else 0
        else:
            state = 0
    return state


# -- the quick recognizer ------------------------------------------------------------------
#
# httptools calls back into this class once per header line, plus four times per message; for a
# show request those calls were a third of its instructions.  When a chunk holds exactly one whole
# request of the plainest form (GET, an unreserved target, HTTP/1.1, token-named headers with
# printable values, CRLF everywhere, no body, nothing after it), _quick reads what the fast path
# needs straight from its bytes.  It only *recognizes*: anything it is not sure of (another method
# or version, a byte outside its tables, framing headers, a repeated header that matters, a limit
# reached, a split or pipelined request) returns 0 and httptools parses the chunk as before, so
# every refusal and error is still httptools' and the general path's.  Where it says yes,
# tests/unit/test_quick.py checks that httptools reads the same request from the same bytes.

cdef struct Quick:
    const char* url
    Py_ssize_t url_n
    Span host, token, mv_header, mv_legacy
    bint keep_alive

cdef unsigned char TCHAR[256]     # header-name characters (RFC 9110 token)
cdef unsigned char UCHAR[256]     # target characters taken here: unreserved, "/", "%"
cdef unsigned char VCHAR[256]     # header-value characters taken here: HT, SP to "~"


cdef void _tables() noexcept:
    cdef int c
    cdef bint alnum
    cdef const char* extra = b"!#$%&'*+-.^_`|~"
    for c in range(256):
        alnum = (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)
        TCHAR[c] = 1 if alnum or (c != 0 and memchr(extra, c, 15) != NULL) else 0
        UCHAR[c] = 1 if alnum or c in (45, 46, 95, 126, 47, 37) else 0      # - . _ ~ / %
        VCHAR[c] = 1 if c == 9 or 32 <= c <= 126 else 0


_tables()


cdef inline bint _named(const char* p, Py_ssize_t n, const char* name, Py_ssize_t m) noexcept:
    return n == m and strncasecmp(p, name, m) == 0


cdef inline void _absent(Span* s) noexcept:
    s.p = NULL
    s.n = -1


cdef int _quick(const char* p, Py_ssize_t n, Quick* q, Py_ssize_t max_url,
                Py_ssize_t max_headers, Py_ssize_t max_head, Py_ssize_t max_line) noexcept:
    """1 when p[:n] is one whole plain GET request, its target and the headers that matter put
    in q; 0 when httptools should read it (see above)."""
    cdef Py_ssize_t i, start, name_n, v, vend, count = 0, total = 0
    cdef const unsigned char* u = <const unsigned char*>p
    cdef const char* name
    cdef Span* slot
    cdef bint seen_connection = False
    # The message ends exactly at the chunk's end, so every scan below stops at a CR or LF
    # before running off it (none of the tables holds either).
    if n < 18 or n > max_head or memcmp(p, b"GET /", 5) != 0 or \
            memcmp(p + n - 4, b"\r\n\r\n", 4) != 0:
        return 0
    i = 4
    while UCHAR[u[i]]:
        i += 1
    q.url = p + 4
    q.url_n = i - 4
    if q.url_n > max_url or i + 11 > n or memcmp(p + i, b" HTTP/1.1\r\n", 11) != 0:
        return 0
    i += 11
    _absent(&q.host)
    _absent(&q.token)
    _absent(&q.mv_header)
    _absent(&q.mv_legacy)
    q.keep_alive = True
    while True:
        if u[i] == 13:                          # the blank line; it must be the chunk's end
            # HTTP/1.1 without Host is a 400: httptools' path says it
            return 1 if i + 2 == n and q.host.n >= 0 else 0
        start = i
        while TCHAR[u[i]]:
            i += 1
        name_n = i - start
        if name_n == 0 or u[i] != 58:           # ":" right after the name (no obs-fold)
            return 0
        i += 1
        while u[i] == 32 or u[i] == 9:          # leading whitespace is not the value's
            i += 1
        v = i
        while VCHAR[u[i]]:
            i += 1
        vend = i
        if u[i] != 13 or u[i + 1] != 10:        # only CRLF ends a line here
            return 0
        if vend > v and (u[vend - 1] == 32 or u[vend - 1] == 9):
            return 0                            # trailing whitespace: httptools decides
        i += 2
        count += 1
        total += name_n + (vend - v)
        if count > max_headers or total > max_head or name_n + (vend - v) > max_line:
            return 0
        name = p + start
        slot = NULL
        if _named(name, name_n, b"host", 4):
            slot = &q.host
        elif _named(name, name_n, b"x-auth-token", 12):
            slot = &q.token
        elif _named(name, name_n, b"openstack-api-version", 21):
            slot = &q.mv_header
        elif _named(name, name_n, b"x-openstack-nova-api-version", 28):
            slot = &q.mv_legacy
        elif _named(name, name_n, b"connection", 10):
            if seen_connection:
                return 0
            seen_connection = True
            if _named(p + v, vend - v, b"keep-alive", 10):
                q.keep_alive = True
            elif _named(p + v, vend - v, b"close", 5):
                q.keep_alive = False
            else:
                return 0
        elif _named(name, name_n, b"content-type", 12):
            return 0                            # maybe nova's 415: the general path decides
        elif _named(name, name_n, b"x-service-token", 15):
            return 0                            # validated beside the user's token: likewise
        elif _named(name, name_n, b"accept", 6):
            if not (_named(p + v, vend - v, b"application/json", 16) or
                    _named(p + v, vend - v, b"*/*", 3)):
                return 0                        # maybe nova's vnd type: likewise
        elif _named(name, name_n, b"content-length", 14) or \
                _named(name, name_n, b"transfer-encoding", 17) or \
                _named(name, name_n, b"upgrade", 7) or \
                _named(name, name_n, b"proxy-connection", 16):
            return 0                            # framing and connection semantics
        if slot != NULL:
            if slot.n >= 0 or vend == v:        # repeated, or empty: httptools decides
                return 0
            slot.p = p + v
            slot.n = vend - v


def quick_parse(bytes data, Py_ssize_t max_url=16384, Py_ssize_t max_headers=100,
                Py_ssize_t max_head=65536, Py_ssize_t max_line=16384):
    """What _quick reads from data, for tests: None when it leaves data to httptools, else
    (target, host, token, microversion header, legacy microversion header, keep-alive)."""
    cdef Quick q
    if not _quick(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &q, max_url, max_headers,
                  max_head, max_line):
        return None

    def value(Span s):
        return None if s.n < 0 else PyBytes_FromStringAndSize(s.p, s.n)
    return (PyBytes_FromStringAndSize(q.url, q.url_n), value(q.host), value(q.token),
            value(q.mv_header), value(q.mv_legacy), bool(q.keep_alive))


cdef inline bytes _joined(bytes seen, bytes value):
    """Repeated fields read as one comma-joined list, as WSGI servers hand them on."""
    return value if seen is None else seen + b", " + value


cdef int SERVER_SHOW = 12            # fastnova.api.router.SERVER_SHOW (metrics' route label)
cdef inline object _value(Span s):
    return None if s.n < 0 else PyBytes_FromStringAndSize(s.p, s.n)


cdef class HttpProtocol:
    cdef public object app, loop, stats, limits, transport, parser
    cdef public object pending, waiting, mark
    cdef FastShow fast
    cdef Recorder rec                 # the worker's counters and access log (None in tests)
    cdef long long t0                 # when the bytes being answered arrived (us, monotonic)
    cdef object peer                  # the client's address, for the access log
    cdef bint keep_raw
    cdef object get_method, keep_alive_fn, write_fn, feed_fn
    cdef bytes url
    cdef object host, token, mv_header, mv_legacy, content_type, accept, service_token
    cdef list body, raw_headers
    cdef Py_ssize_t header_bytes, header_count, head_bytes, body_size
    cdef int line                     # LINE_* of the message being parsed, when known
    cdef Py_ssize_t max_url, max_head, max_headers, max_body, max_line
    # Stopping at message boundaries (see fastnova/api/protocol.py's docstring):
    cdef public bytes held            # read, not parsed: parsing stopped at a boundary
    cdef int crlf                     # _crlf_state of what was fed
    cdef bint fresh                   # the piece being fed starts a message
    cdef object line_part             # the request line so far, while not whole (bytes)
    cdef Py_ssize_t content_length    # -1: none
    cdef Py_ssize_t body_left         # Content-Length body bytes not fed yet
    cdef object te
    cdef bint expect
    cdef public bint in_request, headers_done, paused, closing, failed, draining
    cdef public long answered
    cdef public long quick            # answers sent by the quick recognizer (tests look)
    cdef public int rejected
    cdef public double since

    def __init__(self, app, loop, stats=None, limits=DEFAULT_LIMITS):
        self.app = app
        self.loop = loop
        self.stats = stats
        self.rec = stats if isinstance(stats, Recorder) else None
        self.t0 = 0
        self.peer = "-"
        self.limits = limits
        self.max_url = limits.max_url
        self.max_head = limits.max_head
        self.max_headers = limits.max_headers
        self.max_body = limits.max_body
        self.max_line = limits.max_line
        self.held = b""
        self.line_part = None
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending = collections.deque()
        fast = getattr(app, "fast", None)
        self.fast = fast if isinstance(fast, FastShow) else None
        # Every header as sent is kept only when something forwards it (an upstream nova-api).
        self.keep_raw = getattr(app, "upstream", None) is not None
        # Bound methods looked up once, not per request.
        self.get_method = self.parser.get_method
        self.keep_alive_fn = self.parser.should_keep_alive
        self.feed_fn = self.parser.feed_data
        self.write_fn = None
        self.waiting = None
        self.mark = None
        self.since = 0.0
        self.answered = 0
        self.rejected = 0
        self._reset()

    cdef void _reset(self):
        self.url = b""
        self.host = self.token = self.mv_header = self.mv_legacy = None
        self.content_type = self.accept = self.service_token = None
        self.body = None
        self.raw_headers = None
        self.header_bytes = self.header_count = self.body_size = 0
        self.content_length = -1
        self.body_left = 0
        self.te = None
        self.expect = False

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.write_fn = transport.write
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
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        self._resume()

    cdef inline bint _must_wait(self):
        return self.paused or self.waiting is not None or len(self.pending) != 0

    cdef void _resume(self) except *:
        self._answer_pending()
        if PyBytes_GET_SIZE(self.held) and not self.closing and not self._must_wait():
            held = self.held
            self.held = b""
            self._consume(held)
        if not self.closing and self.transport is not None and \
                PyBytes_GET_SIZE(self.held) == 0 and not self._must_wait():
            self.transport.resume_reading()

    cdef void _answer_pending(self):
        while self.pending and not self.paused and not self.closing and self.waiting is None:
            item = self.pending.popleft()
            if isinstance(item, int):
                self._fail(item)
            else:
                self._answer(item)

    def data_received(self, data):
        if self.rec is not None:
            self.t0 = self.rec.now()
        if self.closing or self.failed:
            return
        if type(data) is not bytes:
            data = bytes(data)
        if PyBytes_GET_SIZE(self.held):          # reading was paused; keep the order
            self.held += data
            self.transport.pause_reading()
            return
        # The hot path: one whole plain show request, answered before any splitting.
        if not self.in_request and self.fast is not None and self._quick_answer(data):
            return
        self._consume(data, True)

    cdef void _consume(self, bytes data, bint tried=False) except *:
        """Feed data in pieces that end where a message may end; stop at a boundary once
        answers must wait, holding the rest (``tried``: data was offered to _quick whole)."""
        cdef Py_ssize_t start = 0, end, n = PyBytes_GET_SIZE(data)
        cdef const char* p = PyBytes_AS_STRING(data)
        while start < n:
            if self.closing or self.failed:
                return
            if not self.in_request and self._must_wait():
                self.held = data if start == 0 else PyBytes_FromStringAndSize(p + start, n - start)
                self.transport.pause_reading()
                return
            end = self._piece_end(p, start, n)
            if start == 0 and end == n:
                self._feed(data, tried)
            else:
                self._feed(PyBytes_FromStringAndSize(p + start, end - start), False)
            start = end

    cdef Py_ssize_t _piece_end(self, const char* p, Py_ssize_t start, Py_ssize_t n):
        cdef Py_ssize_t limit = n if n - start <= SLICE else start + SLICE
        cdef Py_ssize_t need
        cdef const char* hit
        cdef const char* blank = b"\r\n\r\n"
        if self.in_request and self.headers_done and self.body_left > 0:
            return limit if limit - start <= self.body_left else start + self.body_left
        if self.in_request and self.crlf:
            need = 4 - self.crlf
            if n - start >= need and memcmp(p + start, blank + self.crlf, need) == 0:
                return start + need      # a blank line straddling two reads
        hit = <const char*>memmem(p + start, limit - start, b"\r\n\r\n", 4)
        return limit if hit == NULL else (hit - p) + 4

    cdef void _feed(self, bytes chunk, bint tried) except *:
        if self.closing or self.failed:
            return
        if not tried and not self.in_request and self.fast is not None and \
                self._quick_answer(chunk):
            return
        self.head_bytes += PyBytes_GET_SIZE(chunk)
        if not self.in_request:
            self.fresh = True
            self.line_part = b""
        if self.line_part is not None:
            self._scan_line(chunk)
        try:
            self.feed_fn(chunk)
            if self.in_request and not self.headers_done and self.head_bytes > self.max_head:
                self._reject(431)
        except _Reject:
            self._fail(self.rejected or 400)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError as exc:
            self._fail(self.rejected or parse_error_status(exc, self.te))
        self.fresh = False
        self.crlf = _crlf_state(self.crlf, PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk))

    cdef void _scan_line(self, bytes chunk) except *:
        """Gather the request line of a message that starts with this piece until it is whole
        (empty lines before a request are skipped, as httptools does)."""
        cdef bytes part
        cdef const char* p
        cdef const char* eol
        cdef Py_ssize_t n, skip = 0
        if PyBytes_GET_SIZE(self.line_part):
            part = self.line_part + chunk
        else:
            p = PyBytes_AS_STRING(chunk)
            n = PyBytes_GET_SIZE(chunk)
            while skip < n and (p[skip] == 13 or p[skip] == 10):
                skip += 1
            part = chunk if skip == 0 else chunk[skip:]
        p = PyBytes_AS_STRING(part)
        n = PyBytes_GET_SIZE(part)
        eol = <const char*>memchr(p, 10, n)
        if eol != NULL:
            self.line = _line_flags(p, eol - p)
            self.line_part = None
        elif n > self.max_url + 64:
            self.line = 0                # on_url answers 414 first
            self.line_part = None
        else:
            self.line_part = part

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self):
        self.in_request = True
        self.headers_done = False
        if not self.fresh:             # not at a piece's start: its request line is unseen
            self.line = 0
            self.line_part = None
        self.fresh = False
        self._reset()

    def on_url(self, bytes url):
        # Nearly always the whole target in one piece: keep it rather than concatenate.
        self.url = url if PyBytes_GET_SIZE(self.url) == 0 else self.url + url
        if PyBytes_GET_SIZE(self.url) > self.max_url:
            self._reject(414)

    def on_header(self, bytes name, bytes value):
        cdef Py_ssize_t nlen = PyBytes_GET_SIZE(name)
        self.header_count += 1
        self.header_bytes += nlen + PyBytes_GET_SIZE(value)
        if self.header_count > self.max_headers or self.header_bytes > self.max_head or \
                nlen + PyBytes_GET_SIZE(value) > self.max_line:
            self._reject(431)
        if self.keep_raw:
            if self.raw_headers is None:
                self.raw_headers = []
            self.raw_headers.append((name, value))
        # Only six names matter; their lengths tell them apart, then one case-blind compare.
        cdef const char* n = PyBytes_AS_STRING(name)
        if nlen == 4:
            if strncasecmp(n, b"host", 4) == 0:
                if self.host is not None:
                    self._reject(400)      # RFC 9112 3.2: more than one Host is a 400
                self.host = value
        elif nlen == 12:
            if strncasecmp(n, b"x-auth-token", 12) == 0:
                self.token = _joined(self.token, value)
            elif strncasecmp(n, b"content-type", 12) == 0:
                self.content_type = _joined(self.content_type, value)
        elif nlen == 15:
            if strncasecmp(n, b"x-service-token", 15) == 0:
                self.service_token = _joined(self.service_token, value)
        elif nlen == 6:
            if strncasecmp(n, b"accept", 6) == 0:
                self.accept = _joined(self.accept, value)
            elif strncasecmp(n, b"expect", 6) == 0:
                self.expect = value.strip().lower() == b"100-continue"
        elif nlen == 14:
            if strncasecmp(n, b"content-length", 14) == 0:
                try:
                    self.content_length = int(value)
                except ValueError:
                    pass               # httptools refuses it
        elif nlen == 17:
            if strncasecmp(n, b"transfer-encoding", 17) == 0:
                if self.te is not None:
                    self._reject(400)  # nginx takes one Transfer-Encoding field only
                self.te = value
        elif nlen == 21:
            if strncasecmp(n, b"openstack-api-version", 21) == 0:
                self.mv_header = _joined(self.mv_header, value)
        elif nlen == 28:
            if strncasecmp(n, b"x-openstack-nova-api-version", 28) == 0:
                self.mv_legacy = _joined(self.mv_legacy, value)

    def on_headers_complete(self):
        # As the pure twin: llhttp takes "GET /" as HTTP/0.9, "GET / RTSP/1.0" as 1.0.
        cdef int line = self.line
        if not line & LINE_HTTP1:
            self._reject(400)
        if line & LINE_11 and self.host is None:
            self._reject(400)          # RFC 9112 3.2, as nginx (HTTP/1.0 needs none)
        if self.te is not None:
            if not line & LINE_11:
                self._reject(400)
            if self.te.lower() != b"chunked":
                self._reject(501)
        if self.content_length >= 0:
            if self.content_length > self.max_body:
                self._reject(413)      # at once: the body is not read
            self.body_left = self.content_length
        if self.expect and line & LINE_11 and (self.content_length > 0 or self.te is not None) \
                and not self._must_wait():
            self.transport.write(CONTINUE)
        self.headers_done = True
        self.head_bytes = 0

    def on_body(self, bytes body):
        self.body_size += PyBytes_GET_SIZE(body)
        self.body_left -= PyBytes_GET_SIZE(body)
        if self.body_size > self.max_body:
            self._reject(413)
        if self.body is None:
            self.body = []
        self.body.append(body)

    def on_message_complete(self):
        cdef int line = self.line
        self.line = 0                  # a pipelined message after this one asks httptools
        self.in_request = False
        self.head_bytes = 0
        if self.closing:
            return
        if self.fast is not None and not self.pending and not self.paused \
                and self.waiting is None and not self.draining and self._fast(line):
            return
        req = self._request()
        if req is None:
            self._reject(400)
        if self.pending or self.paused or self.waiting is not None:
            self.pending.append(req)
            self.transport.pause_reading()
        else:
            self._answer(req)

    # -- answering -----------------------------------------------------------------------------

    cdef bint _quick_answer(self, bytes chunk) except *:
        """Answer a chunk that is one plain show request without httptools (see _quick)."""
        cdef Quick q
        if self.keep_raw or self.pending or self.paused or self.waiting is not None \
                or self.draining:
            return False
        if not _quick(PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk), &q, self.max_url,
                      self.max_headers, self.max_head, self.max_line):
            return False
        try:
            answer = self.fast.answer_span(q.url, q.url_n, q.token, q.mv_header, q.mv_legacy,
                                           q.host, q.keep_alive)
        except Exception:   # never the client's problem: log it, let httptools read it
            LOG.exception("fast path failed on a quick GET")
            return False
        if answer is None:
            return False
        # Counted before it leaves: a client that has its answer finds it counted.
        if self.rec is not None:
            self.rec.record(SERVER_SHOW, answer, self.t0)
            if self.rec.logging:
                self.rec.log(self.peer, b"GET", PyBytes_FromStringAndSize(q.url, q.url_n),
                             answer, self.t0, _value(q.token))
        elif self.stats is not None:
            self.stats.requests += 1
        self.write_fn(answer)
        self.answered += 1
        self.quick += 1
        if not q.keep_alive:
            self._close()
        return True

    cdef bint _fast(self, int line) except *:
        """Answer a successful GET /v2.1/servers/{id} from the raw bytes, without a Request."""
        if self.body is not None or (not line & LINE_GET and self.get_method() != b"GET"):
            return False
        if self.content_type is not None or not (self.accept is None or
                                                 self.accept == b"application/json" or
                                                 self.accept == b"*/*"):
            return False        # nova's 415, vnd type or version: the general path decides
        if self.service_token is not None:
            return False        # keystone: both tokens are validated on the general path
        keep_alive = self.keep_alive_fn()
        try:
            answer = self.fast.answer_raw(self.url, self.token, self.mv_header, self.mv_legacy,
                                          self.host, keep_alive)
        except Exception:   # never the client's problem: log it, let the general path answer
            LOG.exception("fast path failed on GET %r", self.url)
            return False
        if answer is None:
            return False
        if self.rec is not None:
            self.rec.record(SERVER_SHOW, answer, self.t0)
            if self.rec.logging:
                self.rec.log(self.peer, b"GET", self.url, answer, self.t0, self.token)
        elif self.stats is not None:
            self.stats.requests += 1
        self.write_fn(answer)
        self.answered += 1
        if not keep_alive:
            self._close()
        return True

    cdef void _answer(self, req) except *:
        if self.draining:
            req.keep_alive = False
        answer = self.app.handle(req)
        if type(answer) is not bytes:
            self.waiting = asyncio.ensure_future(answer, loop=self.loop)
            self.waiting.add_done_callback(lambda fut: self._awaited(fut, req))
            return
        self._write(answer, req)

    def _awaited(self, fut, req):
        self.waiting = None
        if self.closing or fut.cancelled():
            return
        self._write(fut.result(), req)
        self._resume()

    cdef void _write(self, bytes answer, req) except *:
        if self.rec is not None:
            self.rec.record(req.route, answer, self.t0)
            if self.rec.logging:
                self.rec.log(self.peer, req.method, req.path + ("?" + req.query if req.query
                             else ""), answer, self.t0, req.token)
        elif self.stats is not None:
            self.stats.requests += 1
        self.transport.write(answer)
        self.answered += 1
        if not req.keep_alive:
            self._close()

    def drain(self):
        # As the pure protocol: a connection that has answered nothing may have its first
        # request on the wire; it gets limits.drain_grace (check) instead of a reset.
        self.draining = True
        if (self.answered and not self.in_request and not self.pending
                and self.waiting is None and PyBytes_GET_SIZE(self.held) == 0):
            self._close()

    def check(self, double now):
        if self.closing:
            self._check_closing(now)
            return
        mark = (self.answered, self.in_request, len(self.pending))
        if mark != self.mark or self.waiting is not None:
            self.mark, self.since = mark, now
            return
        if self.pending or self.paused:
            limit, status = self.limits.keepalive_timeout, None
        elif self.in_request:
            limit, status = self.limits.header_timeout, 408
        elif self.answered == 0:
            limit, status = self.limits.header_timeout, None
            if self.draining:
                limit = min(limit, self.limits.drain_grace)
        else:
            limit, status = self.limits.keepalive_timeout, None
        if now - self.since > limit:
            if status is None:
                self._close()
            else:
                self._fail(status)

    cdef void _check_closing(self, double now) except *:
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

    cdef object _request(self):
        try:
            path, query = split_target(self.url)
            return Request(
                self.parser.get_method().decode("ascii"),
                path.decode("utf-8"),
                query.decode("utf-8"),
                None if self.host is None else self.host.decode("latin-1"),
                None if self.token is None else self.token.decode("latin-1"),
                None if self.mv_header is None else self.mv_header.decode("latin-1"),
                None if self.mv_legacy is None else self.mv_legacy.decode("latin-1"),
                self.parser.should_keep_alive(),
                b"" if self.body is None else b"".join(self.body),
                None if self.content_type is None else self.content_type.decode("latin-1"),
                () if self.raw_headers is None else self.raw_headers,
                None if self.accept is None else self.accept.decode("latin-1"),
                None if self.service_token is None else
                self.service_token.decode("latin-1"))
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError, ValueError):
            return None

    cdef void _reject(self, int status) except *:
        self.rejected = status
        raise _Reject(status)

    cdef void _fail(self, int status) except *:
        if (self.pending or self.waiting is not None) and not self.closing:
            self.pending.append(status)
            self.failed = True
            return
        if self.transport is not None and not self.closing:
            self.transport.write(canned(status))
        self._close()

    cdef void _close(self) except *:
        self.closing = True
        self.pending.clear()
        self.held = b""
        if self.transport is not None:
            self.transport.close()
