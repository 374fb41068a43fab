# cython: language_level=3
"""The compiled fast path of the commonest request: ``GET /v2.1/servers/{id}`` that succeeds.

Clients poll servers by id all day (``wait_for_server``, Horizon, Terraform).  Once the caller's
token, microversion header and Host have been answered once by the general path (fastnova.api.app
memoizes them), such a request needs no routing, parsing or error handling.  The compiled protocol
(``_protocol.pyx``) hands it over as the raw bytes httptools gave, before any Request object is
built: one slot of a hashed table resolves the caller (identity, microversion, link prefixes),
a B-tree walk over LMDB's mapped pages under a held snapshot finds the blob (_mapped.pyx; py-lmdb
when that cannot be done), and the whole response (status line, nova's headers, a fresh request
id, the document with its links filled in) is written into one exactly-sized bytes object, read
straight from the memory-mapped page.  No Python frame runs.

Anything else (another path, a query string, a Content-Type, an Accept other than
application/json, a memo miss, an unknown or foreign server, an error) returns None and the
general path answers, so the two can never disagree: tests/unit/test_fastpath.py compares their
answers byte for byte.
"""
import logging
import os
from email.utils import formatdate

from fastnova.api.context import Context
from fastnova.config import current as _settings
from fastnova.store.layout import DB_SERVERS, ROLE_ADMIN, ROLE_MEMBER, VIEW_SHOW
from fastnova._ext._mapped cimport MappedDB
from fastnova._ext._speedups cimport _Blob

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcmp, memcpy
from libc.time cimport time

from posix.time cimport clock_gettime, timespec

cdef extern from "<time.h>" nogil:
    const int CLOCK_REALTIME_COARSE


cdef inline double _now() noexcept nogil:
    """Wall time, from the vDSO's coarse clock (~20 ns, 1-4 ms resolution): enough to expire a
    caller whose token's cache time is counted in seconds."""
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME_COARSE, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef extern from "Python.h":
    ctypedef struct Py_buffer:
        void* buf
        Py_ssize_t len
    Py_buffer* PyMemoryView_GET_BUFFER(object)


LOG = logging.getLogger("fastnova.fastpath")
# mapped_reads off (FASTNOVA_MAPPED_READS=0) reads every blob through py-lmdb (an escape hatch,
# and the reference for benchmarks): see _mapped.pyx.
cdef bint MAPPED_READS = _settings().mapped_reads

cdef bytes PREFIX = b"/v2.1/servers/"
cdef Py_ssize_t PREFIX_LEN = 14
cdef Py_ssize_t UUID_LEN = 36
cdef Py_ssize_t CALLERS_MAX = 4096     # slots, a power of two
cdef Py_ssize_t ID_BYTES = 16
cdef Py_ssize_t POOL_IDS = 256

cdef bytes HEAD_1 = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
cdef bytes HEAD_2 = b"\r\nx-openstack-request-id: "
cdef bytes HEAD_3 = b"\r\nx-compute-request-id: "
cdef bytes CLOSE = b"Connection: close\r\n"
cdef bytes OPEN = b'{"server":'
cdef Py_ssize_t RID_LEN = 40           # req-xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx
cdef const char* HEX = b"0123456789abcdef"
cdef const char* VARIANT = b"89ab"     # RFC 4122 variant (10xx), as uuid.uuid4() sets it


cdef class _Caller:
    pass


def plain_accept(accept):
    """An Accept header under which the answer is application/json (absent, or what clients
    send): others may ask for nova's vnd type or a version (fastnova.api.media) and go to the
    general path, as does any request with a Content-Type (it may be nova's 415)."""
    return accept is None or accept in ("application/json", "*/*")


cdef uint64_t FNV_START = 14695981039346656037ULL
cdef uint64_t FNV_PRIME = 1099511628211ULL


cdef inline uint64_t _fnv(uint64_t h, Span value) noexcept:
    """FNV-1a over a header value (absent when n < 0), with a marker that keeps absent, empty
    and the boundaries between values apart."""
    cdef const uint8_t* p = <const uint8_t*>value.p
    cdef Py_ssize_t i
    if value.n < 0:
        return (h ^ 0x100) * FNV_PRIME
    for i in range(value.n):
        h = (h ^ p[i]) * FNV_PRIME
    return (h ^ (0x200 + value.n)) * FNV_PRIME


cdef inline Span _span(object value) noexcept:
    """A header value as httptools gave it (bytes or None) as a Span."""
    cdef Span s
    if value is None:
        s.p = NULL
        s.n = -1
    else:
        s.p = PyBytes_AS_STRING(value)
        s.n = PyBytes_GET_SIZE(value)
    return s


