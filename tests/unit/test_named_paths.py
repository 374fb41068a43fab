"""Every repository path named in the code's comments and in the docs exists, and every link in
the docs stays inside the repository: a renamed or deleted file cannot leave a stale pointer.

Scanned: *.py, *.pyx and *.md under fastnova/, cellfeed/, docs/ and bench/, and README.md.
A path is a name starting with one of the repository's top folders (``fastnova/api/app.py``,
``tests/unit/test_mapped.py``, ``bench/results/``) or a top-level file; a ``*`` in it is a glob
that must match something, and a name cut short by a placeholder (``load-<utc>.json``) must
start at least one file's name."""
import glob
import os
import re

import pytest

from tests.server import REPO

TOP = ("fastnova", "cellfeed", "tests", "bench", "docs", ".ci")
TOP_FILES = ("README.md", "BENCHMARKS.md", "pyproject.toml", "setup.py")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./*-]*[\w*/]|(?:%s))(?=([^\w./*-]|$))"
                  % ("|".join(re.escape(t) for t in TOP),
                     "|".join(re.escape(f) for f in TOP_FILES)))
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Named but made by a run, not kept in the repository.
OUTPUTS = {"bench/results/micro", "bench/results/commands.jsonl"}
# Look like paths, are not: column titles of bench/report.py's tables (fastnova's figure over
# nginx's, over the target's).
NOT_PATHS = {"fastnova/nginx", "fastnova/target"}


def _scanned():
    out = [os.path.join(REPO, "README.md")]
    for top in ("fastnova", "cellfeed", "docs", "bench"):
        for ext in ("py", "pyx", "md"):
            out.extend(glob.glob(os.path.join(REPO, top, "**", "*." + ext), recursive=True))
    return sorted(out)


def _exists(name: str, cut_short: bool) -> bool:
    path = os.path.join(REPO, name)
    if cut_short:
        return bool(glob.glob(glob.escape(path) + "*"))
    if "*" in name:
        return bool(glob.glob(path, recursive=True))
    return os.path.exists(path)


def _named(text: str):
    for m in PATH.finditer(text):
        name = m.group(1).rstrip(".")
        yield name, m.group(2) in ("<", "{")


@pytest.mark.parametrize("source", _scanned(), ids=lambda p: os.path.relpath(p, REPO))
def test_every_path_named_exists(source):
    with open(source, encoding="utf-8") as f:
        text = f.read()
    missing = sorted({name for name, cut in _named(text)
                      if name not in OUTPUTS | NOT_PATHS and not _exists(name, cut)})
    assert missing == []


@pytest.mark.parametrize("source", [p for p in _scanned() if p.endswith(".md")],
                         ids=lambda p: os.path.relpath(p, REPO))
def test_links_in_the_docs_resolve_inside_the_repository(source):
    with open(source, encoding="utf-8") as f:
        text = f.read()
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:|#", target):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(source), target.split("#")[0]))
        if not path.startswith(REPO + os.sep) or not os.path.exists(path):
            bad.append(target)
    assert bad == []
