"""What a service manager sees of fastnova: systemd notifications, process titles, a taken port.

systemd (``Type=notify``, docs/fastnova.service) learns from the master that the workers serve
(``READY=1``), that a reload started and ended (``RELOADING=1`` then ``READY=1``), that it stops
(``STOPPING=1``), and that it is alive (``WATCHDOG=1`` every half ``WATCHDOG_USEC``).  The
messages are datagrams to ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace),
as sd_notify(3) sends them; without the variable nothing is sent.  Master-side only: no import
here may load lmdb, uvloop, pika or psycopg2.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import time

LOG = logging.getLogger("fastnova.master")


class Notifier:
    """sd_notify(3) for the master: one datagram per state change, watchdog pings on tick."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.address = environ.get("NOTIFY_SOCKET") or None
        if self.address and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]
        usec = environ.get("WATCHDOG_USEC", "")
        wpid = environ.get("WATCHDOG_PID", "")
        ours = not wpid or wpid == str(os.getpid())
        self.watchdog = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and ours else None
        self.last_ping = 0.0
        self.sock = None
        if self.address:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        # The children must not talk to systemd as if they were the service.
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            environ.pop(name, None)

    def send(self, *lines: str) -> bool:
        if self.sock is None:
            return False
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:     # systemd gone or not listening: serving matters more
            LOG.debug("sd_notify %s failed: %s", lines, exc)
            return False

    def ready(self, workers: int):
        self.send("READY=1", "STATUS=serving with %d workers" % workers,
                  "MAINPID=%d" % os.getpid())

    def reloading(self):
        self.send("RELOADING=1", "STATUS=reloading: a new generation of workers starts",
                  "MONOTONIC_USEC=%d" % (time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))

    def stopping(self):
        self.send("STOPPING=1", "STATUS=stopping")

    def tick(self):
        """A watchdog ping when one is due (the master's loop calls this every TICK)."""
        if self.watchdog is None:
            return
        now = time.monotonic()
        if now - self.last_ping >= self.watchdog:
            self.last_ping = now
            self.send("WATCHDOG=1")

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def set_title(title: str) -> None:
    """``fastnova: <title>`` in ps/top (setproctitle rewrites argv; comm gets its first 15
    bytes too)."""
    try:
        import setproctitle
    except ImportError:        # not installed: a title is a comfort, not a requirement
        return
    setproctitle.setproctitle("fastnova: " + title)


class PortTaken(Exception):
    pass


def refuse_taken_port(host: str, port: int) -> None:
    """Raise PortTaken when something already listens on host:port.

    The listeners use SO_REUSEPORT, so the kernel would let a second fastnova (of the same user)
    join the group and split the traffic between two different stores.  A plain bind, without
    SO_REUSEPORT, fails while any socket listens there: try that first.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT is fine
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken("%s:%d is already in use: another fastnova (or another server) "
                            "listens there. Stop it, or choose another --bind."
                            % (host, port)) from None
        raise
    finally:
        probe.close()
