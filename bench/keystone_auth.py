"""What keystone identity costs: show at c=64 with a cached keystone token against the same run's
noauth figure, the cost of a cold token, and how many keystone calls a burst of distinct tokens
makes.

    python -m bench.keystone_auth                      # everything
    python -m bench.keystone_auth --only burst --burst 1000
    python -m bench.keystone_auth --only show --duration 10 --rounds 5

A real keystone (tests/cloud/keystone.py: PyPI keystone 30, PostgreSQL, gunicorn) is started for
the run; fastnova reaches it through bench/keystone_proxy.py, which counts ``GET
/v3/auth/tokens``.  fastnova runs one worker on --server-cpus; wrk runs on --client-cpus.  Show:
the keystone and the noauth fastnova take turns in every round on the same store and server,
the noauth token naming the same project (``USER:PROJECT``), so the difference is identity
alone.  Results: bench/results/keystone-<utc>.json.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import http.client
import json
import os
import statistics
import sys
import tempfile
import time

from bench import procs, wrk
from bench.keystone_proxy import CountingProxy
from bench.procs import Procs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
SERVICE_PASSWORD = "bench-service-secret"


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def call(port: int, method: str, path: str, token: str | None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"OpenStack-API-Version": "compute 2.90"}
        if token:
            headers["X-Auth-Token"] = token
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def write_conf(tmp: str, auth_url: str, www: str, user: str) -> str:
    path = os.path.join(tmp, "fastnova.conf")
    with open(path, "w") as f:
        f.write("[keystone_authtoken]\nwww_authenticate_uri = %s\nauth_url = %s\n"
                "auth_type = password\nusername = %s\npassword = %s\nproject_name = service\n"
                "user_domain_name = Default\nproject_domain_name = Default\n"
                "token_cache_time = 3600\n" % (www, auth_url, user, SERVICE_PASSWORD))
    return path


def start_fastnova(ps: Procs, tmp: str, data: str, cpus: str, extra, name: str):
    port = procs.free_port()
    cmd = [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:%d" % port,
           "--workers", "1", "--data-dir", data, "--log-level", "WARNING", "--demo", "1",
           *extra]
    proc = ps.start(cmd, cpus=cpus, log_path=os.path.join(tmp, name + ".log"), cwd=REPO)
    procs.wait_http("http://127.0.0.1:%d/" % port, proc)
    return proc, port


class Setup:
    """keystone, a project with a member, the service user, and fastnova in front of them."""

    def __init__(self, ps: Procs, tmp: str, args):
        from tests.cloud.keystone import start_keystone
        self.ks = start_keystone(log=log)
        ps_port = int(self.ks.url.split(":")[2].split("/")[0])
        self.proxy = CountingProxy("127.0.0.1", ps_port).__enter__()
        self.project = self.ks.create_project("bench")
        self.ks.create_user("bench-member", "pw", project_id=self.project, role="member")
        self.ks.service_user("bench-fastnova", SERVICE_PASSWORD)
        self._seed = None
        self.conf = write_conf(tmp, self.proxy.url, self.ks.url, "bench-fastnova")
        self.data = os.path.join(tmp, "data")
        self.proc, self.port = start_fastnova(
            ps, tmp, self.data, args.server_cpus,
            ["--auth", "keystone", "--config-file", self.conf], "keystone")

    def token(self) -> str:
        """A distinct member token (from one password token by keystone's token method: no
        password hashing per token)."""
        if self._seed is None:
            self._seed = self.ks.token("bench-member", "pw", project_id=self.project)
        return self.ks.token_from(self._seed, self.project)

    def close(self):
        from tests.cloud.keystone import drop
        self.proxy.__exit__(None, None, None)
        drop(self.ks)


def bench_show(ps: Procs, tmp: str, args, setup: Setup) -> dict:
    token = setup.token()
    status, raw = call(setup.port, "POST", "/v2.1/servers", token, {"server": {
        "name": "bench", "flavorRef": "1", "imageRef": IMAGE, "networks": "none"}})
    if status != 202:
        raise SystemExit("create failed: %d %s" % (status, raw[:300]))
    sid = json.loads(raw)["server"]["id"]
    path = "/v2.1/servers/" + sid
    ps.stop(setup.proc)             # same store, served in turns by the two configurations
    noauth_token = "bench:" + setup.project
    turns = {"keystone": (["--auth", "keystone", "--config-file", setup.conf], token),
             "noauth": (["--auth", "noauth"], noauth_token)}
    out = {name: [] for name in turns}
    for rnd in range(args.rounds):
        for name, (extra, tok) in turns.items():
            proc, port = start_fastnova(ps, tmp, setup.data, args.server_cpus, extra, name)
            base = "http://127.0.0.1:%d" % port
            status, body = call(port, "GET", path, tok)
            if status != 200:
                raise SystemExit("%s show: %d %s" % (name, status, body[:300]))
            script = wrk.write_script(tmp, "show-" + name, [path], {
                "X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.90"})
            wrk.run(base, script, 8, args.warmup, args.client_cpus)
            result = wrk.run(base, script, args.concurrency, args.duration, args.client_cpus)
            out[name].append(result)
            log("round %d %-8s c=%d: %.0f req/s, p99 %s ms" % (
                rnd + 1, name, args.concurrency, result.get("rps", 0), result.get("p99_ms")))
            ps.stop(proc)
    rps = {name: statistics.median(r.get("rps", 0) for r in runs) for name, runs in out.items()}
    ratio = rps["keystone"] / rps["noauth"] if rps["noauth"] else None
    log("show c=%d median req/s: keystone %.0f, noauth %.0f, ratio %.3f"
        % (args.concurrency, rps["keystone"], rps["noauth"], ratio or 0))
    setup.proc, setup.port = start_fastnova(ps, tmp, setup.data, args.server_cpus,
                                            turns["keystone"][0], "keystone")
    return {"runs": out, "median_rps": rps, "ratio_keystone_to_noauth": ratio}


def bench_cold(setup: Setup, count: int) -> dict:
    """Latency of the first request with a fresh token (one keystone round trip) against the
    second request with it (cached), sequential, each token issued beforehand."""
    tokens = [setup.token() for _ in range(count)]
    cold, warm = [], []
    before = setup.proxy.validations
    for tok in tokens:
        for bucket in (cold, warm):
            t0 = time.perf_counter()
            status, _b = call(setup.port, "GET", "/v2.1/servers", tok)
            bucket.append((time.perf_counter() - t0) * 1000)
            assert status == 200, status
    calls = setup.proxy.validations - before
    res = {"tokens": count, "keystone_calls": calls,
           "cold_ms_median": statistics.median(cold), "warm_ms_median": statistics.median(warm),
           "cold_ms_p90": sorted(cold)[int(0.9 * (count - 1))]}
    log("cold token: median %.2f ms (p90 %.2f) vs cached %.2f ms; %d keystone calls for %d "
        "tokens" % (res["cold_ms_median"], res["cold_ms_p90"], res["warm_ms_median"], calls,
                    count))
    return res


def bench_burst(setup: Setup, count: int, repeats: int, concurrency: int) -> dict:
    """``count`` distinct tokens, each sent ``repeats`` times, all at once over
    ``concurrency`` connections: how many validations keystone saw."""
    log("issuing %d tokens" % count)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda _i: setup.token(), range(count)))
    jobs = [tok for tok in tokens for _ in range(repeats)]
    before = setup.proxy.validations
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(
            lambda tok: call(setup.port, "GET", "/v2.1/servers", tok)[0], jobs))
    took = time.monotonic() - t0
    calls = setup.proxy.validations - before
    bad = sum(1 for s in statuses if s != 200)
    res = {"tokens": count, "requests": len(jobs), "keystone_calls": calls,
           "non_200": bad, "seconds": took}
    log("burst: %d distinct tokens x %d = %d requests in %.1f s -> %d keystone calls "
        "(%d not 200)" % (count, repeats, len(jobs), took, calls, bad))
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.keystone_auth",
                                description=__doc__.split("\n")[0])
    p.add_argument("--only", default="show,cold,burst")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cold", type=int, default=50, help="fresh tokens for the cold-token cost")
    p.add_argument("--burst", type=int, default=1000, help="distinct tokens in the burst")
    p.add_argument("--repeats", type=int, default=3, help="requests per token in the burst")
    p.add_argument("--burst-concurrency", type=int, default=64)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    chosen = set(args.only.split(","))
    out = {"started": dt.datetime.now(dt.timezone.utc).isoformat(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-keystone-") as tmp, Procs() as ps:
        setup = Setup(ps, tmp, args)
        try:
            if "show" in chosen:
                out["show"] = bench_show(ps, tmp, args, setup)
            if "cold" in chosen:
                out["cold"] = bench_cold(setup, args.cold)
            if "burst" in chosen:
                out["burst"] = bench_burst(setup, args.burst, args.repeats,
                                           args.burst_concurrency)
        finally:
            setup.close()
    path = args.out or os.path.join(REPO, "bench", "results", "keystone-%s.json"
                                    % dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    log("results: " + path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
