"""The access log and the Prometheus metrics of a running fastnova (fastnova/serve/observe.py,
metrics.py, scrape.py), with the compiled show fast path answering most shows."""
import json
import os
import re
import signal
import urllib.request

import pytest

from tests.server import running_server

LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\d+) INFO fastnova\.access '
                  r'\[(req-[0-9a-f-]{36}) (\S+) (\S+) - - -\] 127\.0\.0\.1 '
                  r'"(\w+) (\S+) HTTP/1\.1" status: (\d{3}) len: (\d+) time: \d+\.\d{7}$')


def _ids(srv):
    status, _, body = srv.get("/v2.1/servers?all_tenants=1")
    assert status == 200
    return [s["id"] for s in json.loads(body)["servers"]]


def _lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_access_log_has_one_line_per_request_in_novas_shape(tmp_path, pure):
    log = str(tmp_path / "access.log")
    env = {"FASTNOVA_PURE": "1"} if pure else {}
    with running_server(workers=2, demo=5, extra_args=("--access-log", log), env=env) as srv:
        ids = _ids(srv)
        sent = [("/v2.1/servers?all_tenants=1", 200, None)]
        for uuid in ids * 3:                     # repeats: the fast path answers most
            status, headers, body = srv.get("/v2.1/servers/" + uuid)
            sent.append(("/v2.1/servers/" + uuid, status, headers["x-openstack-request-id"]))
            assert status == 200 and int(headers["content-length"]) == len(body)
        status, headers, _ = srv.get("/v2.1/servers/" + "0" * 36, token="demo:p1")
        sent.append(("/v2.1/servers/" + "0" * 36, 404, headers["x-openstack-request-id"]))
        srv.wait_for(lambda: len(_lines(log)) >= len(sent), 15, "the access log lines")
        lines = _lines(log)
        assert len(lines) == len(sent)
        parsed = [LINE.match(line) for line in lines]
        assert all(parsed), [l for l, m in zip(lines, parsed) if not m]
        by_rid = {m.group(2): m for m in parsed}
        for path, status, rid in sent[1:]:
            m = by_rid[rid]                      # the response's request id is the line's
            assert (m.group(5), m.group(6), int(m.group(7))) == ("GET", path, status)
        assert by_rid[sent[-1][2]].group(3, 4) == ("demo", "p1")
        assert {m.group(3, 4) for m in parsed if m.group(2) != sent[-1][2]} == {("admin", "admin")}
        assert len({m.group(1) for m in parsed}) == 2     # both workers logged


def _scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_sum_the_workers_and_survive_a_restart(tmp_path):
    with running_server(workers=2, demo=5, extra_args=("--metrics-bind", "127.0.0.1:0")) as srv:
        port = int(srv.wait_for(lambda: re.search(r"metrics on http://127.0.0.1:(\d+)/",
                                                  srv.log()), 10, "metrics").group(1))
        ids = _ids(srv)
        for uuid in ids * 4:
            assert srv.get("/v2.1/servers/" + uuid)[0] == 200
        assert srv.get("/v2.1/servers/" + "0" * 36)[0] == 404
        assert srv.get("/healthcheck", token=None)[0] == 200
        m = _scrape(port)
        show = 'fastnova_requests_total{route="server_show",status="200"}'
        assert m[show] == 20
        assert m['fastnova_requests_total{route="server_show",status="404"}'] == 1
        assert m['fastnova_requests_total{route="servers_index",status="200"}'] == 1
        assert m['fastnova_requests_total{route="healthcheck",status="200"}'] == 1
        assert m['fastnova_request_duration_seconds_count{route="server_show"}'] == 21
        assert m['fastnova_request_duration_seconds_bucket{route="server_show",le="+Inf"}'] == 21
        assert m["fastnova_store_servers"] == 5 and m["fastnova_outbox_depth"] == 0
        assert m["fastnova_store_map_free_bytes"] > 0 and m["fastnova_worker_restarts_total"] == 0

        victim = sorted(srv.worker_pids())[0]
        os.kill(victim, signal.SIGKILL)
        srv.wait_workers(2, exclude={victim}, timeout=30)
        for uuid in ids:
            assert srv.get("/v2.1/servers/" + uuid)[0] == 200
        after = _scrape(port)
        assert after["fastnova_worker_restarts_total"] == 1
        assert after[show] == 25            # the dead worker's counts were kept
