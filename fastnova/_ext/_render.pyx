# cython: language_level=3
"""Compiled twins of the feed's write-time work (the applier's hot loop): rendering a server's
view parts (twin of fastnova.views.servers' parts), packing them into its view blob, and its
index entries (twin of fastnova.store.writer.index_entries_pure).

Packing: same bytes as the pure twin, ``fastnova.views.servers.pack_parts_pure`` (assemble, then
``fastnova.store.layout.pack_blob``); tests/test_writer_incremental.py runs both.  The pure
twin builds a list of pieces, a join per piece and a struct per header (~15 µs a server, a fifth
of a feed update, profiled); here the chunks are measured, then copied once into an exactly
sized bytes object.  Chunks are borrowed from ``parts``, which holds them for the whole call.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.string cimport memcpy

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const unsigned char* PyUnicode_1BYTE_DATA(object)
    void PyObject_GC_UnTrack(void*)


# The tuples (and index dicts) made here hold only bytes, None, booleans and the gates' int
# tuples, so they can never be part of a reference cycle; they are taken off the cycle
# collector's lists when made (CPython itself untracks such tuples, but only when a collection
# first walks them).  The writer's render cache keeps ~70 of them per server: they were most
# of what the applier's collections walked (gc_collect_main, a sixth of its time, py-spy).
cdef inline object _untracked(object obj):
    PyObject_GC_UnTrack(<void*>obj)
    return obj


cdef inline tuple _pair(object a, object b):
    return _untracked((a, b))

from fastnova._ext._speedups cimport BLOB_FORMAT, FLAG_DELETED, HEAD, PIECE_HEAD

cdef enum:
    MAX_GATES = 64
    MAX_CHUNKS = 512


cdef struct Chunks:
    # What one call has seen: the distinct gates, and each gate's raw and member chunks as
    # lists linked through ``next`` (in the order of the parts), so that ordering the gates and
    # writing a piece each walk only what they need (a patch's blob was ~7,000 instructions of
    # an update with one pass over every chunk per gate, callgrind).
    Py_ssize_t ngates
    Py_ssize_t nchunks
    Py_ssize_t norder
    PyObject* gate[MAX_GATES]          # borrowed from parts
    unsigned char lo[MAX_GATES]
    unsigned char hi[MAX_GATES]
    unsigned char mask[MAX_GATES]
    Py_ssize_t size[MAX_GATES]         # bytes of the gate's piece
    Py_ssize_t first[MAX_GATES][2]     # first chunk of the gate: [0] member, [1] raw; -1: none
    Py_ssize_t last[MAX_GATES][2]
    Py_ssize_t order[MAX_GATES]        # gates in blob order
    bint placed[MAX_GATES]             # already in order
    Py_ssize_t next[MAX_CHUNKS]        # the next chunk of the same gate and kind; -1: none
    PyObject* chunk[MAX_CHUNKS]        # borrowed bytes


cdef unsigned char _byte(object value) except? 0:
    cdef long n = value
    if n < 0 or n > 255:
        raise ValueError("gate value %d is not a byte" % n)
    return <unsigned char>n


cdef Py_ssize_t _gate_index(Chunks* c, object gate) except -1:
    """The index of ``gate`` among the gates seen so far, adding it if new.  Gates are the
    tuples of fastnova.views.gates, so identity answers most lookups; the others compare their
    three bytes (an equal tuple is the same gate, as in the twin's dicts)."""
    cdef Py_ssize_t i
    cdef PyObject* ptr = <PyObject*>gate
    cdef unsigned char lo, hi, mask
    for i in range(c.ngates):
        if c.gate[i] == ptr:
            return i
    if type(gate) is not tuple or len(<tuple>gate) != 3:
        raise TypeError("a gate is a (min, max, mask) tuple")
    lo = _byte((<tuple>gate)[0])
    hi = _byte((<tuple>gate)[1])
    mask = _byte((<tuple>gate)[2])
    for i in range(c.ngates):
        if c.lo[i] == lo and c.hi[i] == hi and c.mask[i] == mask:
            return i
    if c.ngates == MAX_GATES:
        raise ValueError("more than %d gates" % MAX_GATES)
    i = c.ngates
    c.gate[i] = ptr
    c.lo[i] = lo
    c.hi[i] = hi
    c.mask[i] = mask
    c.size[i] = 0
    c.first[i][0] = c.first[i][1] = c.last[i][0] = c.last[i][1] = -1
    c.placed[i] = False
    c.ngates += 1
    return i


cdef inline void _place(Chunks* c, Py_ssize_t g) noexcept:
    if not c.placed[g]:
        c.placed[g] = True
        c.order[c.norder] = g
        c.norder += 1


cdef int _collect(Chunks* c, tuple parts) except -1:
    """Note every chunk under its gate and kind; place gates with raw chunks in the order of
    their first raw chunk (the twin's dicts: raw gates first, then member-only gates by their
    first member chunk, placed by _order)."""
    cdef object part, item, data
    cdef Py_ssize_t g, n, p, k
    cdef int raw
    for p in range(len(parts)):
        part = parts[p]
        if type(part) is not tuple:
            raise TypeError("a rendered part is a tuple")
        for k in range(len(<tuple>part)):
            item = (<tuple>part)[k]
            if type(item) is not tuple or len(<tuple>item) != 3:
                raise TypeError("a part's chunk is a (gate, raw, bytes) tuple")
            data = (<tuple>item)[2]
            if type(data) is not bytes:
                raise TypeError("a chunk's data is bytes")
            if c.nchunks == MAX_CHUNKS:
                raise ValueError("more than %d chunks" % MAX_CHUNKS)
            g = _gate_index(c, (<tuple>item)[0])
            raw = 1 if ((<tuple>item)[1] is True or bool((<tuple>item)[1])) else 0
            n = c.nchunks
            c.chunk[n] = <PyObject*>data
            c.next[n] = -1
            c.nchunks += 1
            # A comma before every chunk but a piece's first.
            c.size[g] += PyBytes_GET_SIZE(data) + (0 if c.first[g][0] < 0 and c.first[g][1] < 0
                                                    else 1)
            if c.last[g][raw] < 0:
                c.first[g][raw] = n
            else:
                c.next[c.last[g][raw]] = n
            c.last[g][raw] = n
            if raw:
                _place(c, g)
    return 0


cdef void _order(Chunks* c) noexcept:
    """Then the gates with member chunks only, by their first chunk (gates were added in the
    order of their first chunk)."""
    cdef Py_ssize_t g
    for g in range(c.ngates):
        _place(c, g)


cdef char* _piece(Chunks* c, Py_ssize_t g, char* out) noexcept:
    cdef Py_ssize_t size = c.size[g], i, n
    cdef int kind
    cdef bint first = True
    out[0] = <char>c.lo[g]
    out[1] = <char>c.hi[g]
    out[2] = <char>c.mask[g]
    out[3] = <char>(size & 0xff)
    out[4] = <char>((size >> 8) & 0xff)
    out[5] = <char>((size >> 16) & 0xff)
    out[6] = <char>((size >> 24) & 0xff)
    out += PIECE_HEAD
    for kind in (1, 0):            # raw chunks, then members
        i = c.first[g][kind]
        while i >= 0:
            if not first:
                out[0] = b','
                out += 1
            first = False
            n = PyBytes_GET_SIZE(<object>c.chunk[i])
            memcpy(out, PyBytes_AS_STRING(<object>c.chunk[i]), n)
            out += n
            i = c.next[i]
    return out


def pack_parts(str project_id, tuple parts, bint deleted=False):
    """The view blob (fastnova.store.layout) of a server's rendered parts
    (fastnova.views.servers.render_parts)."""
    cdef Chunks c
    cdef bytes pid = project_id.encode()
    cdef Py_ssize_t plen = len(pid), total, i
    cdef bytes blob
    cdef char* out
    if plen > 0xffff:
        raise ValueError("project id too long")
    c.ngates = c.nchunks = c.norder = 0
    _collect(&c, parts)
    _order(&c)
    total = HEAD + plen + 2
    for i in range(c.ngates):
        if c.size[i] > 0xffffffff:
            raise ValueError("piece too large")
        total += PIECE_HEAD + c.size[i]
    blob = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(blob)
    out[0] = BLOB_FORMAT
    out[1] = FLAG_DELETED if deleted else 0
    out[2] = <char>(plen & 0xff)
    out[3] = <char>(plen >> 8)
    memcpy(out + HEAD, PyBytes_AS_STRING(pid), plen)
    out += HEAD + plen
    out[0] = <char>(c.ngates & 0xff)
    out[1] = <char>(c.ngates >> 8)
    out += 2
    for i in range(c.ngates):
        out = _piece(&c, c.order[i], out)
    return blob


# -- index entries -----------------------------------------------------------------------------

from fastnova.store import layout as _L

cdef bytes _DB_INDEX = _L.DB_INDEX
cdef bytes _DB_BY_CHANGED = _L.DB_BY_CHANGED
cdef bytes _DB_BY_NAME = _L.DB_BY_NAME
cdef bytes _PART_LIVE = _L.PART_LIVE
cdef bytes _PART_DELETED = _L.PART_DELETED
cdef bytes _PART_STATE = _L.PART_STATE
cdef bytes _PART_TAG = _L.PART_TAG
cdef bytes _ALL_SCOPE = _L.ALL_SCOPE
cdef Py_ssize_t _NAME_KEY_MAX = _L.NAME_KEY_MAX
_name_collate = _L.name_collate


cdef inline int _num(const unsigned char* s, int n) noexcept:
    """The value of n ASCII digits, or -1."""
    cdef int v = 0, i, digit
    for i in range(n):
        digit = <unsigned char>s[i] - 48      # '0'
        if digit < 0 or digit > 9:
            return -1
        v = v * 10 + digit
    return v


cdef inline long long _days_from_civil(long long y, int m, int d) noexcept:
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    cdef long long era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int _month_days(int y, int m) noexcept:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m == 4 or m == 6 or m == 9 or m == 11 else 31


cdef bint _canonical_micros(object value, long long* out) except -1:
    """Microseconds since the epoch of a canonical time from 1970 on, read here; False for
    anything else (fastnova.query.row.micros reads those)."""
    cdef const unsigned char* s
    cdef int y, mo, d, h, mi, se, us
    if type(value) is not str or PyUnicode_GET_LENGTH(value) != 26 or not PyUnicode_IS_ASCII(value):
        return False
    s = PyUnicode_1BYTE_DATA(value)
    if not (s[4] == 45 and s[7] == 45 and s[10] == 84 and s[13] == 58     # - - T :
            and s[16] == 58 and s[19] == 46):                              # : .
        return False
    y, mo, d = _num(s, 4), _num(s + 5, 2), _num(s + 8, 2)
    h, mi, se, us = _num(s + 11, 2), _num(s + 14, 2), _num(s + 17, 2), _num(s + 20, 6)
    if not (y >= 1970 and 1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and 0 <= h < 24
            and 0 <= mi < 60 and 0 <= se < 60 and us >= 0):
        return False
    out[0] = (_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) * 1000000 + us
    return True


cdef object _micros(object value):
    """fastnova.query.row.micros."""
    cdef long long micros
    if _canonical_micros(value, &micros):
        return micros
    from fastnova.query.row import micros_pure
    return micros_pure(value)


cdef bytes _micros8(object value):
    """``micros_bytes(micros(value))`` (fastnova.store.layout, fastnova.query.row)."""
    cdef long long micros
    cdef char out[8]
    cdef int i
    if _canonical_micros(value, &micros):
        for i in range(8):
            out[7 - i] = <char>((micros >> (8 * i)) & 0xff)
        return PyBytes_FromStringAndSize(out, 8)
    return _micros(value).to_bytes(8, "big")


cdef bytes _cat(bytes a, bytes b, bytes c, bytes d, bytes e):
    """a + b + c + d + e in one allocation (an index key; a third of index_entries' time was
    the chains of concatenations, callgrind)."""
    cdef Py_ssize_t na = len(a), nb = len(b), nc = len(c), nd = len(d), ne = len(e)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, na + nb + nc + nd + ne)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(a), na)
    memcpy(p + na, PyBytes_AS_STRING(b), nb)
    memcpy(p + na + nb, PyBytes_AS_STRING(c), nc)
    memcpy(p + na + nb + nc, PyBytes_AS_STRING(d), nd)
    memcpy(p + na + nb + nc + nd, PyBytes_AS_STRING(e), ne)
    return out


