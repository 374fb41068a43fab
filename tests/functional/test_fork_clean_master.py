"""A running master (``fastnova serve``) holds sockets and children, nothing fork-sensitive: its
memory maps no lmdb, uvloop, pika or psycopg2 extension, while its workers map the first two."""
import re

from tests.server import running_server

SENSITIVE = re.compile(r"/(lmdb|uvloop|pika|psycopg2)/")


def _mapped(pid: int) -> set[str]:
    with open("/proc/%d/maps" % pid) as f:
        return {m.group(1) for m in map(SENSITIVE.search, f) if m}


def test_a_serving_master_has_loaded_nothing_fork_sensitive():
    with running_server(workers=1, demo=5) as srv:
        assert _mapped(srv.pid) == set()
        (worker,) = srv.worker_pids()
        assert _mapped(worker) >= {"lmdb", "uvloop"}
