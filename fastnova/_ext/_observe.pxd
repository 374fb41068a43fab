from libc.stdint cimport uint64_t


cdef class Recorder:
    cdef uint64_t* words              # this worker's metrics slot; NULL: not counted
    cdef object slot                  # the memoryview that keeps the slot's pages mapped
    cdef public object access         # fastnova.serve.observe.AccessLog, or None
    cdef public bint logging
    cdef public long connections, requests

    cpdef long long now(self)
    cpdef void record(self, int route, bytes answer, long long t0)
    cpdef void log(self, object peer, object method, object target, bytes answer,
                   long long t0, object token)
