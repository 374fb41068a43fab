"""Long work shows progress (issue 19): a tqdm bar with total, rate and ETA on a terminal (a real
pty here), plain lines with the same figures when the output is a pipe or a file."""
from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys

from fastnova.importer.run import import_nova
from fastnova.progress import Progress
from tests.import_support import ENGINES, NovaDeployment
from tests.server import REPO

import pytest


def test_plain_lines_carry_total_rate_and_eta():
    out = io.StringIO()
    p = Progress("demo", total=1000, out=out, every=0, tty=False)
    for done in (100, 400):
        p.update(done)
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 3
    assert re.fullmatch(r"demo: 100/1000 servers \(10%\), [\d,]+/s, \d+s elapsed, ETA \d+s",
                        lines[0]), lines[0]
    assert lines[1].startswith("demo: 400/1000 servers (40%)")
    assert lines[2].startswith("demo: 400/1000 servers (40%)") and lines[2].endswith("(done)")


def test_without_a_total_there_is_no_eta():
    out = io.StringIO()
    p = Progress("reconcile", out=out, every=0, tty=False)
    p.update(7)
    assert re.fullmatch(r"reconcile: 7 servers, [\d,]+/s, \d+s elapsed\n", out.getvalue())


def _run_on_a_pty(args, timeout=120) -> str:
    """Run a fastnova command with a pseudo-terminal as its stdout and stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fastnova.cli", *args], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO, COLUMNS="120"),
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("no output for %ds: %r" % (timeout, b"".join(chunks)[-500:]))
        try:
            chunk = os.read(master, 65536)
        except OSError:           # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(30) == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode(errors="replace")


def _assert_bar(text: str, label: str, total: str):
    # tqdm: "demo: 100%|█████| 20.0k/20.0k [00:01<00:00, 15.2k servers/s]"
    assert "\r" in text, text[-500:]
    bar = re.search(r"%s: 100%%\|.*\| %s/%s \[\d\d:\d\d<\d\d:\d\d, *[\d.]+k? ?servers/s" % (
        label, re.escape(total), re.escape(total)), text)
    assert bar, text[-800:]


def test_demo_on_a_terminal_shows_a_bar(tmp_path):
    text = _run_on_a_pty(["demo", "3000", "--data-dir", str(tmp_path / "d")])
    _assert_bar(text, "demo", "3.00k")


def test_demo_into_a_pipe_writes_plain_lines(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastnova.cli", "demo", "3000",
                           "--data-dir", str(tmp_path / "d")], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "\r" not in err
    assert re.search(r"demo: 3000/3000 servers \(100%\), [\d,]+/s, \d+s elapsed \(done\)", err), err


@pytest.fixture(params=ENGINES)
def nova(request):
    dep = NovaDeployment(engine=request.param)
    yield dep
    dep.drop()


def test_import_nova_progress_on_a_terminal_and_into_a_file(nova, tmp_path):
    for _ in range(5):
        nova.add_instance()
    text = _run_on_a_pty(["import-nova", "--api-db", nova.url("api"), "--cell-db",
                          nova.url("cell1"), "--data-dir", str(tmp_path / "tty")])
    _assert_bar(text, "import-nova", "5.00")
    out = io.StringIO()
    import_nova(nova.url("api"), nova.cell_urls(), str(tmp_path / "plain"), out=out)
    assert "\r" not in out.getvalue()
    assert re.search(r"import-nova: 5/5 servers \(100%\), [\d,]+/s, \d+s elapsed, "
                     r"rss anon \d+ MB \(done\)", out.getvalue()), out.getvalue()
