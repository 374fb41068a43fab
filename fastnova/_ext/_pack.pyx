# cython: language_level=3
"""Compiled twin of packing a server's rendered view parts into its view blob (the feed's
write-time work; rendering the parts is fastnova/_ext/_render.pyx, the index entries and query
row fastnova/_ext/_rows.pyx).

Packing: same bytes as the pure twin, ``fastnova.views.servers.pack_parts_pure`` (assemble, then
``fastnova.store.layout.pack_blob``); tests/unit/test_writer_incremental.py runs both.  The pure
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