def index_entries(dict rec):
    """Twin of fastnova.store.writer.index_entries_pure: every index entry of a record,
    {(db name, key): (value, count key or None)}."""
    cdef bytes uuid = rec["id"].encode()
    cdef object created_at = rec["created_at"]
    cdef bytes created = _micros8(created_at)
    cdef bytes updated = _micros8(rec.get("updated_at") or created_at)
    cdef bytes vm_state = (rec.get("vm_state") or "").encode()
    cdef bint deleted = bool(rec.get("deleted"))
    cdef list parts
    cdef bytes state, scope, prefix, part, name = None
    cdef dict out = {}
    if deleted:
        parts = [_PART_DELETED]
    else:
        parts = [_PART_LIVE, _PART_STATE + vm_state]
        tags = rec.get("tags")
        if tags:
            for tag in sorted({t.lower().encode() for t in tags}):
                parts.append(_PART_TAG + tag)
        name = _name_collate(rec.get("name")).encode()[:_NAME_KEY_MAX]
    state = _cat(b"d" if deleted else b"l", created, vm_state, b"", b"")
    for scope in (_ALL_SCOPE, rec["project_id"].encode()):
        for part in parts:
            prefix = _cat(scope, b"\x00", part, b"\x00", b"")
            out[_pair(_DB_INDEX, _cat(prefix, created, uuid, b"", b""))] = _pair(updated, prefix)
        out[_pair(_DB_BY_CHANGED, _cat(scope, b"\x00", updated, uuid, b""))] = _pair(state, None)
        if name is not None:
            out[_pair(_DB_BY_NAME, _cat(scope, b"\x00", name, b"\x00", uuid))] = \
                _pair(vm_state, None)
    return _untracked(out)


