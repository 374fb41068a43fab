"""The store applier in a process of its own, fed from the journal the consumer fsyncs.

``cellfeed run`` is one command; it starts this process and supervises it.  The consumer
(pika, decoding, journal, acks) and the applier (rendering, indexing, LMDB) then run on two
cores instead of sharing one interpreter lock.  Nothing in the durability contract moves:

    consumer: deliveries -> journal -> fsync -> ack -> "c <last durable LSN>" on the pipe
    applier:  journal entries up to that LSN -> one LMDB txn per batch, recording the applied
              position in it -> "a <position>" back (the consumer trims the journal by it)

The applier only reads what the consumer reported durable (cellfeed.journal.JournalReader), and
the store's position is still written in the same transaction as the changes, so after a crash
of either process the journal is replayed from there.  The applier replays what the journal holds
beyond the store's position before it says "r <position>" (ready); the consumer starts consuming
only then.

Lifecycle: EOF on its stdin asks the applier to apply everything reported and exit 0.  It dies
with its parent (PR_SET_PDEATHSIG), and a new one waits for the old one's lock
(``feed-journal/APPLY.LOCK``), so two never write the store for one journal.  If the applier
exits on its own, the consumer stops acknowledging and ``cellfeed run`` exits non-zero with its
status (70: a validated update could not be applied, 74: the store failed, 78: bad store
schema) or 70 for any other end.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time

LOG = logging.getLogger(__name__)

EXIT_OK, EXIT_SOFTWARE, EXIT_IOERR, EXIT_LOCKED, EXIT_CONFIG = 0, 70, 74, 75, 78
PR_SET_PDEATHSIG = 1
LOCK_WAIT = 30.0             # seconds a new applier waits for a dying one's lock
# The applier's objects are freed by reference counting; what survives a batch is mostly the
# render cache (20,000 servers' parts), which every collection of an older generation walks
# again.  Collecting 10x less often than the consumer took ~12-20% off the CPU per update of
# a mixed feed (60,000 updates, 10,000 a transaction, in-process, interleaved runs); cyclic
# garbage (exceptions' tracebacks) just waits longer.
APPLIER_GC_THRESHOLDS = (500_000, 50, 1000)
FULL_COLLECT_SECONDS = 60.0


class Collector:
    """What survives a batch is moved out of the cycle collector's sight (gc.freeze), so
    collections during the next batch walk only that batch's objects, not the whole render
    cache again (-8% CPU per update of a mixed feed, in-process, interleaved: 58.9/58.7/55.2
    -> 53.8/50.8/52.1 us).  Frozen objects are still freed by reference counting; so that
    cyclic garbage frozen by mistake cannot pile up, a full collection over everything runs
    once a minute."""

    def __init__(self, every: float = FULL_COLLECT_SECONDS):
        self.every = every
        self.next_full = time.monotonic() + every

    def after_batch(self):
        now = time.monotonic()
        if now >= self.next_full:
            gc.unfreeze()
            gc.collect()
            self.next_full = now + self.every
        gc.freeze()


class ApplierDied(RuntimeError):
    """The applier process ended while the consumer still needed it."""

    def __init__(self, status: int, reason: str = ""):
        self.status = status
        self.reason = reason          # the applier's own words, when it said why (kind "x")
        super().__init__("the applier process exited with status %d%s"
                         % (status, ": " + reason if reason else ""))

    def exit_code(self) -> int:
        return self.status if self.status in (EXIT_SOFTWARE, EXIT_IOERR, EXIT_LOCKED,
                                              EXIT_CONFIG) else EXIT_SOFTWARE


# -- the consumer's side --------------------------------------------------------------------

class ApplierProcess:
    """Starts and talks to the applier process; the interface of cellfeed.applier's
    ApplierThread (submit durable groups, stop), plus ``position`` (applied LSN)."""

    def __init__(self, options: dict, committed: int, position: int, max_backlog: int):
        self.options = options
        self.committed = committed          # last LSN reported to the applier
        self.position = position            # last LSN the applier reported applied
        self.max_backlog = max_backlog      # journal entries reported but not applied, at most
        self.error: ApplierDied | None = None
        self.proc: subprocess.Popen | None = None
        self._report_fd = -1
        self._partial = b""
        self.reason = ""

    def start(self):
        """Start the applier and wait until it has replayed the journal (it says ready)."""
        read_fd, write_fd = os.pipe()
        # The same cellfeed as this process's, wherever the current directory is.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cellfeed.applyproc",
                 json.dumps(dict(self.options, report_fd=write_fd))],
                stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env)
        finally:
            os.close(write_fd)
        self._report_fd = read_fd
        self._send(self.committed)
        while True:
            kind, value = self._read_line(None)
            if kind is None:
                raise self._died()
            if kind == b"r":
                self.position = value
                return

    def submit(self, entries) -> bool:
        """The group up to entries[-1] is durable: tell the applier.  Waits while the applier
        is more than max_backlog entries behind; False once it has died."""
        if self.error is not None:
            return False
        self.committed = entries[-1][0]
        if not self._send(self.committed):
            return False
        self.poll()
        while self.error is None and self.committed - self.position > self.max_backlog:
            self._drain(0.2)
        return self.error is None

    def poll(self) -> bool:
        """Read the applier's reports without waiting; False if it has died."""
        if self.error is None:
            self._drain(0)
        return self.error is None

    def stop(self, timeout: float | None = None) -> bool:
        """Let the applier apply everything reported, then end; True if it exited."""
        if self.proc is None or self._report_fd < 0:
            return True
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            kind, _ = self._read_line(left)
            if kind is None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        try:
            status = self.proc.wait(None if deadline is None
                                    else max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        if status != 0 and self.error is None:
            self.error = ApplierDied(status, self.reason)
        os.close(self._report_fd)
        self._report_fd = -1
        return True

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _send(self, lsn: int) -> bool:
        try:
            self.proc.stdin.write(b"c %d\n" % lsn)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            self.error = self._died()
            return False

    def _drain(self, wait: float):
        kind, _ = self._read_line(wait)
        while kind is not None and kind != b"":
            kind, _ = self._read_line(0)
        if kind is None:
            self.error = self._died()

    def _read_line(self, wait: float | None):
        """One report: (kind, lsn); (b"", 0) if none within ``wait``; (None, 0) at EOF.
        Applied positions are recorded as they are read."""
        while b"\n" not in self._partial:
            ready, _, _ = select.select([self._report_fd], [], [], wait)
            if not ready:
                return b"", 0
            chunk = os.read(self._report_fd, 65536)
            if not chunk:
                return None, 0
            self._partial += chunk
            wait = 0
        line, self._partial = self._partial.split(b"\n", 1)
        kind, value = line.split(b" ", 1)
        if kind == b"x":
            self.reason = value.decode("utf-8", "replace")
            return kind, 0
        if kind in (b"a", b"r"):
            self.position = max(self.position, int(value))
        return kind, int(value)

    def _died(self) -> ApplierDied:
        try:
            status = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        return ApplierDied(status, self.reason)


# -- the applier's side ---------------------------------------------------------------------

def _die_with_parent(parent: int):
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):      # not Linux: the stdin EOF still ends it
        pass
    if os.getppid() != parent:             # the parent died before prctl took effect
        os._exit(EXIT_SOFTWARE)


