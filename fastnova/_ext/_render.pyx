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

cdef enum:
    BLOB_FORMAT = 1
    FLAG_DELETED = 1
    HEAD = 4           # u8 format, u8 flags, u16 project length
    PIECE_HEAD = 7     # u8 min, u8 max, u8 mask, u32 length
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
    module constants of fastnova.views.servers, so identity answers almost every lookup."""
    cdef Py_ssize_t i
    cdef PyObject* ptr = <PyObject*>gate
    for i in range(c.ngates):
        if c.gate[i] == ptr:
            return i
    for i in range(c.ngates):
        if <object>c.gate[i] == gate:
            return i
    if c.ngates == MAX_GATES:
        raise ValueError("more than %d gates" % MAX_GATES)
    if type(gate) is not tuple or len(<tuple>gate) != 3:
        raise TypeError("a gate is a (min, max, mask) tuple")
    i = c.ngates
    c.gate[i] = ptr
    c.lo[i] = _byte((<tuple>gate)[0])
    c.hi[i] = _byte((<tuple>gate)[1])
    c.mask[i] = _byte((<tuple>gate)[2])
    c.nraw[i] = c.nmembers[i] = c.size[i] = 0
    c.ngates += 1
    return i


cdef int _collect(Chunks* c, tuple parts) except -1:
    cdef object part, item, data
    cdef Py_ssize_t g, n
    cdef bint raw
    for part in parts:
        if type(part) is not tuple:
            raise TypeError("a rendered part is a tuple")
        for item in <tuple>part:
            if type(item) is not tuple or len(<tuple>item) != 3:
                raise TypeError("a part's chunk is a (gate, raw, bytes) tuple")
            data = (<tuple>item)[2]
            if type(data) is not bytes:
                raise TypeError("a chunk's data is bytes")
            if c.nchunks == MAX_CHUNKS:
                raise ValueError("more than %d chunks" % MAX_CHUNKS)
            g = _gate_index(c, (<tuple>item)[0])
            raw = bool((<tuple>item)[1])
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
