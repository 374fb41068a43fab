"""The metrics process: Prometheus' text format on a port of its own (``--metrics-bind``).

A child of the master like cellfeed and the forwarder (``fastnova: metrics``).  Each scrape sums
the workers' slots of the shared region (fastnova/serve/metrics.py) and reads, at that moment,
what the store and the feed say of themselves: store size and free map space, outbox depth and
casts forwarded, the feed's lag, applied updates and journal depth (cellfeed's status file).
Serving scrapes here keeps the workers' loops and the API's routes free of it.
"""
from __future__ import annotations

import logging
import os
import socket

from fastnova.serve import metrics as M

LOG = logging.getLogger("fastnova.metrics")
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def route_names() -> dict[int, str]:
    from fastnova.api import router
    names = {value: name.lower() for name, value in vars(router).items()
             if name.isupper() and isinstance(value, int) and 0 < value < M.ROUTES}
    names[M.HEALTH_ROUTE] = "healthcheck"
    names[0] = "unrouted"
    return names


def render(area: M.Area, data_dir: str, store=None) -> str:
    out: list[str] = []
    totals = area.totals()
    _requests(out, totals)
    _named(out, totals)
    _family(out, "fastnova_worker_restarts_total", "counter",
            "workers replaced after they died or stopped answering",
            [("", area.header(M.H_RESTARTS))])
    _store(out, data_dir, store)
    _feed(out, data_dir)
    return "".join(out)


def _family(out, name, kind, help_text, samples):
    out.append("# HELP %s %s\n# TYPE %s %s\n" % (name, help_text, name, kind))
    for labels, value in samples:
        out.append("%s%s %s\n" % (name, labels, _num(value)))


def _num(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _requests(out, t):
    names = route_names()
    counts, hist, sums = [], [], []
    for route in range(M.ROUTES):
        row = t[M.REQ_OFF + route * M.NSTATUS:M.REQ_OFF + (route + 1) * M.NSTATUS]
        if not any(row):
            continue
        label = names.get(route, "route_%d" % route)
        for i, n in enumerate(row):
            if n:
                code = M.STATUSES[i] if i < len(M.STATUSES) else "other"
                counts.append(('{route="%s",status="%s"}' % (label, code), n))
        base = M.HIST_OFF + route * (M.BUCKETS + 1)
        running = 0
        for i, bound in enumerate(M.BOUNDS_US + (None,)):
            running += t[base + i]
            le = "+Inf" if bound is None else repr(bound / 1e6)
            hist.append(('_bucket{route="%s",le="%s"}' % (label, le), running))
        hist.append(('_count{route="%s"}' % label, running))
        sums.append(('{route="%s"}' % label, t[M.SUM_OFF + route] / 1e6))
    _family(out, "fastnova_requests_total", "counter", "answered requests by route and status",
            counts)
    out.append("# HELP fastnova_request_duration_seconds time from a request's bytes to its "
               "answer\n# TYPE fastnova_request_duration_seconds histogram\n")
    for labels, value in hist:
        out.append("fastnova_request_duration_seconds%s %s\n" % (labels, _num(value)))
    for labels, value in sums:
        out.append("fastnova_request_duration_seconds_sum%s %s\n" % (labels, _num(value)))


def _named(out, t):
    for i, name in enumerate(M.NAMED):
        _family(out, "fastnova_%s_total" % name, "counter", name.replace("_", " "),
                [("", t[M.NAMED_OFF + i])])


def _store(out, data_dir, store):
    if store is None:
        return
    from fastnova.outbound import outbox
    from fastnova.store import layout as L
    try:
        info, stat = store.env.info(), store.env.stat()
        with store.begin() as txn:
            depth = outbox.depth(txn, store.dbs)
            raw = txn.get(outbox.META_OUTBOX_SEQ, db=store.dbs[L.DB_META])
            servers = txn.stat(store.records)["entries"]
    except Exception as exc:         # a scrape reports what it can
        LOG.warning("metrics: the store could not be read: %s", exc)
        return
    used = (info["last_pgno"] + 1) * stat["psize"]
    _family(out, "fastnova_store_bytes", "gauge", "store pages in use", [("", used)])
    _family(out, "fastnova_store_map_free_bytes", "gauge", "free space left in the store's map",
            [("", max(0, info["map_size"] - used))])
    _family(out, "fastnova_store_servers", "gauge", "servers in the store", [("", servers)])
    _family(out, "fastnova_outbox_depth", "gauge", "casts waiting for the forwarder",
            [("", depth)])
    enqueued = int(raw) if raw else 0
    _family(out, "fastnova_casts_forwarded_total", "counter", "casts the forwarder took off "
            "the outbox", [("", max(0, enqueued - depth))])


def _feed(out, data_dir):
    try:
        from cellfeed import status as feed_status
    except ImportError:
        return
    st = feed_status.read(data_dir)
    if st.state == "absent":
        return
    _family(out, "fastnova_feed_up", "gauge", "1 while the cell feed runs and reports",
            [("", 1 if st.up() else 0)])
    _family(out, "fastnova_feed_lag_seconds", "gauge", "age of the oldest acknowledged update "
            "not applied yet", [("", float(st.lag_seconds))])
    _family(out, "fastnova_feed_updates_applied_total", "counter", "journal entries applied to "
            "the store", [("", st.applied_lsn)])
    _family(out, "fastnova_feed_journal_depth", "gauge", "journaled updates not applied yet",
            [("", st.journal_depth)])


def serve_metrics(sock: socket.socket, area: M.Area, data_dir: str) -> int:
    """The metrics child's loop: one scrape at a time (Prometheus scrapes every few seconds)."""
    from fastnova.store.reader import StoreReader
    store = StoreReader.open(data_dir)
    sock.setblocking(True)
    while True:
        conn, _peer = sock.accept()
        with conn:
            conn.settimeout(5)
            try:
                request = conn.recv(8192)
                path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
                if path.split(b"?")[0] != b"/metrics":
                    body, status = b"see /metrics\n", b"404 Not Found"
                    ctype = b"text/plain"
                else:
                    body, status = render(area, data_dir, store).encode(), b"200 OK"
                    ctype = CONTENT_TYPE
                conn.sendall(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (status, ctype, len(body), body))
            except OSError as exc:
                LOG.debug("metrics: scrape failed: %s", exc)


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def child(sock, area, data_dir):
    """(name, start) for the master's supervised children."""
    os.environ.pop("NOTIFY_SOCKET", None)
    return ("metrics", lambda: serve_metrics(sock, area, data_dir))
