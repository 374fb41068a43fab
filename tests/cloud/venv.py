"""The virtualenvs the real OpenStack services run from, built once per machine and reused.

Keystone, nova, placement and glance come from PyPI.  They must not share fastnova's venv (their
pins would fight fastnova's and the test clients'), so each set of requirements gets a venv of
its own under ``$FASTNOVA_CLOUD_CACHE`` (default ``~/.cache/fastnova/cloud``), named by a hash of
the requirements: a changed pin builds a new one, an unchanged one is reused across test
sessions, worktrees and CI runs on the same machine.  A file lock makes concurrent test sessions
wait for one build instead of installing into the same directory together.

    from tests.cloud.venv import ensure_venv
    bin_dir = ensure_venv("openstack", ["keystone==30.0.0", "gunicorn"])   # Path to .../bin

``python -m tests.cloud.venv NAME REQ...`` builds one from the shell (``.ci/run`` uses it to
build ahead of the tests and print how long it took).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("FASTNOVA_CLOUD_CACHE") or os.path.expanduser("~/.cache/fastnova/cloud")
    return Path(root)


def venv_path(name: str, requirements: list[str]) -> Path:
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    return cache_root() / ("%s-%s" % (name, digest))


def ensure_venv(name: str, requirements: list[str], log=print) -> Path:
    """The ``bin`` directory of a venv holding ``requirements``, built on first use."""
    path = venv_path(name, requirements)
    done = path / ".complete"
    if done.exists():
        return path / "bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another session may be building it now
        if not done.exists():
            _build(path, requirements, log)
            done.write_text("\n".join(requirements) + "\n")
    return path / "bin"


def _build(path: Path, requirements: list[str], log) -> None:
    started = time.monotonic()
    log("cloud: building venv %s (%d requirements)" % (path, len(requirements)))
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["--upgrade", "pip", "setuptools", "wheel"], check=True)
    proc = subprocess.run(pip + requirements, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("cloud: pip install into %s failed:\n%s" % (path, proc.stderr[-4000:]))
    log("cloud: venv %s built in %.0f s" % (path.name, time.monotonic() - started))


# The one venv keystone, nova, placement and glance share in the tests (they co-install at
# these pins), and the clients that drive them.  Change a pin here and every fixture follows.
OPENSTACK_REQUIREMENTS = ["keystone==30.0.0", "nova==34.0.0", "openstack-placement==16.0.0",
                          "glance==33.0.0", "gunicorn", "psycopg2-binary",
                          "python-openstackclient"]


def openstack_bin(log=print) -> Path:
    """The ``bin`` directory of the shared OpenStack venv, built on first use."""
    return ensure_venv("openstack", OPENSTACK_REQUIREMENTS, log=log)


if __name__ == "__main__":
    # python -m tests.cloud.venv openstack      -> the shared OpenStack venv
    # python -m tests.cloud.venv NAME REQ...    -> any other set
    started = time.monotonic()
    if sys.argv[1:] == ["openstack"]:
        where = openstack_bin()
    else:
        where = ensure_venv(sys.argv[1], sys.argv[2:])
    print("%s (ready in %.0f s)" % (where, time.monotonic() - started))
