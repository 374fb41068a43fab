# cython: language_level=3
"""Point reads of one LMDB database straight from the data file's mapped pages.

The show fast path spends most of its store time in py-lmdb's Python layer, not in LMDB: a
Transaction object per request, a memoryview, three method calls (begin, get, abort), ~6,000
instructions against LMDB's ~1,000 for the B-tree search itself.  This module reads the same
pages itself, under a read transaction that py-lmdb handed out, so it keeps every guarantee LMDB
gives readers:

* **A snapshot is pinned by a real read transaction.**  ``env.begin()`` registers the reader in
  LMDB's lock table with the snapshot's transaction id T.  Writers never reuse a page that T can
  reach while that transaction lives (LMDB's MVCC rule), so walking T's tree from its root is
  safe for as long as the transaction is held.
* **Fresh on every read.**  Before each read, the two meta pages' transaction ids are loaded
  (two 8-byte loads from the mapped file).  If the store has committed since T, the held
  transaction is aborted and a new one taken, so a read never sees an older state than a
  ``begin()`` at that moment would (the same reads LMDB's own ``mdb_txn_begin`` does).
* **Never pinned for long.**  The owner calls ``release_if_stale()`` from a periodic tick, so
  an idle worker does not keep an old snapshot (and its pages) alive for more than one tick
  after the store moves on.
* **Reading T's root.**  Commit T wrote meta page ``T & 1``; commit T+2 overwrites it, and it
  can only start after T+1's meta (the other page) is written.  The root is read while the
  other page still holds a txnid older than T, checked before and after (a seqlock), so the
  root read is T's own; otherwise the transaction is retaken.
* **Checked, and never trusted blindly.**  The magic and data format version are checked once,
  every page number against the snapshot's last page and the mapping, every node offset and
  size against its page, the page flags at each step, and the database's flags (a plain
  database, as the store creates it).  Anything unexpected returns -1: the caller falls back to
  py-lmdb for that read, and ``failures`` counts it.

Two things make a cold page cheaper, which is what a show in a 1,000,000-server store pays
(perf: the first touch of the leaf and of the blob's overflow page were most of its store time):

* **Huge pages.**  The mapping is ``MADV_HUGEPAGE`` (unless ``FASTNOVA_HUGEPAGES=0``), so a page
  read from disk through it arrives as a 2 MB folio that the kernel maps with one PMD entry;
  pages already cached in 2 MB folios are mapped that way whoever read them.  Shows at 1M
  servers: +6%, paired (BENCHMARKS.md).
* **Prefetch.**  The leaf page is prefetched whole before its header is read (the database's
  depth, from its record, says which level is the leaf), and the blob's lines as soon as its
  overflow page is known, so their cache misses overlap instead of following one another down
  the binary search and the copy: +3.5%, paired.

LMDB's on-disk format (data version 1) has not changed since 2012; ``MappedDB`` refuses any
other version.  tests/unit/test_mapped.py compares every read with py-lmdb's over random stores, under
a writer committing in another process, and with damaged pages.
"""
import os

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

cdef extern from "<sys/mman.h>":
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int madvise(void* addr, size_t length, int advice)
    int MADV_HUGEPAGE
    int PROT_READ
    int MAP_SHARED
    void* MAP_FAILED

cdef extern from "<fcntl.h>":
    int c_open "open"(const char* path, int flags)
    int O_RDONLY
    int O_CLOEXEC

cdef extern from "<unistd.h>":
    int c_close "close"(int fd)

cdef extern from *:
    """
    static inline uint64_t fn_acquire_u64(const uint8_t* p) {
        return __atomic_load_n((const uint64_t*)p, __ATOMIC_ACQUIRE);
    }
    static inline void fn_prefetch(const uint8_t* p, size_t n) {
        for (size_t off = 0; off < n; off += 64) __builtin_prefetch(p + off, 0, 3);
    }
    static inline uint16_t fn_u16(const uint8_t* p) { uint16_t v; memcpy(&v, p, 2); return v; }
    static inline uint32_t fn_u32(const uint8_t* p) { uint32_t v; memcpy(&v, p, 4); return v; }
    static inline uint64_t fn_u64(const uint8_t* p) { uint64_t v; memcpy(&v, p, 8); return v; }
    """
    uint64_t fn_acquire_u64(const uint8_t* p) noexcept nogil
    void fn_prefetch(const uint8_t* p, size_t n) noexcept nogil
    uint16_t fn_u16(const uint8_t* p) noexcept nogil
    uint32_t fn_u32(const uint8_t* p) noexcept nogil
    uint64_t fn_u64(const uint8_t* p) noexcept nogil