cdef inline object _value(Span s):
    """A Span as the bytes (or None) the general path's memos are keyed by."""
    return None if s.n < 0 else PyBytes_FromStringAndSize(s.p, s.n)


cdef inline bint _contains(const char* hay, Py_ssize_t n, const char* needle,
                           Py_ssize_t m) noexcept:
    """needle occurs in hay: a plain scan, cheaper than memmem's set-up for a 50-byte URL."""
    cdef Py_ssize_t i
    if m == 0:
        return True
    for i in range(n - m + 1):
        if hay[i] == needle[0] and memcmp(hay + i, needle, m) == 0:
            return True
    return False


cdef inline bint _same(object a, Span b) noexcept:
    """A remembered header value (bytes or None) equals the one sent."""
    if a is None or b.n < 0:
        return a is None and b.n < 0
    return PyBytes_GET_SIZE(a) == b.n and memcmp(PyBytes_AS_STRING(a), b.p, b.n) == 0


cdef inline char* _put(char* out, bytes data) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    memcpy(out, PyBytes_AS_STRING(data), n)
    return out + n


cdef inline char* _hex(char* out, const uint8_t* raw, int start, int stop) noexcept:
    cdef int i
    for i in range(start, stop):
        out[0] = HEX[raw[i] >> 4]
        out[1] = HEX[raw[i] & 15]
        out += 2
    return out


cdef inline int _digits(char* out, Py_ssize_t n) noexcept:
    """n >= 0 in decimal into out (at most 20 bytes); the count of digits."""
    cdef char tmp[24]
    cdef int i = 0, k
    while True:
        tmp[i] = <char>(48 + n % 10)
        n //= 10
        i += 1
        if n == 0:
            break
    for k in range(i):
        out[k] = tmp[i - 1 - k]
    return i


