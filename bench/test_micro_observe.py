"""The per-request cost of the metrics (issue: < 0.5 us a request) and of the access log entry.

``record`` is what every answered request pays in a worker: the status read from the answer,
the latency from CLOCK_MONOTONIC, three adds to the worker's slot of the shared region
(fastnova/serve/metrics.py).  Compiled (what workers run) and pure (FASTNOVA_PURE=1) side by
side; ``log`` is the access log's per-request part (the lines are made and written by the tick).
"""
import os

import pytest

from fastnova.serve import metrics
from fastnova.serve.observe import AccessLog, Recorder as PureRecorder

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1893\r\n"
          b"x-openstack-request-id: req-6280e7ef-0bf7-446b-a281-a7ab2fa01787\r\n"
          b"x-compute-request-id: req-6280e7ef-0bf7-446b-a281-a7ab2fa01787\r\n"
          b"Date: Sun, 06 Dec 2026 04:37:56 GMT\r\n\r\n" + b"x" * 1893)


def _recorders():
    found = [pytest.param(PureRecorder, id="pure")]
    try:
        from fastnova._ext._observe import Recorder
        found.append(pytest.param(Recorder, id="compiled"))
    except ImportError:
        if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
            raise
    return found


@pytest.mark.parametrize("cls", _recorders())
def test_record(benchmark, cls):
    area = metrics.Area(slots=2)
    rec = cls(area.slot(0))
    t0 = rec.now()
    benchmark(rec.record, 12, ANSWER, t0)
    assert area.totals()[metrics.REQ_OFF + 12 * metrics.NSTATUS] == rec.requests


@pytest.mark.parametrize("cls", _recorders())
def test_log_entry(benchmark, cls, tmp_path):
    access = AccessLog(str(tmp_path / "access.log"))
    rec = cls(None, access)
    t0 = rec.now()
    benchmark(rec.log, "127.0.0.1", b"GET", b"/v2.1/servers/6280e7ef-0bf7-446b-a281-a7ab2fa01787",
              ANSWER, t0, b"admin:admin")
    assert access.flush() > 0


def test_flush_per_line(benchmark, tmp_path):
    """The tick's side: format and write one batch of 1000 lines (divide by 1000)."""
    access = AccessLog(str(tmp_path / "access.log"))
    entry = (1.7e9, "127.0.0.1", b"GET", b"/v2.1/servers/x", ANSWER[:300], 1893, 120,
             "admin:admin")

    def run():
        access.entries = [entry] * 1000
        return access.flush()
    assert benchmark(run) == 1000
