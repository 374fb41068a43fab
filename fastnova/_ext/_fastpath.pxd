from fastnova._ext._mapped cimport MappedDB
from fastnova._ext._speedups cimport _Blob


cdef struct Span:
    const char* p             # a header value or target, in the request's own bytes
    Py_ssize_t n              # its length; -1: the header was not sent (None)

cdef class _Caller:
    cdef bytes owner          # the caller's project id, None for admin (sees every server)
    cdef bytes project        # the caller's project id, to spot it in the URL (links use it)
    cdef int mask
    cdef int minor
    cdef bytes extra          # the microversion response headers
    cdef bytes root, vroot    # link prefixes
    cdef bytes proot, pvroot  # link prefixes with "/<project>" (None when not memoized)
    cdef double until         # Unix time the caller's identity expires (its token's cache)
    cdef unsigned long long key_hash              # what it was found by: the hash, and
    cdef object token, mv_header, mv_legacy, host  # the header values themselves


cdef class FastShow:
    cdef object app, reader, identity, versions, hosts, links
    cdef list callers         # CALLERS_MAX slots: _Caller or None
    cdef bytes pool
    cdef Py_ssize_t pool_pos
    cdef long date_second
    cdef bytes date_header
    cdef bint use_mapped
    cdef _Blob blob
    cdef MappedDB mapped
    cdef object env, servers     # the reader's environment and its servers database

    cdef object answer_raw(self, bytes url, object token, object mv_header, object mv_legacy,
                           object host, bint keep_alive)
    cdef object answer_span(self, const char* url, Py_ssize_t url_n, Span token, Span mv_header,
                            Span mv_legacy, Span host, bint keep_alive)
    cdef _Caller _resolve(self, object token, object mv_header, object mv_legacy, object host)
    cdef object _show(self, const char* uuid, _Caller who, bytes root, bytes vroot,
                      bint keep_alive)
    cdef void _attach(self, env) except *
    cdef object _frame(self, _Blob b, _Caller who, bytes root, bytes vroot, bint keep_alive)
    cdef bytes _date(self)
    cdef void _request_id(self, char* out) except *
