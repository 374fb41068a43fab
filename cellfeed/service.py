"""cellfeed as a service: open the store and the journal, replay, consume until told to stop.

``run(options) -> exit code`` is the entry point for ``cellfeed run`` and for the fastnova master,
which forks a process and calls it there (everything fork-sensitive is opened here, after fork).

Exit codes: 0 stopped on request; 70 (EX_SOFTWARE) a validated update could not be applied
(a bug: the feed stops before it rather than skip it); 74 (EX_IOERR) the journal or the store failed, nothing more was
acknowledged; 75 (EX_TEMPFAIL) another cellfeed holds this data dir's journal; 78 (EX_CONFIG) bad
options or an incompatible store.
"""
from __future__ import annotations

import collections
import functools
import gc
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, fields

from pika.adapters.select_connection import IOLoop

from cellfeed import amqp, contract
from cellfeed.applier import Applier, ApplierThread, ApplyError, describe_store_error
from cellfeed.applyproc import ApplierDied, ApplierProcess
from cellfeed.consumer import FeedConsumer, Topology, Tuning
from cellfeed.journal import (DEFAULT_SEGMENT_BYTES, Journal, JournalError, JournalFailed,
                              JournalLocked)
from cellfeed.status import StatusWriter

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_SOFTWARE = 70
EXIT_IOERR = 74
EXIT_LOCKED = 75
EXIT_CONFIG = 78

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_EXCHANGE = "fastnova.cell-updates"
REPLAY_BATCH = 5000
HOUSEKEEPING_SECONDS = 1.0
# The writer's render cache keeps ~100k long-lived objects that the cyclic collector traverses
# again and again at the default thresholds (700, 10, 10): ~15% of an update (measured).  The
# feed's own objects are freed by reference counting; cycles (pika's, exceptions') are still
# collected, only ~70x less often.
GC_THRESHOLDS = (50_000, 20, 20)


def default_queue() -> str:
    """One durable queue per API host, so every host gets every update."""
    return "fastnova.feed." + socket.gethostname()


@dataclass
class Options:
    data_dir: str
    amqp_url: str = DEFAULT_URL
    exchange: str = DEFAULT_EXCHANGE
    queue: str = ""
    prefetch: int = Tuning.prefetch
    batch_size: int = Tuning.batch_size
    batch_interval: float = Tuning.batch_interval
    backoff_max: float = Tuning.backoff_max
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    apply_batch: int = 20000          # updates per store transaction, at most
    # Seconds between store commits, at least (ApplierThread).  A durable LMDB commit is two
    # fdatasyncs; a light feed committed each small group alone.  10 ms cut the applier's CPU
    # at 1,000 updates/s from 26% to 9% of a core, and halved what a reader on another core
    # pays per read for the pages each commit makes new (p50 4.2 -> 4.0 us vs 3.8 idle), for
    # <= 10 ms of lag (p99 5.4 -> 17.1 ms with batch_interval; the target is 50).
    apply_interval: float = 0.01
    # Servers whose rendering a patch can reuse (StoreWriter): ~10 KB each (tracemalloc, the
    # bench's records), so 20,000 hold ~200 MB.
    render_cache: int = 20_000
    # The applier in a process of its own (cellfeed.applyproc), so that the consumer and the
    # store writer use two cores; False keeps it in a thread of this process.
    apply_process: bool = True
    decoder: str = ""                 # "" (contract v1) or "nova" (versioned notifications)
    binding_key: str = "#"            # nova: "versioned_notifications.*" (.info and .error)
    exchange_durable: bool = True     # nova: False unless amqp_durable_queues is set

    @classmethod
    def from_any(cls, obj) -> "Options":
        """Accept an Options, a dict or an argparse Namespace (``amqp`` is read as amqp_url)."""
        if isinstance(obj, cls):
            return obj
        data = dict(obj) if isinstance(obj, dict) else dict(vars(obj))
        if "amqp" in data and data.get("amqp_url") is None:
            data["amqp_url"] = data.pop("amqp")
        known = {f.name for f in fields(cls)}
        opts = cls(**{k: v for k, v in data.items() if k in known and v is not None})
        opts.queue = opts.queue or default_queue()
        return opts

    def journal_dir(self) -> str:
        return os.path.join(self.data_dir, "feed-journal")


def _decoder(name: str):
    if not name:
        return None
    if name == "nova":
        from cellfeed.nova_notifications import decode
        return decode
    raise ValueError("unknown decoder %r" % name)


def run(options) -> int:
    """Run the feed until SIGTERM/SIGINT (0) or a fatal error (non-zero).  Blocking.
    Call it in a process of its own (it tunes the process's garbage collector)."""
    gc.set_threshold(*GC_THRESHOLDS)
    return FeedService(Options.from_any(options)).run()


