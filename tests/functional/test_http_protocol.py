"""Malformed, hostile and slow HTTP against the real server (one worker, so "the same worker
keeps serving" is checkable: its pid must not change and it must answer the next client).

Cases live in tests/http_cases/*.http, one request stream each:

    #! 200 400 closed        expected statuses in order, then "closed" or "open"
    # a comment
    GET / HTTP/1.1\\r\\n      escapes as in Python bytes; real newlines are ignored
    X-Big: {{70000*b}}\\r\\n   {{N*TEXT}} repeats TEXT N times (may nest)
"""
from __future__ import annotations

import codecs
import os
import re
import socket
import time

import pytest

from tests.server import REPO, running_server

CASES = os.path.join(REPO, "tests", "http_cases")
HEADER_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 2.0


def load_case(path):
    expect, lines = None, []
    with open(path, encoding="latin-1") as f:
        for line in f.read().splitlines():
            if line.startswith("#!"):
                expect = line[2:].split()
            elif not line.startswith("#"):
                lines.append(line)
    text = "".join(lines)
    repeat = re.compile(r"\{\{(\d+)\*((?:(?!\{\{|\}\}).)*)\}\}", re.S)
    while repeat.search(text):
        text = repeat.sub(lambda m: m.group(2) * int(m.group(1)), text)
    data = codecs.escape_decode(text.encode("latin-1"))[0]
    return data, [int(t) for t in expect if t.isdigit()], expect[-1]


def read_responses(sock, count, timeout=5.0, closed_wait=0.3):
    """Read up to ``count`` responses; return (statuses, closed) where closed means EOF/reset
    (seen within ``closed_wait`` seconds after the last response)."""
    sock.settimeout(timeout)
    buf, statuses = b"", []
    deadline = time.monotonic() + timeout
    while len(statuses) < count and time.monotonic() < deadline:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1")
            interim = head.split()[1].startswith("1")      # 100 Continue has no body
            length = 0 if interim else \
                int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))
            if len(buf) >= head_end + 4 + length:
                statuses.append(int(head.split()[1]))
                buf = buf[head_end + 4 + length:]
                continue
        chunk = _recv(sock)
        if not chunk:
            return statuses, True
        buf += chunk
    return statuses, _closed(sock, closed_wait)


def _recv(sock):
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def _closed(sock, wait=0.3):
    """True when the server closed the connection (EOF or reset within ``wait`` seconds)."""
    if wait <= 0:
        return False
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@pytest.fixture(scope="module", params=["compiled", "pure"])
def srv(request):
    """The same cases against both protocol twins: the compiled one (fastnova/_ext/
    _protocol.pyx, what workers run) and the pure-Python one (FASTNOVA_PURE=1)."""
    env = {"FASTNOVA_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
           "FASTNOVA_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT)}
    if request.param == "pure":
        env["FASTNOVA_PURE"] = "1"
    with running_server(workers=1, demo=30, env=env) as server:
        yield server


@pytest.fixture
def same_worker(srv):
    """The single worker before the test; after it, still the same pid and still serving."""
    before = srv.worker_pids()
    yield before
    assert srv.worker_pids() == before, srv.log()[-2000:]
    status, _, _ = srv.get("/v2.1/servers?limit=1")
    assert status == 200


def connect(srv):
    return socket.create_connection((srv.host, srv.port), timeout=5)


@pytest.mark.parametrize("name", sorted(n[:-5] for n in os.listdir(CASES) if n.endswith(".http")))
def test_case(srv, same_worker, name):
    data, statuses, state = load_case(os.path.join(CASES, name + ".http"))
    with connect(srv) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                       # the server answered and closed before we finished
        got, closed = read_responses(sock, len(statuses) or 1)
    assert got == statuses
    assert closed == (state == "closed")


def test_slow_client_gets_408(srv, same_worker):
    """One byte every 0.2 s: the request is never complete, so 408 after the header timeout."""
    request = b"GET /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: admin:admin\r\n\r\n"
    started = time.monotonic()
    with connect(srv) as sock:
        sock.settimeout(0.2)
        for byte in request[:-4]:
            try:
                sock.sendall(bytes([byte]))
                data = sock.recv(4096)
                break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                data = b""
                break
        assert data.startswith(b"HTTP/1.1 408 "), data
    elapsed = time.monotonic() - started
    # Not before the timeout; the upper bound only says it was the timeout, not the end of the
    # request (~14 s of bytes), so it is loose enough for a starved machine.
    assert HEADER_TIMEOUT <= elapsed < HEADER_TIMEOUT + 8.0


def test_silent_connection_closed(srv, same_worker):
    """Connected and sent nothing: closed (no answer) after the header timeout."""
    with connect(srv) as sock:
        sock.settimeout(HEADER_TIMEOUT + 30)      # a deadline, generous
        started = time.monotonic()
        assert _recv(sock) == b""
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9


def test_idle_keepalive_closed(srv, same_worker):
    with connect(srv) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_responses(sock, 1)[0] == [200]
        started = time.monotonic()
        sock.settimeout(KEEPALIVE_TIMEOUT + 30)   # a deadline, generous
        assert _recv(sock) == b""
        assert time.monotonic() - started >= KEEPALIVE_TIMEOUT * 0.9


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_pipelining_client_that_never_reads(srv, same_worker):
    """8 MB of pipelined detail-page requests (~100 MB of answers), never read: the worker stops
    reading from that client, its memory stays bounded, and other clients are still served."""
    (pid,) = same_worker
    request = (b"GET /v2.1/servers/detail?limit=30 HTTP/1.1\r\nHost: x\r\n"
               b"X-Auth-Token: admin:admin\r\n\r\n")
    before = rss_kb(pid)
    hog = connect(srv)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    sent, blob = 0, request * 1000
    deadline = time.monotonic() + 3.0
    stalled_since = None
    while time.monotonic() < deadline and sent < 8 << 20:
        try:
            sent += hog.send(blob)
            stalled_since = None
        except BlockingIOError:        # the server stopped reading us: that is the point
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.01)
    assert sent < 8 << 20, "the server kept reading a client that reads nothing"
    for _ in range(20):
        assert srv.get("/v2.1/servers?limit=5")[0] == 200
    grown = rss_kb(pid) - before
    assert grown < 64 * 1024, "worker grew by %d kB after %d bytes sent" % (grown, sent)
    hog.close()


def test_expect_100_continue_is_answered_before_the_body_is_sent(srv, same_worker):
    """The client sends the head, waits for 100 Continue, then sends the body (curl's way)."""
    with connect(srv) as sock:
        sock.sendall(b"POST /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: admin:admin\r\n"
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 2\r\n\r\n")
        assert read_responses(sock, 1, closed_wait=0)[0] == [100]
        sock.sendall(b"{}")
        assert read_responses(sock, 1)[0] == [400]        # nova's answer to an empty server


def test_partial_then_complete_request_across_sends(srv, same_worker):
    with connect(srv) as sock:
        for part in (b"GET /v2.1/ser", b"vers?limit=1 HTTP/1.1\r\nHo", b"st: x\r\nX-Auth-Token: ",
                     b"admin:admin\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(0.05)
        assert read_responses(sock, 1)[0] == [200]