# -- rendering parts ---------------------------------------------------------------------------
#
# Twin of the parts of fastnova.views.servers (``render_parts_pure``, ``_render_some_pure``):
# the same tuples of (gate, raw, bytes), the same gate objects (fastnova.views.gates).  A create
# renders all fifteen parts; in Python that was a third of a create's time (profiled), most of it
# building dicts for orjson, slicing its output and calling small functions.  Here each chunk is
# written into one buffer: strings that need no escaping (printable ASCII without a quote or a
# backslash, nearly all of them), None, booleans, 64-bit ints and empty containers by hand,
# everything else by orjson, as the twin does.  tests/test_writer_incremental.py compares the
# two over random records.

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdio cimport snprintf

import hashlib as _hashlib

import orjson as _orjson

from fastnova.views import gates as _G
from fastnova.views.status import STATE_MAP as _STATE_MAP, fault_doc as _fault_doc_shared

_dumps = _orjson.dumps
_sha224 = _hashlib.sha224

cdef tuple G_IDENTITY = _G.G_IDENTITY, G_CORE = _G.G_CORE, G_ADMIN = _G.G_ADMIN
cdef tuple G_MEMBER = _G.G_MEMBER, G_ADMIN_2_3 = _G.G_ADMIN_2_3
cdef tuple G_HOSTNAME_2_90 = _G.G_HOSTNAME_2_90, G_HOST_STATUS = _G.G_HOST_STATUS
cdef tuple G_FLAVOR_OLD = _G.G_FLAVOR_OLD, G_FLAVOR_NEW = _G.G_FLAVOR_NEW
cdef tuple G_IMAGE_OLD = _G.G_IMAGE_OLD, G_IMAGE_NEW = _G.G_IMAGE_NEW
cdef tuple G_VOLUMES_OLD = _G.G_VOLUMES_OLD, G_VOLUMES_NEW = _G.G_VOLUMES_NEW
cdef tuple G_2_9 = _G.G_2_9, G_2_19 = _G.G_2_19, G_2_26 = _G.G_2_26, G_2_63 = _G.G_2_63
cdef tuple G_2_71_SHOW = _G.G_2_71_SHOW, G_2_73 = _G.G_2_73, G_2_96 = _G.G_2_96
cdef tuple G_2_100 = _G.G_2_100
cdef object RAW = _G.RAW, MEMBERS = _G.MEMBERS
cdef frozenset PROGRESS_STATUSES = _G.PROGRESS_STATUSES, FAULT_STATUSES = _G.FAULT_STATUSES
cdef dict _UNKNOWN = {"default": "UNKNOWN"}
cdef tuple _NONE = ()


