# cython: language_level=3
"""Connections read and written through an edge-triggered epoll set nested in the uvloop loop.

Why.  libuv registers every socket with epoll level-triggered.  A level-triggered item that
epoll_wait reports is put back on epoll's ready list at once, in the order of that report, so at
the next wait the connections answered in the previous batch are polled, and served, ahead of
connections whose request arrived earlier but that were not in that batch.  Under a steady
stream of keep-alive requests the oldest request is then often served last.  A C server doing
one read, 3.5 us of work and one write per event (bench/epoll_server.c), under a closed loop of
8 clients: level-triggered, p90 1.8x its median and p99 1.47x nginx's; edge-triggered, at the
same throughput, 1.27x and 1.04x (bench/epoll_order.py, BENCHMARKS.md, eighth session).  An edge-triggered item
is queued only when new bytes arrive, so requests are taken in the order they arrived, which is
what nginx (edge-triggered) does.

How.  One epoll set per worker (``EdgePoller``), edge-triggered for input and output of every
connection, registered once.  The uvloop loop watches that set's descriptor like any other: when
one of its connections is ready, ``EdgePoller.run`` takes the ready ones in arrival order and
reads or flushes each.  Everything else stays on the uvloop loop: timers, signals, the acceptor,
futures and awaits of the general path.  ``EdgeTransport`` is the asyncio transport the protocol
sees (write, close, abort, pause_reading, resume_reading, flow control with pause_writing and
resume_writing, get_extra_info), with asyncio's semantics: ``connection_lost`` is called soon
after the transport is closed, never from inside a call of the protocol.

Edge-triggered input must be read until the socket is empty, or no new event comes: a read that
fills the buffer is followed by another; one that returns less has emptied the socket.  A
connection whose reading is paused keeps its bytes in the socket, and ``resume_reading`` reads
them without waiting for an event.  At most ``READS_PER_TURN`` reads are made for one connection
per turn, so a client that pipelines without end does not hold the worker; the rest is read from
a callback soon after.

Reads are 16 KB and the write buffer's high-water mark is 16 KB: a request is far smaller, and
the kernel's socket buffers absorb bursts.  What a connection holds while its client does not
read is at most one read and that buffer (fastnova/api/protocol.py, docs/http.md).
"""
import logging
import socket as _socket
import struct

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.errno cimport errno, EAGAIN, EINTR
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, free

cdef extern from "<sys/epoll.h>":
    ctypedef union epoll_data_t:
        void* ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* event)
    int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) nogil
    int EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL
    uint32_t EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET

cdef extern from "<sys/socket.h>":
    ssize_t recv(int fd, void* buf, size_t n, int flags) nogil
    ssize_t send(int fd, const void* buf, size_t n, int flags) nogil
    int MSG_NOSIGNAL, MSG_DONTWAIT

cdef extern from "<unistd.h>":
    int c_close "close"(int fd)

cdef extern from "<string.h>":
    char* strerror(int errnum)

LOG = logging.getLogger("fastnova.edge")
_SOL_SOCKET = _socket.SOL_SOCKET
_SO_LINGER = _socket.SO_LINGER
_LINGER_ZERO = struct.pack("ii", 1, 0)

cdef enum:
    MAX_EVENTS = 256
    READ_SIZE = 16384            # one read (see the docstring; EAGAIN is EWOULDBLOCK here)
    READS_PER_TURN = 16
HIGH_WATER = 16384
LOW_WATER = 4096


