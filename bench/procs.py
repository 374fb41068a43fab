"""Child processes of a load run: started pinned to cores, waited for, always cleaned up.

Every process a run starts is registered with a ``Procs`` context; leaving it (normally, on an
exception or on Ctrl-C) terminates them in reverse order, then kills whatever did not exit within
a bounded grace period.  Processes are started in their own session so that a master and its
forked workers go down together (signal to the process group), and nothing else is touched.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

STOP_GRACE = 5.0          # seconds a process gets after TERM before KILL
READY_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port nobody listens on right now (other engineers run servers here too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] + cmd if cpus else cmd


class Procs:
    def __init__(self):
        self.running: list[subprocess.Popen] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False

    def start(self, cmd, cpus=None, log_path=None, cwd=None, env=None) -> subprocess.Popen:
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(pinned(cmd, cpus), stdout=out, stderr=subprocess.STDOUT,
                                    cwd=cwd, env=env, start_new_session=True)
        finally:
            if log_path:
                out.close()
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen):
        if proc in self.running:
            self.running.remove(proc)
        _terminate_group(proc)

    def stop_all(self):
        while self.running:
            _terminate_group(self.running.pop())


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate_group(proc: subprocess.Popen):
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while forked children of its group linger: KILL the group anyway.
    _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        pass


def wait_http(url: str, proc: subprocess.Popen | None = None, headers=None,
              timeout: float = READY_TIMEOUT) -> None:
    """Poll ``url`` until it answers at all (any status), or raise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before answering %s" % (proc.returncode, url))
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError("no answer from %s within %.0f s (%s)" % (url, timeout, last))


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the workers of a fastnova master)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return _children_by_scan(pid)


def _children_by_scan(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    # The command name may hold spaces: the ppid is the 2nd field after ')'.
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(name))
    return out


def memory(pid: int) -> dict:
    """kB figures from /proc/PID/smaps_rollup: PSS splits shared pages (the mmap'd store, the
    interpreter's text) between the processes that map them, so summing PSS counts them once."""
    wanted = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Shared_Clean", "Private_Dirty")
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in wanted:
                    out[key.lower() + "_kb"] = int(rest.split()[0])
    except OSError:
        pass
    return out