cdef class _Buf:
    """A growing byte buffer; ``take`` returns what was written and starts again."""
    cdef char* data
    cdef Py_ssize_t n, cap

    def __cinit__(self):
        self.cap = 2048
        self.n = 0
        self.data = <char*>PyMem_Malloc(self.cap)
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef int _grow(self, Py_ssize_t k) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef char* data
        while cap < self.n + k:
            cap *= 2
        data = <char*>PyMem_Realloc(self.data, cap)
        if data == NULL:
            raise MemoryError()
        self.data, self.cap = data, cap
        return 0

    cdef inline int add(self, const char* s, Py_ssize_t k) except -1:
        if self.n + k > self.cap:
            self._grow(k)
        memcpy(self.data + self.n, s, k)
        self.n += k
        return 0

    cdef inline int bytes_(self, bytes b) except -1:
        return self.add(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef int json(self, object v) except -1:
        """orjson.dumps(v), written here when it is simple."""
        cdef long long n
        cdef int overflow = 0, k
        cdef char digits[24]
        cdef type t
        if v is None:
            return self.add("null", 4)
        if v is True:
            return self.add("true", 4)
        if v is False:
            return self.add("false", 5)
        t = type(v)
        if t is str:
            if self.plain(v, True):
                return 0
        elif t is int:
            n = PyLong_AsLongLongAndOverflow(v, &overflow)
            if not overflow:
                k = snprintf(digits, sizeof(digits), "%lld", n)
                return self.add(digits, k)
        elif t is dict:
            if not <dict>v:
                return self.add("{}", 2)
        elif t is list:
            if not <list>v:
                return self.add("[]", 2)
        return self.bytes_(_dumps(v))

    cdef int plain(self, str s, bint quoted) except -1:
        """Write ``s`` as JSON string text (in quotes or not) if no character needs escaping;
        False (nothing written) if one does, or if it is not ASCII."""
        cdef Py_ssize_t i, k
        cdef const unsigned char* p
        cdef unsigned char c
        if not PyUnicode_IS_ASCII(s):
            return False
        p = PyUnicode_1BYTE_DATA(s)
        k = PyUnicode_GET_LENGTH(s)
        for i in range(k):
            c = p[i]
            if c < 0x20 or c == 34 or c == 92:         # control, '"', '\'
                return False
        if self.n + k + 2 > self.cap:
            self._grow(k + 2)
        if quoted:
            self.data[self.n] = b'"'
            self.n += 1
        memcpy(self.data + self.n, p, k)
        self.n += k
        if quoted:
            self.data[self.n] = b'"'
            self.n += 1
        return True

    cdef int text(self, str s) except -1:
        """``s`` JSON-escaped, without its quotes."""
        cdef bytes b
        if not self.plain(s, False):
            b = _dumps(s)
            self.add(PyBytes_AS_STRING(b) + 1, PyBytes_GET_SIZE(b) - 2)
        return 0

    cdef inline int member(self, bytes key, object value) except -1:
        self.bytes_(key)
        return self.json(value)

    cdef inline bytes take(self):
        cdef bytes out = PyBytes_FromStringAndSize(self.data, self.n)
        self.n = 0
        return out


cdef object _status(dict rec):
    """fastnova.views.status.record_status."""
    cdef object task_map
    if rec.get("deleted"):
        return "DELETED"
    task_map = _STATE_MAP.get(rec.get("vm_state"), _UNKNOWN)
    return task_map.get(rec.get("task_state"), task_map["default"])


cdef inline object _isotime(object value):
    """fastnova.record.isotime."""
    if value is None:
        return None
    return value[:19] + "Z"


cdef int _bookmark_links(_Buf b, bytes path, str ident) except -1:
    """fastnova.views.links.bookmark_links: [{"href": MARK_ROOT + path + ident, ...}]."""
    b.bytes_(b'[{"href":"\x01')
    b.bytes_(path)
    b.text(ident)
    return b.bytes_(b'","rel":"bookmark"}]')


cdef tuple _identity(_Buf b, dict rec):
    sid = rec["id"]
    ident = sid if type(sid) is str else str(sid)
    b.member(b'"id":', sid)
    b.member(b',"name":', rec["name"])
    b.bytes_(b',"links":[{"href":"\x02/servers/')
    b.text(ident)
    b.bytes_(b'","rel":"self"},{"href":"\x01/servers/')
    b.text(ident)
    b.bytes_(b'","rel":"bookmark"}]')
    return ((G_IDENTITY, RAW, b.take()),)


cdef tuple _access(_Buf b, dict rec):
    b.member(b'"accessIPv4":', rec["access_ip_v4"] or "")
    b.member(b',"accessIPv6":', rec["access_ip_v6"] or "")
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _addresses(_Buf b, dict rec):
    cdef dict out = {}
    cdef list ordered
    # nova hides addresses while the server is building.
    if not rec["vm_state"] == "building":
        for label, addrs in rec["addresses"].items():
            # nova lists a network's fixed IPs first, then its floating IPs.
            ordered = sorted(addrs, key=_floating)
            out[label] = [{
                "version": a.get("version"),
                "addr": a.get("addr"),
                "OS-EXT-IPS:type": a.get("type"),
                "OS-EXT-IPS-MAC:mac_addr": a.get("mac"),
            } for a in ordered]
    b.member(b'"addresses":', out)
    return ((G_CORE, MEMBERS, b.take()),)


def _floating(a):
    return a.get("type") == "floating"


cdef tuple _placement(_Buf b, dict rec):
    project_id, host = rec["project_id"], rec["host"]
    b.member(b'"created":', _isotime(rec["created_at"]))
    b.member(b',"hostId":',
             _sha224((project_id + host).encode("utf-8")).hexdigest() if host else "")
    b.member(b',"metadata":', rec["metadata"] or {})
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _state(_Buf b, dict rec, object status):
    b.member(b'"status":', status)
    b.member(b',"tenant_id":', rec["project_id"] or "")
    b.member(b',"user_id":', rec["user_id"] or "")
    b.member(b',"updated":', _isotime(rec["updated_at"] or rec["created_at"]))
    b.member(b',"OS-DCF:diskConfig":', rec["disk_config"])
    b.member(b',"OS-EXT-AZ:availability_zone":', rec["availability_zone"] or "")
    b.member(b',"config_drive":', rec["config_drive"])
    b.member(b',"key_name":', rec["key_name"])
    b.member(b',"OS-SRV-USG:launched_at":', rec["launched_at"])
    b.member(b',"OS-SRV-USG:terminated_at":', rec["terminated_at"])
    b.member(b',"OS-EXT-STS:task_state":', rec["task_state"])
    b.member(b',"OS-EXT-STS:vm_state":', rec["vm_state"])
    b.member(b',"OS-EXT-STS:power_state":', rec["power_state"])
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _progress(_Buf b, dict rec, object status):
    if status not in PROGRESS_STATUSES:
        return _NONE
    b.member(b'"progress":', rec["progress"])
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _security_groups(_Buf b, dict rec):
    cdef bint first = True
    groups = rec["security_groups"]
    # nova only sets the key when neutron reports at least one group for the server's ports.
    if not groups:
        return _NONE
    b.bytes_(b'"security_groups":[')
    for name in groups:
        b.bytes_(b'{"name":' if first else b',{"name":')
        b.json(name)
        b.bytes_(b"}")
        first = False
    b.bytes_(b"]")
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _flavor(_Buf b, dict rec):
    flavor = rec["flavor"]
    fid = str(flavor["id"])
    b.member(b'"flavor":{"id":', fid)
    b.bytes_(b',"links":')
    _bookmark_links(b, b"/flavors/", fid)
    b.bytes_(b"}")
    old = b.take()
    # 2.47 embeds the instance's own flavor copy; extra_specs goes to project readers and
    # admins alike (servers:show:flavor-extra-specs is PROJECT_READER_OR_ADMIN).
    b.member(b'"flavor":{"vcpus":', flavor["vcpus"])
    b.member(b',"ram":', flavor["ram"])
    b.member(b',"disk":', flavor["disk"])
    b.member(b',"ephemeral":', flavor["ephemeral"])
    b.member(b',"swap":', flavor["swap"])
    b.member(b',"original_name":', flavor["name"])
    b.member(b',"extra_specs":', flavor["extra_specs"] or {})
    b.bytes_(b"}")
    return ((G_FLAVOR_OLD, RAW, old), (G_FLAVOR_NEW, RAW, b.take()))


cdef tuple _image(_Buf b, dict rec):
    cdef bytes head
    image = rec["image"]
    if not image or not image.get("id"):
        # Booted from volume: nova shows an empty string, not null or {}.
        b.bytes_(b'"image":""')
        return ((G_CORE, MEMBERS, b.take()),)
    iid = str(image["id"])
    b.member(b'"image":{"id":', iid)
    b.bytes_(b',"links":')
    _bookmark_links(b, b"/images/", iid)
    head = b.take()
    # nova drops None-valued properties.
    props = {k: v for k, v in (image.get("properties") or {}).items() if v is not None}
    b.bytes_(head)
    b.bytes_(b"}")
    old = b.take()
    b.bytes_(head)
    b.member(b',"properties":', props)
    b.bytes_(b"}")
    return ((G_IMAGE_OLD, RAW, old), (G_IMAGE_NEW, RAW, b.take()))


cdef tuple _volumes(_Buf b, dict rec):
    cdef list vols = [v for v in rec["volumes_attached"] if v.get("id")]
    cdef bytes old
    b.bytes_(b'"os-extended-volumes:volumes_attached":[')
    for i, v in enumerate(vols):
        b.member(b'{"id":' if i == 0 else b',{"id":', v["id"])
        b.bytes_(b"}")
    b.bytes_(b"]")
    old = b.take()
    b.bytes_(b'"os-extended-volumes:volumes_attached":[')
    for i, v in enumerate(vols):
        b.member(b'{"id":' if i == 0 else b',{"id":', v["id"])
        b.member(b',"delete_on_termination":', bool(v.get("delete_on_termination")))
        b.bytes_(b"}")
    b.bytes_(b"]")
    return ((G_VOLUMES_OLD, RAW, old), (G_VOLUMES_NEW, RAW, b.take()))


cdef tuple _fault(_Buf b, dict rec, object status):
    fault = rec["fault"]
    if not fault or status not in FAULT_STATUSES:
        return _NONE
    # nova shows details to admins always, to others only when the code is not 500.
    has_details = bool(fault.get("details"))
    if not has_details or fault.get("code") != 500:
        return ((G_CORE, MEMBERS, b'"fault":' + _dumps(_fault_doc_shared(fault, has_details))),)
    return ((G_ADMIN, MEMBERS, b'"fault":' + _dumps(_fault_doc_shared(fault, True))),
            (G_MEMBER, MEMBERS, b'"fault":' + _dumps(_fault_doc_shared(fault, False))))


cdef tuple _ext_host(_Buf b, dict rec):
    b.member(b'"OS-EXT-SRV-ATTR:host":', rec["host"])
    b.member(b',"OS-EXT-SRV-ATTR:instance_name":', rec["instance_name"])
    b.member(b',"OS-EXT-SRV-ATTR:hypervisor_hostname":', rec["node"])
    return ((G_ADMIN, MEMBERS, b.take()),)


cdef tuple _ext_2_3(_Buf b, dict rec):
    hostname = rec["hostname"]
    b.member(b'"OS-EXT-SRV-ATTR:reservation_id":', rec["reservation_id"])
    b.member(b',"OS-EXT-SRV-ATTR:launch_index":', rec["launch_index"])
    b.member(b',"OS-EXT-SRV-ATTR:kernel_id":', rec["kernel_id"])
    b.member(b',"OS-EXT-SRV-ATTR:ramdisk_id":', rec["ramdisk_id"])
    b.member(b',"OS-EXT-SRV-ATTR:root_device_name":', rec["root_device_name"])
    b.member(b',"OS-EXT-SRV-ATTR:user_data":', rec["user_data"])
    b.member(b',"OS-EXT-SRV-ATTR:hostname":', hostname)
    admin = b.take()
    b.member(b'"OS-EXT-SRV-ATTR:hostname":', hostname)
    return ((G_ADMIN_2_3, MEMBERS, admin), (G_HOSTNAME_2_90, MEMBERS, b.take()))


cdef tuple _host_status(_Buf b, dict rec):
    b.member(b'"host_status":', rec["host_status"])
    return ((G_HOST_STATUS, MEMBERS, b.take()),)


cdef inline tuple _one(_Buf b, tuple gate, bytes key, object value):
    b.member(key, value)
    return (gate, MEMBERS, b.take())


cdef tuple _later(_Buf b, dict rec):
    return (
        _one(b, G_2_9, b'"locked":', bool(rec["locked"])),
        _one(b, G_2_19, b'"description":', rec["description"]),
        _one(b, G_2_26, b'"tags":', rec["tags"] or []),
        _one(b, G_2_63, b'"trusted_image_certificates":', rec["trusted_image_certificates"]),
        _one(b, G_2_71_SHOW, b'"server_groups":', rec["server_groups"] or []),
        _one(b, G_2_73, b'"locked_reason":', rec["locked_reason"]),
        _one(b, G_2_96, b'"pinned_availability_zone":', rec["pinned_availability_zone"]),
        _one(b, G_2_100, b'"scheduler_hints":', rec["scheduler_hints"]),
    )


cdef enum:
    NPARTS = 15
    # The parts that read the status (fastnova.views.servers.PARTS).
    P_STATE = 4
    P_FAULT = 7
    P_PROGRESS = 8


cdef tuple _render_part(_Buf b, int i, dict rec, object status):
    """Part ``i`` of fastnova.views.servers.PARTS."""
    if i == 0:
        return _identity(b, rec)
    if i == 1:
        return _access(b, rec)
    if i == 2:
        return _addresses(b, rec)
    if i == 3:
        return _placement(b, rec)
    if i == 4:
        return _state(b, rec, status)
    if i == 5:
        return _flavor(b, rec)
    if i == 6:
        return _image(b, rec)
    if i == 7:
        return _fault(b, rec, status)
    if i == 8:
        return _progress(b, rec, status)
    if i == 9:
        return _security_groups(b, rec)
    if i == 10:
        return _ext_host(b, rec)
    if i == 11:
        return _ext_2_3(b, rec)
    if i == 12:
        return _volumes(b, rec)
    if i == 13:
        return _host_status(b, rec)
    if i == 14:
        return _later(b, rec)
    raise IndexError("no part %d" % i)


def render_parts(dict rec):
    """Every part of a normalized record; twin of fastnova.views.servers.render_parts_pure."""
    cdef _Buf b = _Buf()
    cdef object status = _status(rec)
    cdef tuple out = PyTuple_New(NPARTS)
    cdef int i
    cdef tuple part
    for i in range(NPARTS):
        part = _part(b, i, rec, status)
        Py_INCREF(part)
        PyTuple_SET_ITEM(out, i, part)
    return _untracked(out)


cdef tuple _part(_Buf b, int i, dict rec, object status):
    """Part ``i`` of fastnova.views.servers.PARTS, its chunks and itself untracked."""
    cdef tuple part = _render_part(b, i, rec, status)
    for chunk in part:
        _untracked(chunk)
    return _untracked(part)


def render_some(tuple parts, dict rec, tuple stale):
    """``parts`` with the parts at the indexes ``stale`` rendered again from ``rec``; twin of
    fastnova.views.servers.render_some_pure."""
    cdef _Buf b = _Buf()
    cdef list out = list(parts)
    cdef object status = None
    cdef Py_ssize_t i
    cdef bint need_status = False
    for i in stale:
        if i == P_STATE or i == P_FAULT or i == P_PROGRESS:
            need_status = True
    if need_status:
        status = _status(rec)
    for i in stale:
        out[i] = _part(b, i, rec, status)
    return _untracked(tuple(out))


# -- the query row -----------------------------------------------------------------------------

# fastnova.query.row._COPIED, in its order (the row's keys are in the order the twin adds them).
cdef tuple _COPIED = (
    "project_id", "user_id", "host", "node", "vm_state", "task_state", "power_state",
    "launched_at", "terminated_at", "created_at", "availability_zone", "key_name",
    "config_drive", "locked", "hostname", "reservation_id", "launch_index", "kernel_id",
    "ramdisk_id", "root_device_name", "progress", "deleted", "seq")


def micros(value):
    """Twin of fastnova.query.row.micros_pure."""
    return _micros(value)


def build_row(dict rec):
    """Twin of fastnova.query.row.build_pure: the query row of a normalized record."""
    cdef dict row = {}
    cdef list ips4 = [], ips6 = []
    for key in _COPIED:
        row[key] = rec.get(key)
    row["uuid"] = rec["id"]
    row["display_name"] = rec.get("name")
    row["display_description"] = rec.get("description")
    image = rec.get("image")
    row["image_ref"] = image.get("id", "") if image else ""
    row["instance_type_id"] = str((rec.get("flavor") or {}).get("id", ""))
    updated = rec.get("updated_at") or rec["created_at"]
    row["updated_at"] = updated
    row["access_ip_v4"] = rec.get("access_ip_v4") or None
    row["access_ip_v6"] = rec.get("access_ip_v6") or None
    row["auto_disk_config"] = rec.get("disk_config") == "AUTO"
    row["locked_by"] = rec.get("locked_by")
    row["tags"] = [] if rec.get("deleted") else list(rec.get("tags") or ())
    addresses = rec.get("addresses")
    if addresses:
        for addrs in addresses.values():
            for addr in addrs:
                if addr.get("type", "fixed") != "fixed" or not addr.get("addr"):
                    continue
                (ips6 if addr.get("version") == 6 else ips4).append(addr["addr"])
    row["ips4"] = ips4
    row["ips6"] = ips6
    row["ca"] = _micros(rec["created_at"])
    row["ua"] = _micros(updated)
    return row