cdef class FastShow:

    def __init__(self, app, mapped=None):
        """mapped: read blobs in place (_mapped.pyx); None: unless FASTNOVA_MAPPED_READS=0."""
        self.app = app
        self.use_mapped = MAPPED_READS if mapped is None else bool(mapped)
        # The reader's environment is the worker's for its whole life (the commands write
        # through the same one: fastnova.store.env), so it is attached once, here.
        self.reader = app.reader
        self.servers = app.reader.servers
        self.identity = app._identity
        self.versions = app._versions
        self.hosts = app._hosts
        self.links = app._links
        self.callers = [None] * CALLERS_MAX
        self.pool = b""
        self.pool_pos = 0
        self.date_second = -1
        self.date_header = b""
        self.mapped = None
        self.blob = _Blob()
        self._attach(app.reader.env)

    def answer(self, req):
        """The framed 200 answer to a Request, or None: let the general path answer."""
        if req.method != "GET" or req.query or req.content_type is not None \
                or not plain_accept(req.accept) or req.service_token is not None:
            return None
        try:
            url = req.path.encode("utf-8")
            token = None if req.token is None else req.token.encode("latin-1")
            mv_header = None if req.mv_header is None else req.mv_header.encode("latin-1")
            mv_legacy = None if req.mv_legacy is None else req.mv_legacy.encode("latin-1")
            host = None if req.host is None else req.host.encode("latin-1")
        except UnicodeError:
            return None
        return self.answer_raw(url, token, mv_header, mv_legacy, host, req.keep_alive)

    cdef object answer_raw(self, bytes url, object token, object mv_header, object mv_legacy,
                           object host, bint keep_alive):
        """The same, from what httptools gave (a GET's target and header values as bytes)."""
        return self.answer_span(PyBytes_AS_STRING(url), PyBytes_GET_SIZE(url), _span(token),
                                _span(mv_header), _span(mv_legacy), _span(host), keep_alive)

    cdef object answer_span(self, const char* url, Py_ssize_t url_n, Span token, Span mv_header,
                            Span mv_legacy, Span host, bint keep_alive):
        """The same, from spans of the request's bytes (the protocol's quick recognizer
        passes them without making a bytes object of each)."""
        if url_n != PREFIX_LEN + UUID_LEN or \
                memcmp(url, PyBytes_AS_STRING(PREFIX), PREFIX_LEN) != 0:
            return None
        cdef const char* uuid = url + PREFIX_LEN
        cdef Py_ssize_t i
        cdef char c
        for i in range(UUID_LEN):       # an id is [0-9a-fA-F-]; anything else is not ours
            c = uuid[i]
            if not (b'0' <= c <= b'9' or b'a' <= c <= b'f' or b'A' <= c <= b'F' or c == b'-'):
                return None
        # The caller: one slot of a direct-mapped table, found by a hash of the four header
        # values and confirmed by comparing them (a collision just resolves again).
        cdef uint64_t h = _fnv(_fnv(_fnv(_fnv(FNV_START, token), mv_header), mv_legacy), host)
        cdef Py_ssize_t slot = <Py_ssize_t>(h & (CALLERS_MAX - 1))
        cdef object item = <object>PyList_GET_ITEM(self.callers, slot)
        cdef _Caller who = None
        if item is not None:
            who = <_Caller>item
            if who.key_hash != h or not _same(who.token, token) \
                    or not _same(who.mv_header, mv_header) \
                    or not _same(who.mv_legacy, mv_legacy) or not _same(who.host, host) \
                    or who.until <= _now():     # its token's validation expired
                who = None
        if who is None:
            token_b, mv_header_b = _value(token), _value(mv_header)
            mv_legacy_b, host_b = _value(mv_legacy), _value(host)
            who = self._resolve(token_b, mv_header_b, mv_legacy_b, host_b)
            if who is None:
                return None
            who.key_hash = h
            who.token, who.mv_header, who.mv_legacy, who.host = \
                token_b, mv_header_b, mv_legacy_b, host_b
            self.callers[slot] = who
        # nova puts the caller's project id in links when it appears anywhere in the URL.
        cdef bytes root = who.root, vroot = who.vroot
        if _contains(url, url_n, PyBytes_AS_STRING(who.project), PyBytes_GET_SIZE(who.project)):
            if who.proot is None:
                return None
            root, vroot = who.proot, who.pvroot
        return self._show(uuid, who, root, vroot, keep_alive)

    cdef _Caller _resolve(self, object token, object mv_header, object mv_legacy, object host):
        """Who asks, from the general path's memos (a miss: let it answer first)."""
        ctx = self.identity.get(None if token is None else token.decode("latin-1"))
        if type(ctx) is not Context or ctx.until <= _now() or not ctx.show_ok:
            return None         # unknown, expired or refused: the general path answers
        version = self.versions.get((None if mv_header is None else mv_header.decode("latin-1"),
                                     None if mv_legacy is None else mv_legacy.decode("latin-1")))
        if type(version) is not tuple:
            return None
        host_url = self.hosts.get(None if host is None else host.decode("latin-1"))
        if type(host_url) is not str:
            return None
        links = self.links.get((host_url, False, ""))
        if links is None:
            return None
        cdef _Caller who = _Caller()
        who.project = ctx.project_id.encode("utf-8")
        who.owner = None if ctx.is_admin else who.project
        who.mask = (ROLE_ADMIN if ctx.admin_view else ROLE_MEMBER) | VIEW_SHOW
        who.until = ctx.until
        who.minor = version[0]
        who.extra = version[1]
        who.root, who.vroot = links.root, links.vroot
        plinks = self.links.get((host_url, False, "/" + ctx.project_id))
        who.proot = None if plinks is None else plinks.root
        who.pvroot = None if plinks is None else plinks.vroot
        return who

    cdef object _show(self, const char* uuid, _Caller who, bytes root, bytes vroot,
                      bint keep_alive):
        cdef _Blob b = self.blob        # one per worker: a request is answered in one go
        cdef Py_buffer* buf
        cdef const uint8_t* data
        cdef size_t size
        cdef int rc
        if self.mapped is not None:
            # The usual way: the blob read in place from the data file under a held snapshot
            # (_mapped.pyx); -1 means "not readable here", and py-lmdb answers instead.
            rc = self.mapped.get(uuid, UUID_LEN, &data, &size)
            if rc == 0:
                return None
            if rc == 1:
                b.view(data, size)
                return self._frame(b, who, root, vroot, keep_alive)
        # Positional arguments: py-lmdb would otherwise get a keyword dict built per call.
        txn = self.env.begin(None, None, False, True)   # buffers=True
        try:
            blob = txn.get(PyBytes_FromStringAndSize(uuid, UUID_LEN), None, self.servers)
            if blob is None:
                return None
            # The blob is read in place, in the mapped page, valid until the transaction ends.
            buf = PyMemoryView_GET_BUFFER(blob)
            b.view(<const uint8_t*>buf.buf, buf.len)
            return self._frame(b, who, root, vroot, keep_alive)
        finally:
            txn.abort()

    cdef void _attach(self, env) except *:
        """Read this environment's servers in place from now on, if it can be (see _mapped)."""
        if self.mapped is not None:
            self.mapped.close()
            self.mapped = None
        self.env = env
        if not self.use_mapped:
            return
        try:
            self.mapped = MappedDB(env, DB_SERVERS)
        except (OSError, ValueError, KeyError) as exc:
            LOG.warning("reading the store through py-lmdb only: %s", exc)

    def forget_callers(self):
        """Drop every memoised caller (the policy changed: their answers may have)."""
        self.callers = [None] * CALLERS_MAX

    def release_if_stale(self):
        """End a held store snapshot once the store has moved on (the worker's tick)."""
        if self.mapped is not None:
            self.mapped.release_if_stale()

    @property
    def held_snapshot(self):
        """The transaction id of the store snapshot held between requests, or None."""
        return None if self.mapped is None else self.mapped.snapshot

    @property
    def mapped_reads(self):
        """(snapshots taken, reads that fell back to py-lmdb), or None when not reading in
        place."""
        if self.mapped is None:
            return None
        return (self.mapped.renewals, self.mapped.failures)

    cdef object _frame(self, _Blob b, _Caller who, bytes root, bytes vroot, bint keep_alive):
        """The whole 200 answer for the blob b, or None (deleted, or not the caller's)."""
        cdef Py_ssize_t doc, body, total
        cdef char digits[24]
        cdef int ndigits
        cdef char* out
        if b.deleted or (who.owner is not None and not b.owned_by(who.owner)):
            return None
        doc = b.measure(who.minor, who.mask, PyBytes_GET_SIZE(root), PyBytes_GET_SIZE(vroot))
        body = PyBytes_GET_SIZE(OPEN) + doc + 1
        ndigits = _digits(digits, body)
        date = self._date()
        total = (PyBytes_GET_SIZE(HEAD_1) + ndigits + PyBytes_GET_SIZE(HEAD_2) + RID_LEN
                 + PyBytes_GET_SIZE(HEAD_3) + RID_LEN + 2 + PyBytes_GET_SIZE(who.extra)
                 + PyBytes_GET_SIZE(date) + (0 if keep_alive else PyBytes_GET_SIZE(CLOSE))
                 + 2 + body)
        answer = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(answer)
        out = _put(out, HEAD_1)
        memcpy(out, digits, ndigits)
        out += ndigits
        out = _put(out, HEAD_2)
        self._request_id(out)
        memcpy(out + RID_LEN + PyBytes_GET_SIZE(HEAD_3), out, RID_LEN)
        out += RID_LEN
        out = _put(out, HEAD_3)
        out += RID_LEN
        out[0] = b'\r'
        out[1] = b'\n'
        out = _put(out + 2, who.extra)
        out = _put(out, date)
        if not keep_alive:
            out = _put(out, CLOSE)
        out[0] = b'\r'
        out[1] = b'\n'
        out = _put(out + 2, OPEN)
        out = b.write(out, who.minor, who.mask, PyBytes_AS_STRING(root),
                      PyBytes_GET_SIZE(root), PyBytes_AS_STRING(vroot),
                      PyBytes_GET_SIZE(vroot))
        out[0] = b'}'
        return answer

    cdef bytes _date(self):
        """The Date header, formatted at most once a second."""
        cdef long now = time(NULL)
        if now != self.date_second:
            self.date_header = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
            self.date_second = now
        return self.date_header

    cdef void _request_id(self, char* out) except *:
        """``req-<uuid4>`` into out (40 bytes), 16 bytes of a urandom pool per id."""
        if self.pool_pos + ID_BYTES > PyBytes_GET_SIZE(self.pool):
            self.pool = os.urandom(ID_BYTES * POOL_IDS)
            self.pool_pos = 0
        cdef const uint8_t* raw = <const uint8_t*>PyBytes_AS_STRING(self.pool) + self.pool_pos
        self.pool_pos += ID_BYTES
        memcpy(out, b"req-", 4)
        out = _hex(out + 4, raw, 0, 4)
        out[0] = b'-'
        out = _hex(out + 1, raw, 4, 6)
        out[0] = b'-'
        out[1] = b'4'                  # version 4: the high nibble of byte 6 is replaced
        out[2] = HEX[raw[6] & 15]
        out = _hex(out + 3, raw, 7, 8)
        out[0] = b'-'
        out[1] = VARIANT[raw[8] & 3]   # the variant: the high bits of byte 8 are replaced
        out[2] = HEX[raw[8] & 15]
        out = _hex(out + 3, raw, 9, 10)
        out[0] = b'-'
        _hex(out + 1, raw, 10, 16)