def _lock(journal_dir: str) -> int:
    os.makedirs(journal_dir, exist_ok=True)
    fd = os.open(os.path.join(journal_dir, "APPLY.LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Commands:
    """The consumer's reports on stdin: the last durable LSN, and EOF (stop)."""

    def __init__(self):
        self.committed = 0
        self.heard = False          # the first report (the journal's end at start) came
        self.eof = False
        self._partial = b""

    def read(self, wait: float | None) -> None:
        ready, _, _ = select.select([0], [], [], wait)
        while ready:
            try:
                chunk = os.read(0, 65536)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    raise
                return
            if not chunk:
                self.eof = True
                return
            self._partial += chunk
            lines = self._partial.split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                self.committed = max(self.committed, int(line.split(b" ")[1]))
                self.heard = True
            ready, _, _ = select.select([0], [], [], 0)


def _report(fd: int, kind: bytes, position: int):
    os.write(fd, b"%s %d\n" % (kind, position))


def _fatal(fd: int, reason: str) -> None:
    """Log why the applier stops and tell the consumer (for its log and its status file)."""
    LOG.critical("cellfeed: FATAL: %s", reason)
    try:
        os.write(fd, b"x %s\n" % reason.replace("\n", " ").encode("utf-8", "replace"))
    except OSError:
        pass


def serve(options: dict) -> int:
    from cellfeed import contract
    from cellfeed.applier import Applier, ApplyError, describe_store_error
    from cellfeed.journal import JournalError, JournalReader
    from cellfeed.service import REPLAY_BATCH
    from fastnova.store.writer import StoreWriter

    gc.set_threshold(*APPLIER_GC_THRESHOLDS)
    journal_dir, report_fd = options["journal_dir"], options["report_fd"]
    try:
        _lock(journal_dir)
    except BlockingIOError:
        LOG.error("cellfeed: another applier holds %s/APPLY.LOCK", journal_dir)
        return EXIT_LOCKED
    try:
        writer = StoreWriter.open(options["data_dir"], render_cache=options["render_cache"])
        applier = Applier(writer)
    except RuntimeError as exc:
        _fatal(report_fd, str(exc))
        return EXIT_CONFIG
    except Exception as exc:     # lmdb.Error or OSError: a full disk, most often
        _fatal(report_fd, describe_store_error(exc, options["data_dir"]))
        return EXIT_IOERR
    reader = JournalReader(journal_dir, applier.stats.position)
    commands = Commands()
    collector = Collector()
    max_batch, min_interval = options["apply_batch"], options["apply_interval"]

    def decode(lsn, payload):
        try:
            return contract.decode_journal(payload)
        except contract.ContractError as exc:
            LOG.error("cellfeed: journal entry %d no longer decodes (%s); skipped", lsn, exc)
            return []

    def batch(limit_updates: int, upto: int) -> list:
        entries, updates = [], 0
        while updates < limit_updates:
            got = reader.read(upto, 256)
            if not got:
                break
            for lsn, payload in got:
                decoded = decode(lsn, payload)
                entries.append((lsn, decoded))
                updates += len(decoded)
        return entries

    try:
        while not commands.heard and not commands.eof:
            commands.read(None)
        start, replayed = applier.stats.position, 0
        while True:
            entries = batch(REPLAY_BATCH, commands.committed)
            if not entries:
                break
            applier.apply(entries)
            collector.after_batch()
            replayed += len(entries)
        if replayed:
            LOG.info("cellfeed: replayed %d journal entries after position %d", replayed, start)
        _report(report_fd, b"r", applier.stats.position)
        last_commit = 0.0
        while True:
            behind = commands.committed > applier.stats.position
            if not behind:
                if commands.eof:
                    break
                commands.read(None)
                continue
            wait = last_commit + min_interval - time.monotonic()
            if wait > 0 and not commands.eof:
                commands.read(wait)
                continue
            commands.read(0)
            entries = batch(max_batch, commands.committed)
            if not entries:
                raise JournalError("journal entry %d is reported durable but cannot be read"
                                   % (applier.stats.position + 1))
            applier.apply(entries)
            last_commit = time.monotonic()
            _report(report_fd, b"a", applier.stats.position)
            collector.after_batch()
    except ApplyError as exc:
        _fatal(report_fd, str(exc))
        return EXIT_SOFTWARE
    except JournalError as exc:
        _fatal(report_fd, "journal: %s" % exc)
        return EXIT_IOERR
    except Exception as exc:   # the store failed: nothing more is applied
        _fatal(report_fd, describe_store_error(exc, options["data_dir"]))
        return EXIT_IOERR
    finally:
        reader.close()
    stats = applier.stats
    LOG.info("cellfeed: applier stopped; applied position %d (%d updates changed the store, %d "
             "ignored, in %d store transactions)", stats.position, stats.applied, stats.ignored,
             stats.batches)
    applier.writer.close()
    return EXIT_OK


def main(argv=None) -> int:
    options = json.loads((argv or sys.argv[1:])[0])
    logging.basicConfig(level=options.get("log_level", "INFO"),
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    _die_with_parent(options["parent"])
    # The consumer's SIGTERM/SIGINT stop it, and it closes our stdin: that is our stop.  A
    # terminal's Ctrl-C reaches the whole process group, so it is ignored here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return serve(options)


if __name__ == "__main__":
    sys.exit(main())
