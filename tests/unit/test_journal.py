"""The feed journal on a real filesystem: checksums, torn tails, replay, trim, failed fsync."""
from __future__ import annotations

import errno
import os

import pytest

from cellfeed.journal import (RECORD_HEAD, SEGMENT_HEAD, Journal, JournalCorrupt,
                              JournalFailed, JournalLocked)


def fill(journal, count, start=0):
    for i in range(start, start + count):
        journal.append(b"entry-%d" % i)
    return journal.commit()


def entries(journal, after=0):
    return list(journal.read_from(after))


def only_segment(directory):
    names = sorted(n for n in os.listdir(directory) if n.endswith(".seg"))
    return os.path.join(directory, names[-1])


def test_append_commit_replay(tmp_path):
    j = Journal(str(tmp_path))
    assert j.append(b"a") == 1 and j.append(b"b") == 2
    assert j.pending == 2
    assert entries(j) == []            # nothing is durable before commit
    assert j.commit() == 2
    assert entries(j) == [(1, b"a"), (2, b"b")]
    assert entries(j, after=1) == [(2, b"b")]
    j.close()
    j = Journal(str(tmp_path))
    assert j.next_lsn == 3
    assert entries(j) == [(1, b"a"), (2, b"b")]


def test_uncommitted_entries_are_lost_not_half_kept(tmp_path):
    j = Journal(str(tmp_path))
    fill(j, 3)
    j.append(b"never committed")
    j.close()
    j = Journal(str(tmp_path))
    assert [lsn for lsn, _ in entries(j)] == [1, 2, 3]
    assert j.append(b"next") == 4


@pytest.mark.parametrize("cut", [1, RECORD_HEAD.size - 1, RECORD_HEAD.size + 3])
def test_torn_tail_is_cut(tmp_path, cut):
    j = Journal(str(tmp_path))
    fill(j, 5)
    j.close()
    path = only_segment(str(tmp_path))
    size = os.path.getsize(path)
    with open(path, "ab") as f:       # a group that was being written when the power went
        f.write(b"\x07" * cut)
    j = Journal(str(tmp_path))
    assert os.path.getsize(path) == size
    assert [lsn for lsn, _ in entries(j)] == [1, 2, 3, 4, 5]
    assert fill(j, 1) == 6
    assert entries(j)[-1] == (6, b"entry-0")


def test_checksum_mismatch_in_tail_cuts_from_there(tmp_path):
    j = Journal(str(tmp_path))
    fill(j, 4)
    j.close()
    path = only_segment(str(tmp_path))
    data = bytearray(open(path, "rb").read())
    data[-2] ^= 0xFF                   # flip a byte of the last payload
    open(path, "wb").write(bytes(data))
    j = Journal(str(tmp_path))
    assert [lsn for lsn, _ in entries(j)] == [1, 2, 3]
    assert j.next_lsn == 4


def test_damage_before_the_tail_is_refused(tmp_path):
    j = Journal(str(tmp_path), segment_bytes=200)
    for i in range(6):
        fill(j, 3, start=i * 3)
    first = sorted(os.listdir(str(tmp_path)))[0]
    path = os.path.join(str(tmp_path), first)
    data = bytearray(open(path, "rb").read())
    data[SEGMENT_HEAD.size + RECORD_HEAD.size] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(JournalCorrupt):
        entries(j)


def test_a_power_cut_during_a_rotation_drops_the_empty_new_segment(tmp_path):
    """The old segment's last group (fsync in flight) is gone, the new segment's fsynced head
    is there: the journal reopens on the old segment, with nothing missing in between."""
    j = Journal(str(tmp_path), segment_bytes=200)
    while len(j.segments()) < 2:
        fill(j, 3, start=j.next_lsn - 1)
    previous, last = j.segments()
    end = j.next_lsn - 1
    j.close()
    path = os.path.join(str(tmp_path), "%020d.seg" % previous)
    data = open(path, "rb").read()
    records_size = len(data) - SEGMENT_HEAD.size
    cut = SEGMENT_HEAD.size + records_size * 2 // 3     # mid-record: the group torn
    os.truncate(path, cut)
    j = Journal(str(tmp_path), segment_bytes=200)
    assert j.segments() == [previous]
    kept = [lsn for lsn, _ in entries(j)]
    assert kept == list(range(1, j.next_lsn)) and j.next_lsn - 1 < end
    assert j.commit() == j.next_lsn - 1
    j.append(b"after")
    lsn = j.commit()
    assert entries(j)[-1] == (lsn, b"after") and lsn == kept[-1] + 1
    j.close()


