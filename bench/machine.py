"""What a result was measured on, stored with every result file.

The load average is recorded at the start and the end of a run: other work on a shared 2-core VM
moves absolute figures by 30% or more, and this is the one cheap hint of how noisy a run was.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

from bench.stores import COMMIT_FILE, REPO

PACKAGES = ("lmdb", "uvloop", "httptools", "orjson", "pytest-benchmark")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else None


def _git(src, *args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=src, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _implementation(src: str) -> str:
    """compiled or pure, as the fastnova under test will import it (in its own checkout)."""
    code = "from fastnova import _ext; print(_ext.IMPLEMENTATION)"
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "unknown (%s)" % exc
    return out.stdout.strip() or "unknown (%s)" % out.stderr.strip()[-200:]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe(src: str = REPO) -> dict:
    status = _git(src, "status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "nginx": _tool_version(["nginx", "-v"]),
        "wrk": _tool_version(["wrk", "-v"]),
        "git_commit": _git(src, "rev-parse", "HEAD") or _snapshot_commit(src),
        "fastnova_src": src,
        "git_dirty": bool(status),
        "fastnova_ext": _implementation(src),
        "memory_kb": _meminfo_total(),
        "loadavg_start": loadavg(),
    }


def _snapshot_commit(src: str) -> str | None:
    try:
        with open(os.path.join(src, COMMIT_FILE)) as f:
            return f.read().strip()
    except OSError:
        return None


def _meminfo_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return None
