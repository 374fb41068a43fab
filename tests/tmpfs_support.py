"""A small tmpfs for a test (full-disk cases): mounted for the test, unmounted after.

Needs root (mount(8)); tests skip without it.  ``fill(dir)`` writes a file until the file system
refuses (ENOSPC) and returns its path, so removing it frees the space again.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile

import pytest


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


needs_mount = pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def small_tmpfs(size: str = "16m", parent: str | None = None):
    path = tempfile.mkdtemp(prefix="fastnova-tmpfs-", dir=parent)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                   check=True)
    try:
        yield path
    finally:
        # lazy: a process the test could not stop must not leave the mount behind
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


def fill(directory: str) -> str:
    """Fill the file system of ``directory``; the filler's path (remove it to free space)."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # Whatever a page at a time is left too:
    with open(path, "ab", buffering=0) as f:
        with contextlib.suppress(OSError):
            while f.write(b"\0" * 512):
                pass
    return path


def free_bytes(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
