"""Bounded memory per connection (issue 18, item 1): 1,500 clients that pipeline GETs and never
read their answers must not cost the workers more than 64 MB each.

Each client sends show requests until the server stops reading it (its sends block), then the
test waits until no client can send anything more and the workers are idle, and reads each
worker's RSS from /proc.  Before the fix the protocol parsed the whole of every read after writing
had paused and queued every request in it: the same run grew two workers by ~200 MB each.
"""
from __future__ import annotations

import os
import re
import resource
import socket
import time

import pytest

from tests.server import running_server

CLIENTS = 1500
WORKERS = 2
NEEDED_FDS = CLIENTS + WORKERS * CLIENTS + 512     # this process, the workers, slack


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])          # utime + stime
    return total


@pytest.fixture
def many_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NEEDED_FDS:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, NEEDED_FDS))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, NEEDED_FDS), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open_hogs(srv, count):
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive window: the server's answers back up at once, as for a client that
        # never reads (the kernel's buffers are not the worker's memory).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        s.connect((srv.host, srv.port))
        s.setblocking(False)
        socks.append(s)
    return socks


def _push_until_stalled(socks, blob, pids, deadline):
    """Send pipelined requests on every socket until a whole round sends nothing on any of them
    three times in a row and the workers used no CPU meanwhile.  Returns bytes sent per socket."""
    sent = [0] * len(socks)
    quiet = 0
    ticks = cpu_ticks(pids)
    while quiet < 3:
        assert time.monotonic() < deadline, "the clients never stalled: %d bytes sent" % sum(sent)
        progress = 0
        for i, s in enumerate(socks):
            pos = sent[i] % len(blob)
            try:
                n = s.send(blob[pos:])
            except BlockingIOError:
                continue
            sent[i] += n
            progress += n
        time.sleep(0.1)
        now = cpu_ticks(pids)
        quiet = quiet + 1 if progress == 0 and now == ticks else 0
        ticks = now
    return sent


@pytest.mark.parametrize("edge_io", ["1", "0"], ids=["edge", "uvloop"])
def test_clients_that_pipeline_and_never_read_cost_each_worker_under_64_mb(many_fds, edge_io):
    """Both transports: the edge-triggered one (the default) and uvloop's own."""
    with running_server(workers=WORKERS, demo=30, env={"FASTNOVA_EDGE_IO": edge_io}) as srv:
        pids = sorted(srv.worker_pids())
        status, _, body = srv.get("/v2.1/servers?limit=1&all_tenants=1")
        assert status == 200
        server_id = re.search(rb'"id":\s*"([0-9a-f-]{36})"', body).group(1)
        request = (b"GET /v2.1/servers/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"X-Auth-Token: admin:admin\r\n\r\n" % server_id)
        for _ in range(50):                  # warm both workers up before the baseline
            assert srv.get("/v2.1/servers/%s" % server_id.decode())[0] == 200
        before = {pid: rss_kb(pid) for pid in pids}
        socks = _open_hogs(srv, CLIENTS)
        try:
            try:
                sent = _push_until_stalled(socks, request * 512, pids, time.monotonic() + 240)
            except (AssertionError, OSError):
                print(srv.log()[-3000:])
                raise
            after = {pid: rss_kb(pid) for pid in pids}
            grown = {pid: (after[pid] - before[pid]) // 1024 for pid in pids}
            print("RSS before %s kB, after %s kB, grown %s MB, %d MB sent"
                  % (before, after, grown, sum(sent) >> 20))
            # Every client was read a little (answered), then no more: the server stopped.
            assert min(sent) > len(request)
            assert max(sent) < 8 << 20, "the server kept reading a client that reads nothing"
            for pid in pids:
                assert after[pid] - before[pid] < 64 * 1024, (pid, before, after)
            # The workers still serve everyone else.
            for _ in range(10):
                assert srv.get("/v2.1/servers?limit=1")[0] == 200
        finally:
            for s in socks:
                s.close()
        assert srv.worker_pids() == set(pids), srv.log()[-2000:]


def _accept_queue(port):
    """Connections waiting in the accept queue of the listening socket(s) on port (the rx_queue
    column of a LISTEN line in /proc/net/tcp)."""
    waiting = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                waiting += int(fields[4].split(":")[1], 16)
    return waiting


@pytest.mark.parametrize("edge_io", ["1", "0"], ids=["edge", "uvloop"])
def test_at_its_connection_limit_a_worker_leaves_new_clients_in_the_backlog(edge_io):
    """--max-connections 3: a fourth client is not accepted (it waits in the listening socket's
    queue, as with nova-api's eventlet pool) and is served once one of the three closes."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with running_server(workers=1, demo=0, extra_args=["--max-connections", "3"],
                        env={"FASTNOVA_EDGE_IO": edge_io}) as srv:
        first = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(3)]
        for s in first:
            s.sendall(request)
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        late = socket.create_connection((srv.host, srv.port), timeout=10)
        try:
            late.sendall(request)
            srv.wait_for(lambda: _accept_queue(srv.port) == 1, 10, "the fourth client queued")
            srv.wait_for(lambda: "3 connections, its limit" in srv.log(), 10, "the limit logged")
            late.setblocking(False)
            with pytest.raises(BlockingIOError):
                late.recv(1)
            first.pop().close()
            late.settimeout(10)
            assert late.recv(65536).startswith(b"HTTP/1.1 200 ")
            assert _accept_queue(srv.port) == 0
        finally:
            late.close()
            for s in first:
                s.close()
