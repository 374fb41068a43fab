from libc.stdint cimport uint8_t, uint16_t, uint32_t

# The view blob's binary layout (fastnova/store/layout.py is the contract), shared by the
# compiled assembler (_speedups) and packer (_render).
cdef enum:
    BLOB_FORMAT = 1
    FLAG_DELETED = 1
    HEAD = 4           # u8 format, u8 flags, u16 project length
    PIECE_HEAD = 7     # u8 min, u8 max, u8 mask, u32 length
    MARK_ROOT = 1
    MARK_VERSION = 2
    NOTE_PIECES = 32   # selected pieces and link markers measure() notes for write()
    NOTE_MARKS = 48


cdef class _Blob:
    cdef bytes ref
    cdef const uint8_t* data
    cdef Py_ssize_t size
    cdef Py_ssize_t first
    cdef uint16_t count
    cdef bint deleted
    cdef Py_ssize_t plen
    # What measure() found, so write() copies without searching again (when it all fitted).
    cdef bint noted
    cdef int npieces, nmarks
    cdef uint32_t piece_at[NOTE_PIECES]
    cdef uint32_t piece_size[NOTE_PIECES]
    cdef uint32_t mark_at[NOTE_MARKS]

    cdef int parse(self, bytes blob) except -1
    cdef int view(self, const uint8_t* data, Py_ssize_t size) except -1
    cdef bint owned_by(self, bytes owner)
    cdef Py_ssize_t measure(self, int minor, int mask, Py_ssize_t rlen,
                            Py_ssize_t vlen) except -1
    cdef char* _write_noted(self, char* out, const char* root, Py_ssize_t rlen,
                            const char* vroot, Py_ssize_t vlen) noexcept
    cdef char* write(self, char* out, int minor, int mask, const char* root, Py_ssize_t rlen,
                     const char* vroot, Py_ssize_t vlen) noexcept
