"""The master is fork-clean: importing it (fastnova.serve.master) or the ``fastnova serve`` entry
(fastnova.serve) loads nothing that must only be opened after fork: the store (lmdb), the event
loop (uvloop), the broker client (pika), the database driver (psycopg2).  The worker module, which
needs them, is imported by each worker in the child.  Checked in a fresh interpreter, so what
this test process has imported does not count."""
import subprocess
import sys

import pytest

from tests.server import REPO

AFTER_FORK = ("lmdb", "uvloop", "pika", "psycopg2", "fastnova.serve.worker")


@pytest.mark.parametrize("module", ["fastnova.serve.master", "fastnova.serve"])
def test_importing_the_master_loads_nothing_fork_sensitive(module):
    code = ("import sys, %s\n"
            "print(' '.join(m for m in %r if m in sys.modules))" % (module, AFTER_FORK))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
