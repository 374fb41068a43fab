"""The load harness works end to end at tiny scale (1 s runs), so CI catches a broken bench/.

It starts the real thing: a demo store, fastnova pinned with taskset, nginx and the bare server
serving fastnova's bytes, wrk, the worker table, then the report's tables.  Numbers are not
checked (a shared CI core makes them meaningless); only that every part ran and answered.
"""
import json
import os
import shutil

import pytest

from bench import load, report

TOOLS = ("wrk", "nginx", "taskset")


def _have(tool: str) -> bool:
    # nginx lives in /usr/sbin, which is not on every user's PATH.
    return bool(shutil.which(tool)) or os.path.exists("/usr/sbin/" + tool)


pytestmark = pytest.mark.skipif(not all(map(_have, TOOLS)), reason="needs wrk, nginx, taskset")


@pytest.mark.timeout(240)
def test_load_runner_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNOVA_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "result.json"
    assert load.main(["--servers", "50", "--concurrency", "2", "--duration", "1", "--rounds", "2",
                      "--warmup", "0", "--scenarios", "show,detail100,detail100_active",
                      "--worker-table", "1@0", "--worker-scenarios", "show",
                      "--mixed", "--feed-rate", "200", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    servers = {(r["scenario"], r["server"]) for r in res["runs"]}
    for scenario in ("show", "detail100", "detail100_active"):
        for server in ("fastnova", "nginx", "bare"):
            assert (scenario, server) in servers
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in res["runs"])
    assert all(r["rounds"] == 2 for r in res["runs"])
    assert len(res["rounds"]) == 2 * len(res["runs"])           # each server's turn, each round
    fn = next(r for r in res["runs"] if r["server"] == "fastnova")
    assert len(fn["vs_nginx"]["p99_ms"]) == 2 and len(fn["vs_nginx"]["rps"]) == 2
    assert res["workers"] and res["workers"][0]["rps"] > 0
    assert any(m["role"] == "worker" and m.get("pss_kb") for m in res["memory"])
    assert res["machine"]["cores"] >= 1
    mixed = {(r["scenario"], r.get("feed")): r for r in res["mixed"]}
    create = mixed[("create", None)]
    assert create["requests"] > 0 and create["errors"] == 0     # every POST answered 202
    idle, fed = mixed[("show_under_feed", "idle")], mixed[("show_under_feed", "feed 200/s")]
    assert idle["requests"] > 0 and fed["requests"] > 0 and fed["updates_sent"] > 0
    assert idle["errors"] == 0 and fed["errors"] == 0
    assert fed["rounds"] == idle["rounds"] == 2 and len(fed["vs_idle"]["p99_ms"]) == 2
    again = mixed[("show_under_feed", "idle again (A/A)")]      # the noise-floor control
    assert again["rounds"] == 2 and len(again["vs_idle"]["p99_ms"]) == 2
    assert again["updates_sent"] == 0 and again["errors"] == 0
    text = report.generated(res, str(out), [])
    assert "fastnova/nginx" in text and "### Against worker count" in text
    assert "### Writes: POST /servers" in text


@pytest.mark.timeout(180)
def test_mixed_runner_with_loadgen(tmp_path, monkeypatch):
    """bench.mixed alone with --client loadgen: its show turns (idle, fed, idle again) are
    recorded by bench/loadgen.c, and the result is saved where --out says."""
    from bench import mixed
    monkeypatch.setenv("FASTNOVA_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mixed.json"
    assert mixed.main(["--servers", "50", "--concurrency", "2", "--duration", "1",
                       "--rounds", "1", "--feed-rate", "200", "--client", "loadgen",
                       "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["client"] == "loadgen"
    shows = [r for r in res["mixed"] if r["scenario"] == "show_under_feed"]
    assert {r["feed"] for r in shows} == {"idle", "feed 200/s", "idle again (A/A)"}
    for row in shows:
        assert row["client"] == "loadgen" and row["requests"] > 0 and row["errors"] == 0
        assert row["p99_ms"] > 0 and row["corrected_p99_ms"] > 0     # loadgen reports both
    assert next(r for r in shows if r["feed"] == "feed 200/s")["updates_sent"] > 0
