"""Generated demo stores, cached outside the repository and keyed by size and store format.

A 1,000,000-server store takes minutes to generate (about 5,000 servers/s), so each one is built
once and reused.  The key includes a hash of the modules that decide the stored bytes (demo data,
views, layout, writer, record): when one of them changes, an old store would serve stale bytes,
so a new one is generated instead.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT_SOURCES = ("fastnova/demo.py", "fastnova/record.py", "fastnova/store/layout.py",
                  "fastnova/store/writer.py", "fastnova/query/row.py", "fastnova/views")
GENERATE_TIMEOUT = 3600.0
COMMIT_FILE = ".bench-commit"     # a snapshot has no .git: this names the commit it holds


def cache_root() -> str:
    return os.environ.get("FASTNOVA_BENCH_CACHE") or "/var/tmp/fastnova-bench"


def _source_files(src: str):
    for rel in FORMAT_SOURCES:
        path = os.path.join(src, rel)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.endswith(".py"):
                    yield os.path.join(path, name)
        elif os.path.exists(path):
            yield path


def format_hash(src: str = REPO) -> str:
    digest = hashlib.sha256()
    found = False
    for path in _source_files(src):
        digest.update(os.path.relpath(path, src).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
            found = True
    if not found:
        raise FileNotFoundError("no fastnova sources under %s" % src)
    return digest.hexdigest()[:12]


def store_dir(count: int, src: str = REPO) -> str:
    return os.path.join(cache_root(), "store-%d-%s" % (count, format_hash(src)))


def ensure_store(count: int, log=print, src: str = REPO) -> str:
    """The directory of a complete demo store of ``count`` servers, generated if missing.

    Generation writes to a temporary directory renamed into place at the end, so an interrupted
    run never leaves a half-filled store that a later run would take for complete.
    """
    final = store_dir(count, src)
    if os.path.isdir(final):
        return final
    os.makedirs(cache_root(), exist_ok=True)
    tmp = "%s.tmp-%d" % (final, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    log("generating a %d-server store in %s (cached for later runs)" % (count, final))
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "fastnova.cli", "demo", str(count),
                        "--data-dir", tmp], cwd=src, check=True, timeout=GENERATE_TIMEOUT,
                       stdout=subprocess.DEVNULL)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("store of %d servers ready in %.0f s" % (count, time.monotonic() - started))
    return final


def snapshot(rev: str, log=print) -> str:
    """A built copy of commit ``rev`` under the cache, so a run measures one fixed commit while
    other engineers keep editing the work tree (a half-applied edit there can break start-up)."""
    commit = subprocess.run(["git", "rev-parse", "--verify", rev + "^{commit}"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.strip()
    final = os.path.join(cache_root(), "src-%s" % commit[:12])
    if os.path.isdir(final):
        return final
    os.makedirs(cache_root(), exist_ok=True)
    tmp = "%s.tmp-%d" % (final, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    log("snapshot of %s in %s (building the extension)" % (commit[:12], final))
    try:
        archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True,
                                 check=True, timeout=120).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True, timeout=120)
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp,
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, COMMIT_FILE), "w") as f:
            f.write(commit + "\n")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
