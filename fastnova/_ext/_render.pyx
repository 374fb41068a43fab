# cython: language_level=3
"""Compiled packing of a server's rendered parts into its view blob (the feed's hot loop).

Same bytes as the pure twin, ``fastnova.views.servers.pack_parts_pure`` (assemble, then
``fastnova.store.layout.pack_blob``); tests/test_writer_incremental.py runs both.  The pure
twin builds a list of pieces, a join per piece and a struct per header (~15 µs a server, a fifth
of a feed update, profiled); here the chunks are measured, then copied once into an exactly
sized bytes object.  Chunks are borrowed from ``parts``, which holds them for the whole call.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.string cimport memcpy

from fastnova._ext._speedups cimport BLOB_FORMAT, FLAG_DELETED, HEAD, PIECE_HEAD

cdef enum:
    MAX_GATES = 64
    MAX_CHUNKS = 512


cdef struct Chunks:
    # What one call has seen: the distinct gates, and every chunk with its gate.
    Py_ssize_t ngates
    Py_ssize_t nchunks
    PyObject* gate[MAX_GATES]          # borrowed from parts
    unsigned char lo[MAX_GATES]
    unsigned char hi[MAX_GATES]
    unsigned char mask[MAX_GATES]
    Py_ssize_t nraw[MAX_GATES]
    Py_ssize_t nmembers[MAX_GATES]
    Py_ssize_t size[MAX_GATES]         # bytes of the gate's piece
    Py_ssize_t order[MAX_GATES]        # gates in blob order
    Py_ssize_t chunk_gate[MAX_CHUNKS]
    bint chunk_raw[MAX_CHUNKS]
    PyObject* chunk[MAX_CHUNKS]        # borrowed bytes


cdef unsigned char _byte(object value) except? 0:
    cdef long n = value
    if n < 0 or n > 255:
        raise ValueError("gate value %d is not a byte" % n)
    return <unsigned char>n


cdef Py_ssize_t _gate_index(Chunks* c, object gate) except -1:
    """The index of ``gate`` among the gates seen so far, adding it if new.  Gates are the
    module constants of fastnova.views.servers, so identity answers most lookups; the others
    compare their three bytes (an equal tuple is the same gate, as in the twin's dicts)."""
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
    c.nraw[i] = c.nmembers[i] = c.size[i] = 0
    c.ngates += 1
    return i


cdef int _collect(Chunks* c, tuple parts) except -1:
    cdef object part, item, data
    cdef Py_ssize_t g, n, p, k
    cdef bint raw
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
            raw = (<tuple>item)[1] is True or bool((<tuple>item)[1])
            n = c.nchunks
            c.chunk_gate[n] = g
            c.chunk_raw[n] = raw
            c.chunk[n] = <PyObject*>data
            c.nchunks += 1
            # A comma before every chunk but a piece's first.
            c.size[g] += PyBytes_GET_SIZE(data) + (1 if c.nraw[g] + c.nmembers[g] else 0)
            if raw:
                c.nraw[g] += 1
            else:
                c.nmembers[g] += 1
    return 0


cdef void _order(Chunks* c) noexcept:
    """Gates with raw chunks by their first raw chunk, then the others by their first chunk
    (the order of assemble's dicts in the twin)."""
    cdef Py_ssize_t i, j, g, n = 0, k
    cdef bint seen, pass_raw
    for k in range(2):
        pass_raw = k == 0
        for i in range(c.nchunks):
            if c.chunk_raw[i] != pass_raw:
                continue
            g = c.chunk_gate[i]
            if not pass_raw and c.nraw[g]:
                continue
            seen = False
            for j in range(n):
                if c.order[j] == g:
                    seen = True
                    break
            if not seen:
                c.order[n] = g
                n += 1


cdef char* _piece(Chunks* c, Py_ssize_t g, char* out) noexcept:
    cdef Py_ssize_t size = c.size[g], i, n, k
    cdef bint first = True, pass_raw
    out[0] = <char>c.lo[g]
    out[1] = <char>c.hi[g]
    out[2] = <char>c.mask[g]
    out[3] = <char>(size & 0xff)
    out[4] = <char>((size >> 8) & 0xff)
    out[5] = <char>((size >> 16) & 0xff)
    out[6] = <char>((size >> 24) & 0xff)
    out += PIECE_HEAD
    for k in range(2):
        pass_raw = k == 0
        for i in range(c.nchunks):
            if c.chunk_gate[i] != g or c.chunk_raw[i] != pass_raw:
                continue
            if not first:
                out[0] = b','
                out += 1
            first = False
            n = PyBytes_GET_SIZE(<object>c.chunk[i])
            memcpy(out, PyBytes_AS_STRING(<object>c.chunk[i]), n)
            out += n
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
    c.ngates = c.nchunks = 0
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

from fastnova.query.row import micros as _micros_py
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


cdef inline int _num(const char* s, int n) noexcept:
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


cdef bytes _micros8(object value):
    """``micros_bytes(micros(value))`` (fastnova.store.layout, fastnova.query.row).  A canonical
    time is read here; anything else (or an error) goes the Python way."""
    cdef bytes text
    cdef const char* s
    cdef int y, mo, d, h, mi, se, us
    cdef long long micros
    cdef char out[8]
    cdef int i
    if type(value) is str and len(<str>value) == 26 and (<str>value).isascii():
        text = (<str>value).encode("ascii")
        s = text
        if (s[4] == 45 and s[7] == 45 and s[10] == 84 and s[13] == 58     # - - T :
                and s[16] == 58 and s[19] == 46):                              # : .
            y, mo, d = _num(s, 4), _num(s + 5, 2), _num(s + 8, 2)
            h, mi, se, us = _num(s + 11, 2), _num(s + 14, 2), _num(s + 17, 2), _num(s + 20, 6)
            if (y >= 1970 and 1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and 0 <= h < 24
                    and 0 <= mi < 60 and 0 <= se < 60 and us >= 0):
                micros = ((_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se)
                          * 1000000 + us)
                for i in range(8):
                    out[7 - i] = <char>((micros >> (8 * i)) & 0xff)
                return PyBytes_FromStringAndSize(out, 8)
    return _micros_py(value).to_bytes(8, "big")


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
    cdef bytes state, head, prefix, part, name = None
    cdef dict out = {}
    cdef object scope
    if deleted:
        parts = [_PART_DELETED]
    else:
        parts = [_PART_LIVE, _PART_STATE + vm_state]
        for tag in sorted({t.lower().encode() for t in rec.get("tags") or ()}):
            parts.append(_PART_TAG + tag)
        name = _name_collate(rec.get("name")).encode()[:_NAME_KEY_MAX]
    state = (b"d" if deleted else b"l") + created + vm_state
    for scope in (_ALL_SCOPE, rec["project_id"].encode()):
        head = <bytes>scope + b"\x00"
        for part in parts:
            prefix = head + part + b"\x00"
            out[(_DB_INDEX, prefix + created + uuid)] = (updated, prefix)
        out[(_DB_BY_CHANGED, head + updated + uuid)] = (state, None)
        if name is not None:
            out[(_DB_BY_NAME, head + name + b"\x00" + uuid)] = (vm_state, None)
    return out