def test_a_gap_before_a_segment_with_records_is_refused(tmp_path):
    j = Journal(str(tmp_path), segment_bytes=200)
    while len(j.segments()) < 2:
        fill(j, 3, start=j.next_lsn - 1)
    fill(j, 2, start=100)                     # the new segment holds records
    previous = j.segments()[0]
    j.close()
    path = os.path.join(str(tmp_path), "%020d.seg" % previous)
    os.truncate(path, os.path.getsize(path) - 5)
    with pytest.raises(JournalCorrupt, match="missing"):
        Journal(str(tmp_path), segment_bytes=200)


def test_segments_rotate_and_trim(tmp_path):
    j = Journal(str(tmp_path), segment_bytes=300)
    for i in range(10):
        fill(j, 4, start=i * 4)
    firsts = j.segments()
    assert len(firsts) > 3
    assert [lsn for lsn, _ in entries(j)] == list(range(1, 41))
    # Applied up to the end of the second segment: the first two go, no others.
    applied = firsts[2] - 1
    assert j.trim(applied) == 2
    assert j.segments() == firsts[2:]
    assert entries(j, after=applied)[0][0] == applied + 1
    # Everything applied: all but the segment being written go.
    j.trim(10 ** 9)
    assert j.segments() == firsts[-1:]


def test_lsns_continue_from_the_store_after_full_trim(tmp_path):
    j = Journal(str(tmp_path), segment_bytes=100)
    fill(j, 10)
    j.trim(10)
    j.close()
    # The store says 10 is applied; even if every segment were gone, LSNs must not restart.
    for name in os.listdir(str(tmp_path)):
        if name.endswith(".seg"):
            os.unlink(os.path.join(str(tmp_path), name))
    j = Journal(str(tmp_path), applied=10)
    assert j.append(b"x") == 11
    j.commit()
    assert entries(j, after=10) == [(11, b"x")]


def test_store_ahead_of_journal_opens_new_segment(tmp_path):
    j = Journal(str(tmp_path))
    fill(j, 3)
    j.close()
    j = Journal(str(tmp_path), applied=50)
    assert j.append(b"y") == 51
    j.commit()
    assert entries(j, after=50) == [(51, b"y")]


def test_second_process_is_locked_out(tmp_path):
    j = Journal(str(tmp_path))
    with pytest.raises(JournalLocked):
        Journal(str(tmp_path))
    j.close()
    Journal(str(tmp_path)).close()


def test_failed_fsync_is_fatal_and_never_retried(tmp_path):
    calls, armed = [], []

    def failing_sync(fd):
        calls.append(fd)
        if armed:                      # the opening syncs pass, the first group's fails
            raise OSError(errno.EIO, "Input/output error")
        os.fdatasync(fd)

    j = Journal(str(tmp_path), sync=failing_sync)
    armed.append(True)
    j.append(b"a")
    with pytest.raises(JournalFailed, match="EIO"):
        j.commit()
    count = len(calls)
    with pytest.raises(JournalFailed):
        j.commit()                     # not retried: the fsync is not called again
    with pytest.raises(JournalFailed):
        j.append(b"b")
    assert len(calls) == count


def test_full_disk_write_is_fatal(tmp_path, monkeypatch):
    j = Journal(str(tmp_path))
    real_write = os.write

    def full(fd, data):
        if fd == j._fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    j.append(b"a")
    with pytest.raises(JournalFailed, match="ENOSPC"):
        j.commit()


# -- JournalReader: the applier process tails the consumer's journal ---------------------------