# LMDB's data format, version 1 (64-bit builds): the facts this reader depends on.
cdef enum:
    MAGIC = 0xBEEFC0DE
    DATA_VERSION = 1
    PAGE_HEAD = 16              # u64 pgno, u16 pad, u16 flags, u16 lower, u16 upper
    OFF_FLAGS = 10
    OFF_LOWER = 12
    NODE_HEAD = 8               # u16 lo, u16 hi, u16 flags, u16 key size; key; data
    P_BRANCH = 0x01
    P_LEAF = 0x02
    P_OVERFLOW = 0x04
    P_LEAF2 = 0x20
    P_SUBP = 0x40
    F_BIGDATA = 0x01
    F_SUBDATA = 0x02
    F_DUPDATA = 0x04
    # The meta page: page header, then u32 magic, u32 version, address, map size, the free and
    # main databases (48 bytes each: u32 pad, u16 flags, u16 depth, 4 counters, u64 root), the
    # last page and the transaction id.
    META_MAGIC = 16
    META_VERSION = 20
    META_FREE_PAD = 40          # the page size is kept in the free database's pad
    META_MAIN_ROOT = 128
    META_LAST_PG = 136
    META_TXNID = 144
    DB_SIZE = 48
    DB_FLAGS = 4
    DB_DEPTH = 6
    DB_ROOT = 40
    MAX_DEPTH = 32
    RENEW_TRIES = 4

cdef uint64_t NO_PAGE = <uint64_t>-1


cdef inline int _cmp(const uint8_t* a, size_t alen, const char* b, size_t blen) noexcept:
    """LMDB's default key order: bytes, then the shorter first."""
    cdef size_t n = alen if alen < blen else blen
    cdef int c = memcmp(a, b, n)
    if c:
        return c
    return -1 if alen < blen else (1 if alen > blen else 0)


# hugepages off (FASTNOVA_HUGEPAGES=0): no MADV_HUGEPAGE (a store much larger than memory,
# where a 2 MB read per miss would be waste).
from fastnova.config import current as _settings
cdef bint HUGEPAGES = _settings().hugepages