class FeedService:
    def __init__(self, opts: Options):
        self.opts = opts
        self.writer = self.journal = self.applier = self.thread = self.consumer = None
        self.ioloop = None
        self.store_error: BaseException | None = None
        self.reason = ""                  # why it stopped, for the status file
        self.committed = 0                # last LSN handed to the applier (acknowledged)
        self._waiting: collections.deque = collections.deque()   # (lsn, handed at)
        self.status: StatusWriter | None = None

    def run(self) -> int:
        self.status = StatusWriter(self.opts.data_dir)
        self.status.write("starting", reason="", consuming=False)
        try:
            code = self._run()
        except BaseException as exc:
            self.reason = self.reason or "%s: %s" % (type(exc).__name__, exc)
            self.status.write("failed", reason=self.reason, consuming=False)
            raise
        if code == EXIT_OK:
            self.status.write("stopped", reason="", consuming=False, lag_seconds=0.0)
        else:
            self.status.write("failed", reason=self.reason or "exit status %d" % code,
                              consuming=False, exit_status=code)
        self.status.close()
        return code

    def _fatal(self, code: int, reason: str, level=logging.CRITICAL) -> int:
        self.reason = reason
        LOG.log(level, "cellfeed: %s%s", "FATAL: " if level >= logging.CRITICAL else "", reason)
        return code

    def _run(self) -> int:
        import lmdb
        try:
            self._open()
        except ApplierDied as exc:    # the applier process could not start or replay
            self._close()
            return self._fatal(exc.exit_code(), str(exc))
        except ApplyError as exc:     # replay hit an entry it cannot apply
            return self._fatal(EXIT_SOFTWARE, str(exc))
        except JournalLocked as exc:
            return self._fatal(EXIT_LOCKED, str(exc), logging.ERROR)
        except (JournalError, OSError) as exc:
            return self._fatal(EXIT_IOERR, "cannot open the journal or the store: %s" % exc)
        except lmdb.Error as exc:     # a full disk while opening the store, most often
            return self._fatal(EXIT_IOERR, describe_store_error(exc, self.opts.data_dir))
        except RuntimeError as exc:   # the writer refuses a store of another schema
            return self._fatal(EXIT_CONFIG, str(exc))
        try:
            return self._serve()
        finally:
            self._close()

    # -- start: store, journal, replay --------------------------------------------------------

    def _open(self):
        # Imported here: the store's writer pulls in the views, which the publisher never needs.
        from fastnova.store.writer import StoreWriter
        os.makedirs(self.opts.data_dir, exist_ok=True)
        if self.opts.apply_process:
            # Only to check the schema and read the applied position: the applier process
            # opens the store for writing, and replays.
            writer = StoreWriter.open(self.opts.data_dir)
            try:
                position = Applier(writer).stats.position
            finally:
                writer.close()
            self.journal = Journal(self.opts.journal_dir(), applied=position,
                                   segment_bytes=self.opts.segment_bytes)
            self.thread = self._applier_process(position)
            self.thread.start()
            self.journal.trim(self.thread.position)
            return
        self.writer = StoreWriter.open(self.opts.data_dir, render_cache=self.opts.render_cache)
        self.applier = Applier(self.writer)
        position = self.applier.stats.position
        self.journal = Journal(self.opts.journal_dir(), applied=position,
                               segment_bytes=self.opts.segment_bytes)
        self._replay(position)
        self.journal.trim(self.applier.stats.position)

    def _applier_process(self, position: int) -> ApplierProcess:
        opts = self.opts
        options = {"data_dir": opts.data_dir, "journal_dir": opts.journal_dir(),
                   "render_cache": opts.render_cache, "apply_batch": opts.apply_batch,
                   "apply_interval": opts.apply_interval, "parent": os.getpid(),
                   "log_level": logging.getLogger().getEffectiveLevel()}
        # As many journal entries in flight as the thread's queue held (64 groups).
        return ApplierProcess(options, committed=self.journal.next_lsn - 1, position=position,
                              max_backlog=64 * opts.batch_size)

    def _position(self) -> int:
        if isinstance(self.thread, ApplierProcess):
            return self.thread.position
        return self.applier.stats.position

    def _replay(self, position: int):
        """Apply journaled entries the store has not got yet (acked before a crash)."""
        batch, count = [], 0
        for lsn, payload in self.journal.read_from(position):
            batch.append((lsn, self._decode_journaled(lsn, payload)))
            if len(batch) >= REPLAY_BATCH:
                self.applier.apply(batch)
                count, batch = count + len(batch), []
        if batch:
            self.applier.apply(batch)
            count += len(batch)
        if count:
            LOG.info("cellfeed: replayed %d journal entries after position %d", count, position)

    @staticmethod
    def _decode_journaled(lsn: int, payload: bytes) -> list:
        try:
            return contract.decode_journal(payload)
        except contract.ContractError as exc:
            # It passed when it was received; only a contract change can get here.
            LOG.error("cellfeed: journal entry %d no longer decodes (%s); skipped", lsn, exc)
            return []

    # -- steady state -------------------------------------------------------------------------

    def _serve(self) -> int:
        opts = self.opts
        self.ioloop = IOLoop()
        if self.thread is None:
            self.thread = ApplierThread(self.applier, self._on_store_failure,
                                        max_batch=opts.apply_batch,
                                        min_interval=opts.apply_interval)
            self.thread.start()
        tuning = Tuning(prefetch=opts.prefetch, batch_size=opts.batch_size,
                        batch_interval=opts.batch_interval, backoff_max=opts.backoff_max)
        topology = Topology(exchange=opts.exchange, queue=opts.queue,
                            binding_key=opts.binding_key,
                            exchange_durable=opts.exchange_durable)
        self.committed = self.journal.next_lsn - 1
        self.consumer = FeedConsumer(amqp.parameters(opts.amqp_url), topology, self.journal,
                                     self._handoff, self.ioloop, tuning,
                                     on_stopped=self.ioloop.stop,
                                     decoder=_decoder(opts.decoder))
        restore = self._install_signals()
        self.ioloop.add_callback(self.consumer.start)
        self.ioloop.call_later(HOUSEKEEPING_SECONDS, self._housekeeping)
        self._write_status()
        try:
            self.ioloop.start()
        finally:
            restore()
            self.consumer.close()
        return self._finish()

    def _finish(self) -> int:
        stopped = self.thread.stop(timeout=60)
        fatal = self.consumer.fatal or self.store_error or self.thread.error
        if isinstance(fatal, RuntimeError) and isinstance(self.thread.error, ApplierDied):
            fatal = self.thread.error
        if isinstance(fatal, ApplierDied):
            return self._fatal(fatal.exit_code(), "stopped: %s" % fatal)
        if isinstance(fatal, ApplyError):
            return self._fatal(EXIT_SOFTWARE, "stopped: %s" % fatal)
        if fatal is not None and fatal is self.store_error:    # the applier thread's store
            return self._fatal(EXIT_IOERR, "stopped: %s"
                               % describe_store_error(fatal, self.opts.data_dir))
        if fatal is not None:
            return self._fatal(EXIT_IOERR, "stopped after a durability failure: %s" % fatal)
        if not stopped:
            return self._fatal(EXIT_IOERR, "the applier did not finish within 60 s")
        self.journal.trim(self._position())
        if isinstance(self.thread, ApplierProcess):
            LOG.info("cellfeed: stopped; applied position %d", self._position())
            return EXIT_OK
        stats = self.applier.stats
        LOG.info("cellfeed: stopped; applied position %d (%d updates changed the store, %d "
                 "ignored, in %d store transactions)", stats.position, stats.applied,
                 stats.ignored, stats.batches)
        return EXIT_OK

    def _handoff(self, group) -> bool:
        """A durable, acknowledged group goes to the applier; its hand-over time is kept until
        the store has it (the status file's lag)."""
        self.committed = group[-1][0]
        self._waiting.append((self.committed, time.monotonic()))
        return self.thread.submit(group)

    def _lag(self) -> float:
        position = self._position()
        while self._waiting and self._waiting[0][0] <= position:
            self._waiting.popleft()
        return time.monotonic() - self._waiting[0][1] if self._waiting else 0.0

    def _write_status(self):
        self.status.write("running", journal_lsn=self.committed, applied_lsn=self._position(),
                          lag_seconds=round(self._lag(), 3), consuming=self.consumer.consuming)

    def _on_store_failure(self, exc: BaseException):
        """Called on the applier thread: hand the failure to the I/O loop, which stops."""
        self.store_error = exc
        LOG.critical("cellfeed: FATAL: the store write failed: %s",
                     describe_store_error(exc, self.opts.data_dir))
        self.ioloop.add_callback_threadsafe(functools.partial(self.consumer.abort, exc))

    def _housekeeping(self):
        if isinstance(self.consumer.fatal, JournalFailed):
            return
        if isinstance(self.thread, ApplierProcess) and not self.thread.poll():
            # The applier process died: acknowledge nothing more, stop, exit with its status.
            self.store_error = self.thread.error
            self.consumer.abort(self.thread.error)
            return
        try:
            self.journal.trim(self._position())
        except OSError as exc:
            LOG.warning("cellfeed: cannot trim the journal: %s", exc)
        self._write_status()
        self.ioloop.call_later(HOUSEKEEPING_SECONDS, self._housekeeping)

    def _install_signals(self):
        """SIGTERM/SIGINT only enqueue a graceful stop onto the I/O loop."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(_signum, _frame):
            self.ioloop.add_callback_threadsafe(self.consumer.stop)
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        return lambda: [signal.signal(sig, old) for sig, old in previous.items()]

    def _close(self):
        if isinstance(self.thread, ApplierProcess):
            if not self.thread.stop(timeout=60):
                self.thread.kill()
        # The applier's writer differs from the one opened here once it followed an import.
        writer = self.applier.writer if self.applier is not None else self.writer
        for closer in (self.journal, writer):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # closing after a failure must not mask the exit code
                    LOG.exception("cellfeed: error while closing")