@pytest.mark.parametrize("chunk", [7, 100, 1 << 20])
def test_reader_tails_the_durable_entries_across_segments(tmp_path, chunk):
    import random
    from cellfeed.journal import JournalReader
    rng = random.Random(chunk)
    journal = Journal(str(tmp_path), segment_bytes=2000)
    reader = JournalReader(str(tmp_path), after=0)
    reader.CHUNK = chunk            # small chunks: records straddle reads and the buffer moves
    written, got = [], []
    for _ in range(60):
        for _ in range(rng.randint(1, 8)):
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 700)))
            written.append((journal.append(payload), payload))
        journal.append(b"not durable yet")          # written by the next commit only
        durable = journal.commit() - 1
        journal.append(b"")                          # pending: beyond what the reader may read
        while True:
            more = reader.read(durable, rng.randint(1, 5))
            if not more:
                break
            got.extend(more)
        journal.commit()
        written.append((durable + 1, b"not durable yet"))
        written.append((durable + 2, b""))
        journal.trim(got[-1][0])                     # the writer trims what was applied
    reader.read(journal.next_lsn - 1, 10_000)
    assert len(journal.segments()) > 1
    assert got == [entry for entry in written if entry[0] <= got[-1][0]]
    reader.close()
    journal.close()


def test_reader_starts_after_the_applied_position_and_refuses_damage(tmp_path):
    from cellfeed.journal import JournalCorrupt, JournalReader
    journal = Journal(str(tmp_path))
    for i in range(10):
        journal.append(b"entry %d" % i)
    journal.commit()
    reader = JournalReader(str(tmp_path), after=6)
    assert reader.read(10, 100) == [(7, b"entry 6"), (8, b"entry 7"), (9, b"entry 8"),
                                    (10, b"entry 9")]
    reader.close()
    path = os.path.join(str(tmp_path), journal.segments()[0].__format__("020d") + ".seg")
    with open(path, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"XXX")
    reader = JournalReader(str(tmp_path), after=0)
    with pytest.raises(JournalCorrupt):
        reader.read(10, 100)
    with pytest.raises(JournalCorrupt):                 # durable, but not there at all
        JournalReader(str(tmp_path), after=0).read(11, 100)
    reader.close()
    journal.close()


def test_a_group_in_three_steps_keeps_a_full_segment_open_until_synced(tmp_path):
    """write() may move the journal to a new segment; the group it wrote ends the old one,
    whose fd must stay open for sync() (in the consumer's fsync thread) and close after."""
    synced = []

    def sync(fd):
        synced.append(os.path.basename(os.readlink("/proc/self/fd/%d" % fd)))
        os.fdatasync(fd)

    j = Journal(str(tmp_path), segment_bytes=200, sync=sync)
    for i in range(10):
        j.append(b"x" * 30)
    ticket = j.write()
    assert ticket.lsn == 10 and ticket.count == 10
    assert len(j.segments()) == 2                  # the next segment is open already
    # The full one is still open, for its fsync.
    assert os.readlink("/proc/self/fd/%d" % ticket.fd).endswith("%020d.seg" % 1)
    del synced[:]
    j.sync(ticket)
    assert synced == ["%020d.seg" % 1]             # the group's own segment was synced
    assert j.synced(ticket, None) == 10
    with pytest.raises(OSError):
        os.fstat(ticket.fd)                        # and closed once synced
    assert j.append(b"y") == 11                    # appends went on meanwhile, in order
    j.commit()
    assert [lsn for lsn, _ in j.read_from(0)] == list(range(1, 12))
    j.close()


def test_appends_while_a_group_is_being_synced_join_the_next_group(tmp_path):
    j = Journal(str(tmp_path))
    j.append(b"a")
    first = j.write()
    j.append(b"b")                                 # arrives during first's fsync
    j.append(b"c")
    j.sync(first)
    assert j.synced(first, None) == 1
    second = j.write()
    assert (second.lsn, second.count) == (3, 2)
    j.sync(second)
    assert j.synced(second, None) == 3
    assert j.write() is None                       # nothing pending
    assert entries(j) == [(1, b"a"), (2, b"b"), (3, b"c")]
    j.close()


def test_a_failed_sync_reported_to_synced_is_fatal(tmp_path):
    j = Journal(str(tmp_path))
    j.append(b"a")
    ticket = j.write()
    with pytest.raises(JournalFailed, match="EIO"):
        j.synced(ticket, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(JournalFailed):
        j.append(b"b")
    with pytest.raises(JournalFailed):
        j.write()
