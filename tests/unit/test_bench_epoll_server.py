"""bench/epoll_server.c, the reference server of bench/epoll_order.py: in both trigger modes it
answers every request of a keep-alive connection, pipelined or split across reads, with its
body file, and it registers its connections as it says (level- or edge-triggered)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from bench import loadgen, procs
from bench.epoll_order import SERVER_SOURCE

pytestmark = pytest.mark.skipif(not shutil.which(os.environ.get("CC", "cc")),
                                reason="needs a C compiler")

BODY = b'{"server": {"id": "abc"}}'


def read_answers(sock, count):
    data = b""
    sock.settimeout(5)
    while data.count(BODY) < count:
        part = sock.recv(65536)
        assert part, "closed after %d answers" % data.count(BODY)
        data += part
    assert data.count(b"HTTP/1.1 200 OK\r\n") == count
    assert data.count(b"Content-Length: %d\r\n" % len(BODY)) == count


def epoll_flags(pid):
    found = []
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
            found += [int(line.split("events:")[1].split()[0], 16)
                      for line in f if line.startswith("tfd:")]
    return found


@pytest.mark.parametrize("mode", ["lt", "et"])
def test_answers_every_request_pipelined_or_split(tmp_path, mode):
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    port = procs.free_port()
    proc = subprocess.Popen([loadgen.build(SERVER_SOURCE, "epoll_server"), str(port), mode,
                             "1000", str(body)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with sock:
            req = b"GET /v2.1/servers/x HTTP/1.1\r\nHost: a\r\n\r\n"
            sock.sendall(req * 50)
            read_answers(sock, 50)
            for piece in (req[:5], req[5:27], req[27:-1], req[-1:]):   # one request, 4 reads
                sock.sendall(piece)
                time.sleep(0.02)
            read_answers(sock, 1)
            flags = epoll_flags(proc.pid)
            # the listening socket (level-triggered) and this connection
            assert len(flags) == 2
            assert sum(bool(f & (1 << 31)) for f in flags) == (1 if mode == "et" else 0)
    finally:
        proc.kill()
        proc.wait()