cdef class MappedDB:
    """Reads of the named database ``name`` of ``env`` (a py-lmdb Environment), zero-copy.

    ``get`` returns 1 and points ``value`` into the mapped file (valid until the next call), 0
    when the key is absent, -1 when this snapshot cannot be read here (use py-lmdb instead)."""

    def __cinit__(self):
        self.fd = -1
        self.base = NULL
        self.txn = None
        self.root = NO_PAGE
        self.leaf_level = -1

    def __init__(self, env, bytes name):
        self.env = env
        self.name = name
        path = os.path.join(env.path(), "data.mdb") if os.path.isdir(env.path()) else env.path()
        encoded = os.fsencode(path)
        self.fd = c_open(encoded, O_RDONLY | O_CLOEXEC)
        if self.fd < 0:
            raise OSError("cannot open %s" % path)
        self.psize = env.stat()["psize"]
        self._map(max(<size_t>env.info()["map_size"], 2 * self.psize))
        if fn_u32(self.base + META_MAGIC) != MAGIC or \
                fn_u32(self.base + META_VERSION) != DATA_VERSION or \
                fn_u32(self.base + META_FREE_PAD) != self.psize:
            self.close()
            raise ValueError("%s: not an LMDB data file of format %d with %d-byte pages"
                             % (path, DATA_VERSION, self.psize))

    def __dealloc__(self):
        self._drop()

    def close(self):
        self._drop()

    cdef void _drop(self):
        if self.txn is not None:
            try:
                self.txn.abort()
            except Exception:
                pass                    # the environment was closed under us: nothing held
            self.txn = None
        if self.base != NULL:
            munmap(<void*>self.base, self.maplen)
            self.base = NULL
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1

    cdef int _map(self, size_t length) except -1:
        cdef void* p = mmap(NULL, length, PROT_READ, MAP_SHARED, self.fd, 0)
        if p == MAP_FAILED:
            raise OSError("cannot map %d bytes of the store" % length)
        if HUGEPAGES:
            madvise(p, length, MADV_HUGEPAGE)
        if self.base != NULL:
            munmap(<void*>self.base, self.maplen)
        self.base = <const uint8_t*>p
        self.maplen = length
        return 0

    cdef uint64_t _current(self) noexcept:
        cdef uint64_t a = fn_acquire_u64(self.base + META_TXNID)
        cdef uint64_t b = fn_acquire_u64(self.base + self.psize + META_TXNID)
        return a if a > b else b

    def release_if_stale(self):
        """End the held transaction if the store has moved on (called from a periodic tick), so
        an idle reader never pins old pages for long."""
        if self.txn is not None and self.base != NULL and self._current() != self.txnid:
            try:
                self.txn.abort()
            except Exception:
                pass
            self.txn = None

    cdef int _fresh(self) except -2:
        if self.txn is not None and self._current() == self.txnid:
            return 1
        return self._renew()

    cdef int _renew(self) except -2:
        cdef int attempt, rc
        cdef uint64_t t, root
        cdef const uint8_t* mine
        cdef const uint8_t* other
        cdef const uint8_t* value
        cdef size_t vlen
        if self.txn is not None:
            try:
                self.txn.abort()
            except Exception:
                pass
            self.txn = None
        for attempt in range(RENEW_TRIES):
            txn = self.env.begin(None, None, False, False)
            t = txn.id()
            mine = self.base + (t & 1) * self.psize
            other = self.base + ((t & 1) ^ 1) * self.psize
            if fn_acquire_u64(other + META_TXNID) >= t or fn_acquire_u64(mine + META_TXNID) != t:
                txn.abort()
                continue
            root = fn_u64(mine + META_MAIN_ROOT)
            self.last_pg = fn_u64(mine + META_LAST_PG)
            if fn_acquire_u64(mine + META_TXNID) != t or fn_acquire_u64(other + META_TXNID) >= t:
                txn.abort()
                continue
            if (self.last_pg + 1) * self.psize > self.maplen:
                self._map((self.last_pg + 1) * self.psize * 2)
            self.txn = txn
            self.txnid = t
            self.renewals += 1
            if root == NO_PAGE:
                self.root = NO_PAGE
                return 1
            rc = self._search(root, self.name, len(self.name), 1, &value, &vlen, -1)
            if rc == 0:
                self.root = NO_PAGE        # no such database in this snapshot: nothing found
                return 1
            if rc < 0 or vlen != DB_SIZE or fn_u16(value + DB_FLAGS) != 0:
                break
            self.root = fn_u64(value + DB_ROOT)
            self.leaf_level = <int>fn_u16(value + DB_DEPTH) - 1
            return 1
        if self.txn is not None:
            self.txn.abort()
            self.txn = None
        self.failures += 1
        return -1

    cdef int get(self, const char* key, size_t klen, const uint8_t** value,
                 size_t* vlen) except -2:
        if self.base == NULL:
            return -1
        if self._fresh() < 0:
            return -1
        if self.root == NO_PAGE:
            return 0
        cdef int rc = self._search(self.root, key, klen, 0, value, vlen, self.leaf_level)
        if rc < 0:
            self.failures += 1
        return rc

    cdef int _search(self, uint64_t pgno, const char* key, size_t klen, int want_subdb,
                     const uint8_t** value, size_t* vlen, int leaf_level) noexcept:
        """Walk the snapshot's tree from page pgno: 1 found, 0 absent, -1 not readable."""
        cdef const uint8_t* page
        cdef const uint8_t* node
        cdef uint16_t flags, lower, nflags, ksize
        cdef Py_ssize_t n, idx
        cdef int c, depth
        cdef size_t psize = self.psize
        cdef uint64_t dsize, big
        for depth in range(MAX_DEPTH):
            if pgno < 2 or pgno > self.last_pg:
                return -1
            page = self.base + pgno * psize
            if depth == leaf_level:
                fn_prefetch(page, psize)
            flags = fn_u16(page + OFF_FLAGS)
            lower = fn_u16(page + OFF_LOWER)
            if lower < PAGE_HEAD or lower > psize or flags & (P_LEAF2 | P_SUBP | P_OVERFLOW):
                return -1
            n = (lower - PAGE_HEAD) >> 1
            if n == 0:
                return 0 if flags & P_LEAF else -1
            if flags & P_BRANCH:
                # The last node whose key is <= the key sought; node 0 stands for "everything
                # below node 1" and has no key.
                idx = self._floor(page, 1, n, key, klen, &c)
                if idx == -2:
                    return -1
                if idx == -1:
                    idx = 0
                node = self._node(page, idx)
                if node == NULL:
                    return -1
                pgno = (<uint64_t>fn_u16(node) | (<uint64_t>fn_u16(node + 2) << 16)
                        | (<uint64_t>fn_u16(node + 4) << 32))
                continue
            if not flags & P_LEAF:
                return -1
            idx = self._floor(page, 0, n, key, klen, &c)
            if idx == -2:
                return -1
            if idx == -1 or c != 0:
                return 0
            node = self._node(page, idx)
            ksize = fn_u16(node + 6)
            nflags = fn_u16(node + 4)
            dsize = <uint64_t>fn_u16(node) | (<uint64_t>fn_u16(node + 2) << 16)
            if nflags & F_DUPDATA or ((nflags & F_SUBDATA) != 0) != (want_subdb != 0):
                return -1
            if nflags & F_BIGDATA:
                if node + NODE_HEAD + ksize + 8 > page + psize:
                    return -1
                big = fn_u64(node + NODE_HEAD + ksize)
                if big < 2 or big > self.last_pg or \
                        (big * psize + PAGE_HEAD + dsize) > (self.last_pg + 1) * psize:
                    return -1
                page = self.base + big * psize
                fn_prefetch(page, PAGE_HEAD + dsize)
                if not fn_u16(page + OFF_FLAGS) & P_OVERFLOW:
                    return -1
                value[0] = page + PAGE_HEAD
            else:
                if node + NODE_HEAD + ksize + dsize > page + psize:
                    return -1
                value[0] = node + NODE_HEAD + ksize
            vlen[0] = dsize
            return 1
        return -1

    cdef Py_ssize_t _floor(self, const uint8_t* page, Py_ssize_t first, Py_ssize_t n,
                           const char* key, size_t klen, int* cmp) noexcept:
        """Binary search of nodes first..n-1 (in key order): the last whose key is <= key, with
        cmp set to 0 when it is equal; -1 when every key is greater; -2 on a damaged node."""
        cdef Py_ssize_t lo = first, hi = n - 1, mid, found = -1
        cdef const uint8_t* node
        cdef int c
        cmp[0] = 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            node = self._node(page, mid)
            if node == NULL:
                return -2
            c = _cmp(node + NODE_HEAD, fn_u16(node + 6), key, klen)
            if c <= 0:
                found = mid
                cmp[0] = c
                if c == 0:
                    break
                lo = mid + 1
            else:
                hi = mid - 1
        return found

    cdef const uint8_t* _node(self, const uint8_t* page, Py_ssize_t i) noexcept:
        cdef uint16_t off = fn_u16(page + PAGE_HEAD + 2 * i)
        cdef const uint8_t* node
        if off < PAGE_HEAD or <size_t>off + NODE_HEAD > self.psize:
            return NULL
        node = page + off
        if <size_t>off + NODE_HEAD + fn_u16(node + 6) > self.psize:
            return NULL
        return node

    def lookup(self, bytes key):
        """The value of key as bytes, None when absent; raises LookupError when this snapshot
        cannot be read here (tests compare this with py-lmdb)."""
        cdef const uint8_t* value
        cdef size_t vlen
        cdef int rc = self.get(key, len(key), &value, &vlen)
        if rc < 0:
            raise LookupError("snapshot not readable in place")
        if rc == 0:
            return None
        return (<const char*>value)[:vlen]

    @property
    def snapshot(self):
        """The transaction id of the snapshot held, or None."""
        return None if self.txn is None else self.txnid