cdef class EdgePoller:
    """A worker's edge-triggered epoll set and the connections in it (fd -> transport)."""

    cdef int epfd
    cdef readonly object loop
    cdef dict conns
    cdef char* buf
    cdef epoll_event* events

    def __cinit__(self):
        self.epfd = -1
        self.buf = NULL
        self.events = NULL

    def __init__(self, loop):
        self.loop = loop
        self.conns = {}
        self.buf = <char*>malloc(READ_SIZE)
        self.events = <epoll_event*>malloc(sizeof(epoll_event) * MAX_EVENTS)
        if self.buf == NULL or self.events == NULL:
            raise MemoryError()
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, "epoll_create1: " + strerror(errno).decode())
        loop.add_reader(self.epfd, self.run)

    def __dealloc__(self):
        if self.epfd >= 0:
            c_close(self.epfd)
        free(self.buf)
        free(<void*>self.events)

    def close(self):
        """Stop watching (the loop is ending); open connections are left as they are."""
        if self.epfd >= 0:
            try:
                self.loop.remove_reader(self.epfd)
            except Exception:
                pass

    def __len__(self):
        return len(self.conns)

    def connect(self, sock, protocol_factory):
        """Take an accepted socket: make its transport, register it, call connection_made."""
        sock.setblocking(False)
        transport = EdgeTransport(self, sock)
        protocol = protocol_factory()
        transport._attach(protocol)
        cdef epoll_event ev
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET
        ev.data.u64 = 0
        ev.data.fd = transport.fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, transport.fd, &ev) < 0:
            err = errno
            sock.close()
            raise OSError(err, "epoll_ctl: " + strerror(err).decode())
        self.conns[transport.fd] = transport
        protocol.connection_made(transport)
        # Bytes that arrived before registration raised their edge already: look now.
        if not transport.closed and transport.reading:
            transport._read(True)
        return transport

    def run(self):
        """The uvloop reader of the epoll set: serve every ready connection, oldest first."""
        cdef int n, i
        cdef uint32_t ev
        cdef EdgeTransport t
        n = epoll_wait(self.epfd, self.events, MAX_EVENTS, 0)
        if n <= 0:
            return
        conns = self.conns
        for i in range(n):
            obj = conns.get(self.events[i].data.fd)
            if obj is None:
                continue                 # closed earlier in this turn
            t = <EdgeTransport>obj
            ev = self.events[i].events
            if ev & EPOLLOUT and t.buffered:
                t._flush()
            if ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR) and t.reading and not t.closed:
                # With the peer's FIN in this edge, a short read is not the end: read to it.
                t._read((ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)

    cdef void _forget(self, EdgeTransport t):
        if self.conns.get(t.fd) is t:
            del self.conns[t.fd]


cdef class EdgeTransport:
    """asyncio.Transport over one connection of an EdgePoller."""

    cdef EdgePoller poller
    cdef readonly object sock
    cdef readonly int fd
    cdef object protocol
    cdef object on_data
    cdef list wbuf                   # bytes not sent yet, oldest first (memoryviews/bytes)
    cdef readonly Py_ssize_t buffered
    cdef Py_ssize_t high, low
    cdef readonly bint reading, closing, closed, writing_paused, eof
    cdef bint read_scheduled
    cdef dict extra

    def __init__(self, EdgePoller poller, sock):
        self.poller = poller
        self.sock = sock
        self.fd = sock.fileno()
        self.wbuf = []
        self.buffered = 0
        self.high = HIGH_WATER
        self.low = LOW_WATER
        self.reading = True
        self.extra = None

    cdef void _attach(self, protocol):
        self.protocol = protocol
        self.on_data = protocol.data_received

    # -- reading -------------------------------------------------------------------------------

    cdef void _read(self, bint drain):
        """Read until the socket is empty: until EAGAIN or end of stream when ``drain`` (no
        edge tells what is there), else until a read returns less than it asked for."""
        cdef ssize_t n
        cdef int reads = 0, err
        while self.reading and not self.closed:
            if reads == READS_PER_TURN:
                self._schedule_read()
                return
            reads += 1
            n = recv(self.fd, self.poller.buf, READ_SIZE, MSG_DONTWAIT)
            if n > 0:
                data = PyBytes_FromStringAndSize(self.poller.buf, n)
                try:
                    self.on_data(data)
                except BaseException as exc:
                    self._fatal(exc, "data_received failed")
                    return
                if n < READ_SIZE and not drain:
                    return               # the socket is empty; the next bytes raise an edge
                continue
            if n == 0:
                self._eof()
                return
            err = errno
            if err == EAGAIN:
                return
            if err == EINTR:
                continue
            self._lost(OSError(err, strerror(err).decode()))
            return

    cdef void _schedule_read(self):
        if not self.read_scheduled:
            self.read_scheduled = True
            self.poller.loop.call_soon(self._read_soon)

    def _read_soon(self):
        self.read_scheduled = False
        if self.reading and not self.closed:
            self._read(True)

    cdef void _eof(self):
        self.eof = True
        self.reading = False
        try:
            keep_open = self.protocol.eof_received()
        except BaseException as exc:
            self._fatal(exc, "eof_received failed")
            return
        if not keep_open:
            self.close()

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        if self.closing or self.closed or self.eof or self.reading:
            return
        self.reading = True
        self._schedule_read()            # bytes may be waiting: no edge will announce them

    def is_reading(self):
        return self.reading and not self.closing and not self.closed

    # -- writing -------------------------------------------------------------------------------

    def write(self, data):
        cdef Py_buffer view
        cdef ssize_t n
        cdef Py_ssize_t total
        cdef int err
        if self.closing or self.closed:
            return
        if type(data) is bytes:
            if PyBytes_GET_SIZE(data) == 0:
                return
            if self.buffered:
                self._queue(data)
                return
            n = send(self.fd, PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data),
                     MSG_NOSIGNAL | MSG_DONTWAIT)
            err = errno
            total = PyBytes_GET_SIZE(data)
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                total = view.len
                if total == 0:
                    return
                if self.buffered:
                    self._queue(bytes(data))
                    return
                n = send(self.fd, view.buf, <size_t>view.len, MSG_NOSIGNAL | MSG_DONTWAIT)
                err = errno                 # before the copy below or the release can touch it
                if 0 <= n < total:
                    data = bytes(data)  # keep no view of a caller's buffer
            finally:
                PyBuffer_Release(&view)
        if n == total:
            return
        if n < 0:
            if err != EAGAIN and err != EINTR:
                self._lost(OSError(err, strerror(err).decode()))
                return
            n = 0
        self._queue(memoryview(data)[n:] if n else data)

    def writelines(self, list_of_data):
        for data in list_of_data:
            self.write(data)

    cdef void _queue(self, data):
        self.wbuf.append(data)
        self.buffered += len(data)
        if not self.writing_paused and self.buffered > self.high:
            self.writing_paused = True
            try:
                self.protocol.pause_writing()
            except BaseException as exc:
                self._fatal(exc, "pause_writing failed")

    cdef void _flush(self):
        cdef Py_buffer view
        cdef ssize_t n
        cdef Py_ssize_t size
        cdef int err
        while self.wbuf and not self.closed:
            item = self.wbuf[0]
            PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
            size = view.len
            n = send(self.fd, view.buf, <size_t>size, MSG_NOSIGNAL | MSG_DONTWAIT)
            err = errno
            PyBuffer_Release(&view)
            if n < 0:
                if err == EINTR:
                    continue
                if err == EAGAIN:
                    return
                self._lost(OSError(err, strerror(err).decode()))
                return
            self.buffered -= n
            if n < size:
                self.wbuf[0] = memoryview(item)[n:]
                return
            del self.wbuf[0]
        if self.closed:
            return
        if self.writing_paused and self.buffered <= self.low:
            self.writing_paused = False
            try:
                self.protocol.resume_writing()
            except BaseException as exc:
                self._fatal(exc, "resume_writing failed")
                return
        if self.closing and not self.buffered:
            self._finish(None)

    def get_write_buffer_size(self):
        return self.buffered

    def get_write_buffer_limits(self):
        return (self.low, self.high)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not 0 <= low <= high:
            raise ValueError("high (%r) must be >= low (%r) must be >= 0" % (high, low))
        self.high, self.low = high, low

    def can_write_eof(self):
        return False

    # -- closing -------------------------------------------------------------------------------

    def is_closing(self):
        return self.closing or self.closed

    def close(self):
        """Stop reading; close once what was written has been sent."""
        if self.closing or self.closed:
            return
        self.closing = True
        self.reading = False
        if not self.buffered:
            self._finish(None)

    def abort(self):
        """Close now, dropping what is buffered; the peer gets a reset, not an end of stream."""
        if self.closed:
            return
        self.closing = True
        try:
            self.sock.setsockopt(_SOL_SOCKET, _SO_LINGER, _LINGER_ZERO)
        except OSError:
            pass
        self._finish(None)

    cdef void _lost(self, exc):
        """The peer went away (reset, broken pipe): drop what is buffered."""
        if self.closed:
            return
        self.closing = True
        self._finish(exc)

    cdef void _fatal(self, exc, str what):
        LOG.error("%s on fd %d: %r", what, self.fd, exc, exc_info=exc)
        self.abort()

    cdef void _finish(self, exc):
        self.closed = True
        self.reading = False
        self.wbuf = []
        self.buffered = 0
        self.poller._forget(self)
        # Closing the descriptor takes it out of the epoll set (it is not shared).
        try:
            self.sock.close()
        except OSError:
            pass
        self.poller.loop.call_soon(self._call_lost, exc)

    def _call_lost(self, exc):
        protocol, self.protocol, self.on_data = self.protocol, None, None
        if protocol is not None:
            protocol.connection_lost(exc)

    # -- the rest of asyncio's transport -------------------------------------------------------

    def get_extra_info(self, name, default=None):
        if self.extra is None:
            self.extra = {"socket": self.sock}
            try:
                self.extra["peername"] = self.sock.getpeername()
            except OSError:
                self.extra["peername"] = None
            try:
                self.extra["sockname"] = self.sock.getsockname()
            except OSError:
                self.extra["sockname"] = None
        return self.extra.get(name, default)

    def get_protocol(self):
        return self.protocol

    def set_protocol(self, protocol):
        self._attach(protocol)
