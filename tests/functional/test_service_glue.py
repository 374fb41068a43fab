"""What a service manager sees: systemd notifications, process titles, a refused taken port."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.server import REPO, running_server


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket collecting what the service sends."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def wait(self, line, count=1, timeout=30.0):
        """Wait until ``line`` has arrived ``count`` times in all; the messages so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(line in m.split("\n") for m in self.messages) >= count:
                return self.messages
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        raise AssertionError("no %r (x%d) in %r" % (line, count, self.messages))


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def test_systemd_hears_ready_reloading_watchdog_and_stopping(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify"))
    env = {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"}
    with running_server(workers=2, demo=5, env=env) as srv:
        first = listener.wait("READY=1")
        ready = next(m for m in first if "READY=1" in m.split("\n"))
        assert "MAINPID=%d" % srv.pid in ready and "2 workers" in ready
        listener.wait("WATCHDOG=1", count=2)
        old = srv.worker_pids()
        os.kill(srv.pid, signal.SIGHUP)
        listener.wait("RELOADING=1")
        listener.wait("READY=1", count=2)
        srv.wait_workers(2, exclude=old)
        assert srv.stop() == 0
    listener.wait("STOPPING=1")


def test_process_titles(tmp_path):
    with running_server(workers=2, demo=5) as srv:
        assert _cmdline(srv.pid).startswith("fastnova: master")
        titles = sorted(_cmdline(pid) for pid in srv.worker_pids())
        assert titles == ["fastnova: worker 0", "fastnova: worker 1"]


@pytest.mark.parametrize("other", ["fastnova", "plain socket"])
def test_a_taken_port_is_refused_with_a_clear_message(tmp_path, other):
    def second(port):
        return subprocess.run(
            [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:%d" % port,
             "--workers", "1", "--data-dir", str(tmp_path / "second")],
            cwd=REPO, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=REPO))
    if other == "fastnova":
        with running_server(workers=1, demo=3) as srv:
            out = second(srv.port)
            status, _, _ = srv.get("/")
            assert status == 200             # the first one still serves alone
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            out = second(sock.getsockname()[1])
    assert out.returncode == 98, out.stderr
    assert "already in use" in out.stderr and "--bind" in out.stderr
    assert not (tmp_path / "second").exists()   # refused before touching anything
