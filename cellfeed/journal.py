"""Append-only, checksummed journal of received messages, made durable by group commit.

A message is acknowledged to the broker only after its journal entry is on disk, and applied to
the store after that; the store records the last applied position (LSN) in the same transaction
as the changes, so after a crash the journal is replayed from there.

Layout: ``<dir>/<first lsn, 20 digits>.seg`` files.  A segment starts with SEGMENT_HEAD (magic,
first LSN); then records ``crc32 | length | lsn | payload`` where the crc covers length, lsn and
payload.  LSNs are consecutive across segments and never reused, even when every segment has been
trimmed (the next LSN is carried on from the store's applied position).

Failure policy: a failed write or fsync leaves the file's durable state unknown (Linux may drop
the dirty pages and report the error only once), so the journal refuses every later operation and
the caller must exit without acknowledging anything more.  It is never retried.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import zlib
from typing import Callable, Iterator

LOG = logging.getLogger(__name__)

SEGMENT_MAGIC = b"CFJ1"
SEGMENT_HEAD = struct.Struct("<4sQ")
RECORD_HEAD = struct.Struct("<IIQ")   # crc32, payload length, lsn
_CRC_SPAN = struct.Struct("<IQ")      # what the crc covers besides the payload
MAX_PAYLOAD = 128 << 20               # RabbitMQ's default max message size
DEFAULT_SEGMENT_BYTES = 64 << 20
SUFFIX = ".seg"


class JournalError(Exception):
    """Base of the journal's errors."""


class JournalFailed(JournalError):
    """A write or fsync failed: durability is unknown and the process must stop."""


class JournalCorrupt(JournalError):
    """A record before the tail does not check out: refuse to guess."""


class JournalLocked(JournalError):
    """Another process holds this journal."""


def _crc(length: int, lsn: int, payload) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_SPAN.pack(length, lsn)))


def encode_record(lsn: int, payload: bytes) -> bytes:
    length = len(payload)
    return RECORD_HEAD.pack(_crc(length, lsn, payload), length, lsn) + payload


def parse_records(data: bytes, first_lsn: int):
    """Valid records of a segment's bytes: ([(lsn, payload)], end offset of the last valid one)."""
    view = memoryview(data)
    pos, expect, out = SEGMENT_HEAD.size, first_lsn, []
    while pos + RECORD_HEAD.size <= len(data):
        crc, length, lsn = RECORD_HEAD.unpack_from(data, pos)
        end = pos + RECORD_HEAD.size + length
        if lsn != expect or length > MAX_PAYLOAD or end > len(data):
            break
        payload = view[pos + RECORD_HEAD.size:end]
        if _crc(length, lsn, payload) != crc:
            break
        out.append((lsn, bytes(payload)))
        pos, expect = end, expect + 1
    return out, pos


class SyncTicket:
    """A written group waiting for its fsync: the segment's fd, the group's last LSN."""

    __slots__ = ("fd", "lsn", "count", "retire")

    def __init__(self, fd: int, lsn: int, count: int):
        self.fd, self.lsn, self.count, self.retire = fd, lsn, count, False


