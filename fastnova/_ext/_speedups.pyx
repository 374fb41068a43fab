# cython: language_level=3
"""Compiled assembly of view blobs (the read path's hot loop).

Same answers as the pure twin in fastnova/store/assemble.py; tests run both.  A document is
built in one exactly-sized bytes object: the selected pieces are measured (memchr finds the link
markers, SIMD in glibc, and measure() notes where they are), then copied with the markers
replaced by the request's link prefixes, without searching again.
No Python object is created per piece.  A malformed blob raises ValueError; it never reads out
of bounds.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memchr, memcmp, memcpy

cdef inline uint16_t _u16(const uint8_t* p) noexcept nogil:
    return p[0] | (p[1] << 8)


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    return p[0] | (p[1] << 8) | (p[2] << 16) | (<uint32_t>p[3] << 24)


cdef class _Blob:
    """A parsed view of one blob: where its pieces start and how many there are."""

    cdef int parse(self, bytes blob) except -1:
        self.ref = blob          # keeps the buffer alive as long as data points into it
        return self.view(<const uint8_t*>PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob))

    cdef int view(self, const uint8_t* data, Py_ssize_t size) except -1:
        """Parse a blob in memory the caller keeps valid (an LMDB page inside a transaction)."""
        self.data = data
        self.size = size
        if self.size < HEAD + 2 or self.data[0] != BLOB_FORMAT:
            raise ValueError("not a view blob")
        self.deleted = (self.data[1] & FLAG_DELETED) != 0
        self.plen = _u16(self.data + 2)
        if HEAD + self.plen + 2 > self.size:
            raise ValueError("truncated view blob header")
        self.count = _u16(self.data + HEAD + self.plen)
        self.first = HEAD + self.plen + 2
        return 0

    cdef bint owned_by(self, bytes owner):
        return (PyBytes_GET_SIZE(owner) == self.plen and
                memcmp(PyBytes_AS_STRING(owner), self.data + HEAD, self.plen) == 0)

    cdef Py_ssize_t measure(self, int minor, int mask, Py_ssize_t rlen,
                            Py_ssize_t vlen) except -1:
        """Bytes the selected document takes, braces and link prefixes included.  Notes where
        the selected pieces and their link markers are, for write()."""
        cdef Py_ssize_t pos = self.first, total = 2, size, selected = 0
        cdef const char* body
        cdef const char* end
        cdef const char* hit
        cdef uint16_t i
        self.noted = True
        self.npieces = 0
        self.nmarks = 0
        for i in range(self.count):
            if pos + PIECE_HEAD > self.size:
                raise ValueError("truncated view blob")
            size = _u32(self.data + pos + 3)
            if pos + PIECE_HEAD + size > self.size:
                raise ValueError("truncated view blob piece")
            if self.data[pos] <= minor <= self.data[pos + 1] and \
                    (self.data[pos + 2] & mask) == mask:
                total += size
                if self.npieces < NOTE_PIECES:
                    self.piece_at[self.npieces] = <uint32_t>(pos + PIECE_HEAD)
                    self.piece_size[self.npieces] = <uint32_t>size
                    self.npieces += 1
                else:
                    self.noted = False
                body = <const char*>(self.data + pos + PIECE_HEAD)
                end = body + size
                while True:
                    hit = _next_mark(body, end)
                    if hit == NULL:
                        break
                    total += (rlen - 1) if hit[0] == MARK_ROOT else (vlen - 1)
                    if self.nmarks < NOTE_MARKS:
                        self.mark_at[self.nmarks] = <uint32_t>(<const uint8_t*>hit - self.data)
                        self.nmarks += 1
                    else:
                        self.noted = False
                    body = hit + 1
                selected += 1
            pos += PIECE_HEAD + size
        if selected > 1:
            total += selected - 1
        return total

    cdef char* write(self, char* out, int minor, int mask, const char* root, Py_ssize_t rlen,
                     const char* vroot, Py_ssize_t vlen) noexcept:
        """Copy the selected document into out (measure(), called first with the same minor and
        mask, checked the bounds)."""
        cdef Py_ssize_t pos = self.first, size
        cdef uint16_t i
        cdef bint first = True
        out[0] = b'{'
        out += 1
        if self.noted:
            return self._write_noted(out, root, rlen, vroot, vlen)
        for i in range(self.count):
            size = _u32(self.data + pos + 3)
            if self.data[pos] <= minor <= self.data[pos + 1] and \
                    (self.data[pos + 2] & mask) == mask:
                if not first:
                    out[0] = b','
                    out += 1
                first = False
                out = _copy_filled(out, <const char*>(self.data + pos + PIECE_HEAD), size,
                                   root, rlen, vroot, vlen)
            pos += PIECE_HEAD + size
        out[0] = b'}'
        return out + 1


    cdef char* _write_noted(self, char* out, const char* root, Py_ssize_t rlen,
                            const char* vroot, Py_ssize_t vlen) noexcept:
        """write() from what measure() noted: runs copied between the known markers."""
        cdef int p, m = 0
        cdef uint32_t at, stop, mark
        for p in range(self.npieces):
            if p:
                out[0] = b','
                out += 1
            at = self.piece_at[p]
            stop = at + self.piece_size[p]
            while m < self.nmarks and self.mark_at[m] < stop:
                mark = self.mark_at[m]
                memcpy(out, self.data + at, mark - at)
                out = _prefix(out + mark - at, self.data[mark], root, rlen, vroot, vlen)
                at = mark + 1
                m += 1
            memcpy(out, self.data + at, stop - at)
            out += stop - at
        out[0] = b'}'
        return out + 1


cdef char* _copy_filled(char* out, const char* src, Py_ssize_t n, const char* root,
                        Py_ssize_t rlen, const char* vroot, Py_ssize_t vlen) noexcept:
    """memcpy with MARK_ROOT / MARK_VERSION bytes replaced by the link prefixes."""
    cdef const char* end = src + n
    cdef const char* hit
    cdef Py_ssize_t run
    while src < end:
        hit = _next_mark(src, end)
        run = (hit - src) if hit != NULL else (end - src)
        memcpy(out, src, run)
        out += run
        if hit == NULL:
            break
        out = _prefix(out, hit[0], root, rlen, vroot, vlen)
        src = hit + 1
    return out


cdef inline char* _prefix(char* out, char mark, const char* root, Py_ssize_t rlen,
                          const char* vroot, Py_ssize_t vlen) noexcept:
    """The link prefix a marker stands for, written at out."""
    if mark == MARK_ROOT:
        memcpy(out, root, rlen)
        return out + rlen
    memcpy(out, vroot, vlen)
    return out + vlen


cdef inline const char* _next_mark(const char* p, const char* end) noexcept:
    cdef const char* a = <const char*>memchr(p, MARK_ROOT, end - p)
    cdef const char* b = <const char*>memchr(p, MARK_VERSION, (a if a != NULL else end) - p)
    return b if b != NULL else a


def show_doc(bytes blob, int minor, int mask, bytes owner, bytes root, bytes version_root):
    """One document with links filled in; None when deleted or (owner given) not the owner's."""
    cdef _Blob b = _Blob()
    b.parse(blob)
    if b.deleted or (owner is not None and not b.owned_by(owner)):
        return None
    cdef Py_ssize_t rlen = PyBytes_GET_SIZE(root), vlen = PyBytes_GET_SIZE(version_root)
    cdef Py_ssize_t n = b.measure(minor, mask, rlen, vlen)
    out = PyBytes_FromStringAndSize(NULL, n)
    b.write(PyBytes_AS_STRING(out), minor, mask, PyBytes_AS_STRING(root), rlen,
            PyBytes_AS_STRING(version_root), vlen)
    return out


def page_docs(list blobs, int minor, int mask, bytes root, bytes version_root):
    """Documents of a page, comma-joined, links filled in, in one exactly-sized bytes object."""
    cdef Py_ssize_t count = len(blobs), i, total = 0
    if count == 0:
        return b""
    cdef Py_ssize_t rlen = PyBytes_GET_SIZE(root), vlen = PyBytes_GET_SIZE(version_root)
    cdef list parsed = [None] * count
    cdef _Blob b
    for i in range(count):
        b = _Blob()
        b.parse(blobs[i])
        parsed[i] = b
        total += b.measure(minor, mask, rlen, vlen)
    total += count - 1
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* w = PyBytes_AS_STRING(out)
    cdef const char* r = PyBytes_AS_STRING(root)
    cdef const char* v = PyBytes_AS_STRING(version_root)
    for i in range(count):
        if i:
            w[0] = b','
            w += 1
        w = (<_Blob>parsed[i]).write(w, minor, mask, r, rlen, v, vlen)
    return out
