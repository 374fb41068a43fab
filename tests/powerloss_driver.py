"""``cellfeed run`` under a power-loss model of its file layer (tests/integration/test_cellfeed_powerloss.py).

    python -m tests.powerloss_driver LOG_DIR MUTATION -- <cellfeed run arguments>

The real consumer, journal, applier process, store and broker run unchanged, except that:

* ``os.fdatasync`` and ``os.fsync`` (the journal's file layer: it binds them when it is imported)
  record, after the real call returns, what that call made durable: a file's size as it was
  before the call, or a directory's entries.  ``LOG_DIR/synced`` then says what a power cut
  keeps (``tests.integration.test_cellfeed_powerloss.power_cut`` applies it to the files);
* every journal entry is logged with its LSN (``LOG_DIR/entries``), and every (server, version)
  whose delivery is acknowledged to the broker is logged as the ack is sent (``LOG_DIR/acked``).

MUTATION shows the test can fail (the production code path, patched here, nowhere else):
``none``; ``no-fsync`` (Journal.sync does not fsync: the journal's fsync removed); ``ack-first``
(each delivery is acknowledged on arrival, before its journal entry is written).
Logs are appended with one os.write per line: a SIGKILL leaves whole lines.
"""
from __future__ import annotations

import os
import sys

_LOGS: dict = {}


def _log(name: str, line: str) -> None:
    os.write(_LOGS[name], (line + "\n").encode())


def _recording(real):
    def sync(fd: int) -> None:
        path = os.readlink("/proc/self/fd/%d" % fd)
        if os.path.isdir(path):
            entries = sorted(os.listdir(path))
            real(fd)
            _log("synced", "D\t%s\t%s" % (path, "\t".join(entries)))
        else:
            size = os.fstat(fd).st_size      # before: writes racing the call are not covered
            real(fd)
            _log("synced", "F\t%s\t%d" % (path, size))
    return sync


def _pairs(updates) -> str:
    return " ".join("%s:%d" % (u["id"], u["version"]) for u in updates)


def _install(mutation: str) -> None:
    # Before anything of cellfeed is imported: Journal binds os.fdatasync as its default.
    os.fdatasync = _recording(os.fdatasync)
    os.fsync = _recording(os.fsync)
    import pika.channel

    from cellfeed import consumer, contract, journal

    real_append = journal.Journal.append

    def append(self, payload: bytes) -> int:
        lsn = real_append(self, payload)
        _log("entries", "%d %s" % (lsn, _pairs(contract.decode_journal(payload))))
        return lsn
    journal.Journal.append = append

    pending: dict = {}        # (channel id, delivery tag) -> pairs, until acknowledged
    real_ack = pika.channel.Channel.basic_ack

    def basic_ack(self, delivery_tag=0, multiple=False):
        done = [key for key in pending if key[0] == id(self)
                and (key[1] == delivery_tag or (multiple and key[1] <= delivery_tag))]
        for key in sorted(done):
            _log("acked", pending.pop(key))
        return real_ack(self, delivery_tag, multiple)
    pika.channel.Channel.basic_ack = basic_ack

    real_on_message = consumer.FeedConsumer._on_message

    def on_message(self, channel, method, properties, body):
        try:
            pending[(id(channel), method.delivery_tag)] = _pairs(contract.decode(body))
        except contract.ContractError:
            pass
        if mutation == "ack-first":
            channel.basic_ack(method.delivery_tag)
            channel = _NoAck(channel)
        return real_on_message(self, channel, method, properties, body)
    consumer.FeedConsumer._on_message = on_message

    if mutation == "no-fsync":
        journal.Journal.sync = lambda self, ticket: None
    elif mutation not in ("none", "ack-first"):
        raise SystemExit("unknown mutation %r" % mutation)


class _NoAck:
    """The channel, except that the consumer's own (later) acknowledgement is not sent: the
    ack-first mutation sent it already."""

    def __init__(self, channel):
        self._channel = channel

    def basic_ack(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return getattr(self._channel, name)


def main(argv) -> int:
    log_dir, mutation, rest = argv[0], argv[1], argv[argv.index("--") + 1:]
    os.makedirs(log_dir, exist_ok=True)
    for name in ("synced", "entries", "acked"):
        _LOGS[name] = os.open(os.path.join(log_dir, name),
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _install(mutation)
    from cellfeed import cli
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
