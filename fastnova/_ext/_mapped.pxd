from libc.stdint cimport uint8_t, uint64_t


cdef class MappedDB:
    cdef readonly object env          # the py-lmdb Environment whose snapshots are borrowed
    cdef bytes name                   # the named database read
    cdef object txn                   # the read transaction that pins the snapshot, or None
    cdef const uint8_t* base          # the data file, mapped read-only
    cdef size_t maplen
    cdef int fd
    cdef size_t psize
    cdef uint64_t txnid               # the snapshot held (valid while txn is not None)
    cdef uint64_t last_pg             # its last page: nothing beyond is part of it
    cdef int leaf_level               # the depth of its leaves (the walk prefetches them), or -1
    cdef uint64_t root                # the database's root page in it (NO_PAGE: empty)
    cdef readonly uint64_t renewals   # snapshots taken (tests and profiles look)
    cdef readonly uint64_t failures   # snapshots that could not be read (fallback used)

    cdef int get(self, const char* key, size_t klen, const uint8_t** value,
                 size_t* vlen) except -2
    cdef int _fresh(self) except -2
    cdef int _renew(self) except -2
    cdef int _search(self, uint64_t pgno, const char* key, size_t klen, int want_subdb,
                     const uint8_t** value, size_t* vlen, int leaf_level) noexcept
    cdef Py_ssize_t _floor(self, const uint8_t* page, Py_ssize_t first, Py_ssize_t n,
                           const char* key, size_t klen, int* cmp) noexcept
    cdef const uint8_t* _node(self, const uint8_t* page, Py_ssize_t i) noexcept
    cdef uint64_t _current(self) noexcept
    cdef int _map(self, size_t length) except -1
    cdef void _drop(self)
