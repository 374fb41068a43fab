# cython: language_level=3
"""The compiled twin of fastnova.serve.observe.Recorder: a request's counters in tens of ns.

record() reads the status from the answer's status line, the latency from CLOCK_MONOTONIC, and
adds three words to this worker's slot of the shared metrics region (fastnova/serve/metrics.py
has the layout); no Python object is made.  log() keeps the raw parts for the access log, which
the worker's tick formats and writes (fastnova/serve/observe.py).
"""
import time as _time

from fastnova.serve import metrics as M
from fastnova.serve.observe import BATCH

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t


cdef extern from "<string.h>" nogil:
    void* memmem(const void* hay, size_t n, const void* needle, size_t m)


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* tp)
    int CLOCK_MONOTONIC


cdef int ROUTES = M.ROUTES
cdef int NSTATUS = M.NSTATUS
cdef int NB = M.BUCKETS + 1
cdef Py_ssize_t REQ_OFF = M.REQ_OFF, HIST_OFF = M.HIST_OFF, SUM_OFF = M.SUM_OFF
cdef long long BOUNDS[32]
cdef int NBOUNDS = len(M.BOUNDS_US)
cdef int STATUS_OF[600]          # status code -> index in a slot's row
cdef int _i
for _i in range(600):
    STATUS_OF[_i] = M.OTHER_STATUS
for _i, _code in enumerate(M.STATUSES):
    STATUS_OF[_code] = _i
for _i, _b in enumerate(M.BOUNDS_US):
    BOUNDS[_i] = _b


cdef inline long long _now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <long long>ts.tv_sec * 1000000 + ts.tv_nsec // 1000


cdef class Recorder:

    def __init__(self, slot=None, access=None):
        cdef Py_buffer view
        self.words = NULL
        self.slot = slot
        if slot is not None:
            PyObject_GetBuffer(slot, &view, PyBUF_WRITABLE)
            self.words = <uint64_t*>view.buf     # the mmap outlives this (the slot holds it)
            PyBuffer_Release(&view)
        self.access = access
        self.logging = access is not None
        self.connections = 0
        self.requests = 0

    cpdef long long now(self):
        return _now_us()

    cpdef void record(self, int route, bytes answer, long long t0):
        cdef const char* p
        cdef int status = 0, b
        cdef long long micros
        self.requests += 1
        if self.words == NULL:
            return
        if route < 0 or route >= ROUTES:
            route = 0
        if PyBytes_GET_SIZE(answer) >= 12:
            p = PyBytes_AS_STRING(answer) + 9
            status = (p[0] - 48) * 100 + (p[1] - 48) * 10 + (p[2] - 48)
        if status < 0 or status >= 600:
            status = 0
        micros = _now_us() - t0
        b = 0
        while b < NBOUNDS and micros > BOUNDS[b]:
            b += 1
        self.words[REQ_OFF + route * NSTATUS + STATUS_OF[status]] += 1
        self.words[HIST_OFF + route * NB + b] += 1
        self.words[SUM_OFF + route] += <uint64_t>micros

    cpdef void log(self, object peer, object method, object target, bytes answer,
                   long long t0, object token):
        cdef const char* p = PyBytes_AS_STRING(answer)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(answer)
        cdef const char* end = <const char*>memmem(p, n, b"\r\n\r\n", 4)
        cdef Py_ssize_t head = (end - p) if end != NULL else (n if n < 512 else 512)
        cdef Py_ssize_t body = (n - head - 4) if end != NULL else 0
        entries = self.access.entries
        entries.append((_time.time(), peer, method, target, answer[:head], body,
                        _now_us() - t0, token))
        if len(entries) >= BATCH:
            self.access.flush()

    def tick(self):
        if self.access is not None:
            self.access.flush()

    def close(self):
        if self.access is not None:
            self.access.close()
