"""What a worker notes of each answered request: counters for /metrics, a line for the access log.

``Recorder`` is the pure twin of fastnova/_ext/_observe.pyx (same arithmetic, same lines); the
protocols call ``record`` after every answer they write, and ``log`` as well when the access log
is on.  Nothing is formatted or written per request: ``log`` keeps the raw parts of the request
in a list, and the worker's tick (about once a second, or when BATCH entries are waiting) turns
them into lines and writes them with one ``write`` (``AccessLog.flush``).

The line is nova-api's (oslo.service's wsgi server, with the request context of oslo.log)::

    2026-12-06 04:31:28.696 32263 INFO fastnova.access [req-... USER PROJECT - - -] 127.0.0.1
    "GET /v2.1/servers/... HTTP/1.1" status: 200 len: 1893 time: 0.0001234

(one line).  ``len`` is the body's length, ``time`` the seconds from the request's bytes to its
answer.
"""
from __future__ import annotations

import logging
import os
import sys
import time

from fastnova.serve import metrics as M

LOG = logging.getLogger("fastnova.access")
BATCH = 256                    # entries waiting before a flush that does not wait for the tick:
                               # formatting ~2.5 us a line, so a flush holds the loop < 1 ms
HEAD_END = b"\r\n\r\n"
RID_HEADER = b"x-openstack-request-id: "


class AccessLog:
    """The worker's buffered access log: raw entries in, lines out on flush."""

    def __init__(self, path: str, identity=None):
        self.path = path
        self.identity = {} if identity is None else identity    # token -> Context (a memo)
        self.fd = 2 if path == "-" else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                                0o640)
        self.entries: list = []
        self.pid = os.getpid()
        self.dropped = 0
        self._second = -1
        self._stamp = ""

    def flush(self) -> int:
        """Write what is waiting as lines; returns how many."""
        entries, self.entries = self.entries, []
        if not entries:
            return 0
        data = "".join(self._line(*e) for e in entries).encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as exc:   # a full disk must not stop the answers: count what is lost
            self.dropped += len(entries)
            print("fastnova: access log %s: %s" % (self.path, exc), file=sys.stderr)
        return len(entries)

    def _line(self, when, peer, method, target, answer_head, body_len, micros, token):
        status = answer_head[9:12].decode("latin-1")
        rid = _request_id(answer_head)
        if isinstance(token, bytes):
            token = token.decode("latin-1")
        ctx = self.identity.get(token) if token is not None else None
        user = getattr(ctx, "user_id", None) or "-"
        project = getattr(ctx, "project_id", None) or "-"
        second = int(when)
        if second != self._second:           # strftime costs more than the rest of a line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return ('%s.%03d %d INFO fastnova.access [%s %s %s - - -] %s "%s %s HTTP/1.1" '
                'status: %s len: %d time: %.7f\n'
                % (self._stamp, int(when * 1000) % 1000, self.pid, rid, user, project, peer,
                   _text(method), _text(target), status, body_len, micros / 1e6))

    def close(self):
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
            self.fd = -1


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _request_id(head: bytes) -> str:
    at = head.find(RID_HEADER)
    if at < 0:
        return "-"
    start = at + len(RID_HEADER)
    end = head.find(b"\r", start)
    return head[start:end].decode("latin-1")


def _now_us() -> int:
    return time.monotonic_ns() // 1000


class Recorder:
    """Per worker: the protocol's counters, the metrics slot and the access log (pure twin)."""

    def __init__(self, slot=None, access: AccessLog | None = None):
        self.connections = 0
        self.requests = 0
        self.slot = slot                     # memoryview of uint64 (fastnova.serve.metrics)
        self.access = access
        self.logging = access is not None

    def now(self) -> int:
        return _now_us()

    def record(self, route: int, answer: bytes, t0: int) -> None:
        self.requests += 1
        slot = self.slot
        if slot is None:
            return
        micros = _now_us() - t0
        route = route if 0 <= route < M.ROUTES else 0
        try:
            status = int(answer[9:12])
        except ValueError:
            status = 0
        slot[M.REQ_OFF + route * M.NSTATUS + M.status_index(status)] += 1
        slot[M.HIST_OFF + route * (M.BUCKETS + 1) + M.bucket_index(micros)] += 1
        slot[M.SUM_OFF + route] += micros

    def log(self, peer, method, target, answer: bytes, t0: int, token) -> None:
        access = self.access
        end = answer.find(HEAD_END)
        head = answer[:end] if end >= 0 else answer[:512]
        body_len = len(answer) - end - 4 if end >= 0 else 0
        access.entries.append((time.time(), peer, method, target, head, body_len,
                               _now_us() - t0, token))
        if len(access.entries) >= BATCH:
            access.flush()

    def tick(self):
        """The worker's periodic tick: write the waiting lines."""
        if self.access is not None:
            self.access.flush()

    def close(self):
        if self.access is not None:
            self.access.close()