class Journal:
    def __init__(self, directory: str, applied: int = 0,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 sync: Callable[[int], None] = os.fdatasync):
        """Open (and recover) the journal; ``applied`` is the store's applied position."""
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._sync = sync            # the fsync boundary; tests inject failures here
        self._buffer: list[bytes] = []
        self._failed: BaseException | None = None
        self._fd = -1
        os.makedirs(directory, exist_ok=True)
        self._lock_fd = self._lock()
        self._recover(applied)

    # -- opening ------------------------------------------------------------------------------

    def _lock(self) -> int:
        # flock dies with its process, so a consumer killed with -9 never leaves a stale lock.
        fd = os.open(os.path.join(self.directory, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLocked("journal %s is in use by another process" % self.directory)
        return fd

    def segments(self) -> list[int]:
        """First LSNs of the segments on disk, in order."""
        names = [n for n in os.listdir(self.directory) if n.endswith(SUFFIX)]
        return sorted(int(n[:-len(SUFFIX)]) for n in names)

    def _path(self, first_lsn: int) -> str:
        return os.path.join(self.directory, "%020d%s" % (first_lsn, SUFFIX))

    def _recover(self, applied: int):
        firsts = self.segments()
        if len(firsts) >= 2 and self._rotation_was_cut(firsts[-2], firsts[-1]):
            firsts = firsts[:-1]
        last_lsn = applied
        if firsts:
            last_lsn = max(last_lsn, self._recover_tail(firsts[-1]))
        self.next_lsn = last_lsn + 1
        if not firsts or self._tail_first + self._tail_count != self.next_lsn:
            # Empty journal, or the store is ahead of it: LSNs continue from the store.
            self._open_segment(self.next_lsn)

    def _rotation_was_cut(self, previous: int, last: int) -> bool:
        """A power cut right after a rotation: the new segment's head (fsynced when it was
        created) survived, the old segment's last group (its fsync still running) did not.
        Nothing of that group was acknowledged, and nothing after it (groups are fsynced and
        acknowledged in order: the new segment holds no record yet), so the empty new segment is
        dropped and the old one becomes the tail again, its torn end cut like any tail's.
        Anything else missing before the tail is damage, refused as before."""
        path = self._path(previous)
        with open(path, "rb") as f:
            data = f.read()
        self._check_head(data, previous, path)
        records, _end = parse_records(data, previous)
        if previous + len(records) >= last:
            return False
        last_path = self._path(last)
        with open(last_path, "rb") as f:
            tail = f.read()
        if len(tail) >= SEGMENT_HEAD.size:
            self._check_head(tail, last, last_path)
            if parse_records(tail, last)[0]:
                raise JournalCorrupt("%s: entries %d to %d are missing"
                                     % (path, previous + len(records), last - 1))
        LOG.warning("journal: %s lost its last %d entries (never acknowledged) in a crash "
                    "during a rotation; removing the empty %s", path,
                    last - previous - len(records), last_path)
        os.unlink(last_path)
        self._sync_directory()
        return True

    def _recover_tail(self, first: int) -> int:
        """Cut a torn tail off the newest segment; return its last valid LSN."""
        path = self._path(first)
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < SEGMENT_HEAD.size:
            # Killed while creating the segment: nothing in it was ever acknowledged.
            records, end = [], SEGMENT_HEAD.size
            self._write_head(path, first)
        else:
            self._check_head(data, first, path)
            records, end = parse_records(data, first)
        if end < len(data):
            LOG.warning("journal: cutting torn tail of %s: %d bytes after LSN %d",
                        path, len(data) - end, first + len(records) - 1)
            os.truncate(path, end)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._sync(self._fd)
        self._size, self._tail_first, self._tail_count = end, first, len(records)
        return first + len(records) - 1

    def _check_head(self, data: bytes, first: int, path: str):
        magic, head_lsn = SEGMENT_HEAD.unpack_from(data, 0)
        if magic != SEGMENT_MAGIC or head_lsn != first:
            raise JournalCorrupt("%s: bad segment header" % path)

    def _write_head(self, path: str, first: int):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._write_all(fd, SEGMENT_HEAD.pack(SEGMENT_MAGIC, first))
            self._sync(fd)
        finally:
            os.close(fd)

    def _open_segment(self, first: int):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        path = self._path(first)
        self._write_head(path, first)
        self._sync_directory()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size, self._tail_first, self._tail_count = SEGMENT_HEAD.size, first, 0

    def _sync_directory(self):
        # A new or removed segment's directory entry is durable only once the directory is.
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._sync(fd)
        finally:
            os.close(fd)

    # -- writing ------------------------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Buffer one entry; it is durable only after the next commit().  Returns its LSN."""
        self._check_usable()
        lsn = self.next_lsn
        self._buffer.append(encode_record(lsn, payload))
        self.next_lsn = lsn + 1
        return lsn

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def commit(self) -> int:
        """Write and fsync every buffered entry (one group); return the last durable LSN."""
        ticket = self.write()
        if ticket is not None:
            error = None
            try:
                self.sync(ticket)
            except OSError as exc:
                error = exc
            self.synced(ticket, error)
        return self.next_lsn - 1

    # A group in three steps, so that its fsync can run in another thread while the consumer
    # keeps receiving (cellfeed.consumer): write() in the owner's thread, sync(ticket) in any
    # thread (os.fdatasync releases the GIL), synced(ticket, error) back in the owner's thread.
    # Every entry written is durable once sync() of its ticket has returned; the segment a
    # group ends is kept open until then, even when the journal has moved to the next one.

    def write(self) -> "SyncTicket | None":
        """Write every buffered entry to the segment, without fsync; None if there were none.
        The group is durable once sync(ticket) returns."""
        self._check_usable()
        if not self._buffer:
            return None
        data = b"".join(self._buffer)
        count = len(self._buffer)
        try:
            self._write_all(self._fd, data)
        except OSError as exc:
            self._fail(exc)
        self._size += len(data)
        self._tail_count += count
        self._buffer.clear()
        ticket = SyncTicket(self._fd, self.next_lsn - 1, count)
        if self._size >= self.segment_bytes:
            ticket.retire = True        # synced() closes it; writing goes on in a new segment
            self._fd = -1
            try:
                self._open_segment(self.next_lsn)
            except OSError as exc:
                self._fail(exc)
        return ticket

    def sync(self, ticket: "SyncTicket") -> None:
        """fsync what write() wrote (any thread; raises OSError)."""
        self._sync(ticket.fd)

    def synced(self, ticket: "SyncTicket", error: BaseException | None) -> int:
        """In the owner's thread, after sync(ticket): the last durable LSN, or JournalFailed
        (never retried) if the fsync failed."""
        if ticket.retire:
            os.close(ticket.fd)
            ticket.retire = False
        if error is not None and self._failed is None:
            self._fail(error if isinstance(error, OSError) else OSError(str(error)))
        self._check_usable()
        return ticket.lsn

    @staticmethod
    def _write_all(fd: int, data: bytes):
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "short write to journal")
            view = view[written:]

    def _fail(self, exc: OSError):
        self._failed = exc
        raise JournalFailed("journal write/fsync failed in %s: %s (%s); durability of the "
                            "last group is unknown, so nothing more is acknowledged"
                            % (self.directory, exc.strerror or exc,
                               errno.errorcode.get(exc.errno, exc.errno))) from exc

    def _check_usable(self):
        if self._failed is not None:
            raise JournalFailed("journal %s failed earlier (%s); it is never retried"
                                % (self.directory, self._failed))

    # -- reading and trimming -----------------------------------------------------------------

    def read_from(self, after: int) -> Iterator[tuple[int, bytes]]:
        """Durable entries with LSN > ``after``, in order (for replay at start)."""
        firsts = self.segments()
        for index, first in enumerate(firsts):
            following = firsts[index + 1] if index + 1 < len(firsts) else None
            if following is not None and following <= after + 1:
                continue
            yield from self._read_segment(first, after, following)

    def _read_segment(self, first: int, after: int, following: int | None):
        path = self._path(first)
        with open(path, "rb") as f:
            data = f.read()
        self._check_head(data, first, path)
        records, end = parse_records(data, first)
        if following is not None and (end != len(data) or first + len(records) != following):
            raise JournalCorrupt("%s: damaged record after LSN %d"
                                 % (path, first + len(records) - 1))
        for lsn, payload in records:
            if lsn > after:
                yield lsn, payload

    def trim(self, applied: int) -> int:
        """Remove segments whose every entry is applied; never the one being written."""
        firsts = self.segments()
        removed = 0
        for first, following in zip(firsts, firsts[1:]):
            if following - 1 > applied or first == self._tail_first:
                break
            os.unlink(self._path(first))
            removed += 1
        if removed:
            self._sync_directory()
        return removed

    def close(self):
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1


class JournalReader:
    """Reads, in order, the durable entries of a journal that another process writes.

    The applier process (cellfeed.applyproc) tails the consumer's journal with it: it takes no
    lock and writes nothing, and reads only up to an LSN the writer has reported fsynced, so it
    never meets a torn record (one would be damage, and is refused).  The writer may trim a
    segment this reader still holds open: the open file stays readable until closed.
    """

    CHUNK = 1 << 20

    def __init__(self, directory: str, after: int):
        self.directory = directory
        self.next_lsn = after + 1
        self._file = None
        self._path = ""
        self._buf = bytearray()
        self._pos = 0

    def read(self, upto: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` entries with LSN from next_lsn to ``upto`` (durable), in order."""
        out = []
        while self.next_lsn <= upto and len(out) < limit:
            if self._file is None:
                self._open_for(self.next_lsn)
            found = self._record()
            if found is None:
                self._next_segment()
                continue
            lsn, payload = found
            if lsn == self.next_lsn:
                out.append(found)
                self.next_lsn += 1
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _segment_path(self, first: int) -> str:
        return os.path.join(self.directory, "%020d%s" % (first, SUFFIX))

    def _open_for(self, lsn: int):
        names = [n for n in os.listdir(self.directory) if n.endswith(SUFFIX)]
        firsts = sorted(int(n[:-len(SUFFIX)]) for n in names)
        holding = [f for f in firsts if f <= lsn]
        if not holding:
            raise JournalCorrupt("%s: no segment holds durable entry %d"
                                 % (self.directory, lsn))
        self._open(holding[-1])

    def _open(self, first: int):
        self.close()
        self._path = self._segment_path(first)
        self._file = open(self._path, "rb")
        self._buf, self._pos = bytearray(), 0
        if not self._fill(SEGMENT_HEAD.size):
            raise JournalCorrupt("%s: segment header missing" % self._path)
        magic, head_lsn = SEGMENT_HEAD.unpack_from(self._buf, 0)
        if magic != SEGMENT_MAGIC or head_lsn != first:
            raise JournalCorrupt("%s: bad segment header" % self._path)
        self._pos = SEGMENT_HEAD.size

    def _next_segment(self):
        """The current segment has nothing more: the next entry starts the next segment."""
        path = self._segment_path(self.next_lsn)
        if not os.path.exists(path):
            raise JournalCorrupt("%s: durable entry %d is missing" % (self.directory,
                                                                        self.next_lsn))
        self._open(self.next_lsn)

    def _fill(self, need: int) -> bool:
        """Have ``need`` unread bytes buffered if the file holds them."""
        while len(self._buf) - self._pos < need:
            if self._pos > self.CHUNK:
                del self._buf[:self._pos]
                self._pos = 0
            chunk = self._file.read(max(self.CHUNK, need))
            if not chunk:
                return False
            self._buf += chunk
        return True

    def _record(self) -> tuple[int, bytes] | None:
        """The next record of the open segment, or None at its (durable) end."""
        if not self._fill(RECORD_HEAD.size):
            return None
        crc, length, lsn = RECORD_HEAD.unpack_from(self._buf, self._pos)
        if length > MAX_PAYLOAD or not self._fill(RECORD_HEAD.size + length):
            raise JournalCorrupt("%s: damaged record after LSN %d" % (self._path,
                                                                     self.next_lsn - 1))
        start = self._pos + RECORD_HEAD.size      # after _fill, which may move the buffer
        payload = bytes(memoryview(self._buf)[start:start + length])    # one copy, not two
        if _crc(length, lsn, payload) != crc or lsn > self.next_lsn:
            raise JournalCorrupt("%s: damaged record after LSN %d" % (self._path,
                                                                     self.next_lsn - 1))
        self._pos = start + length
        return lsn, payload
