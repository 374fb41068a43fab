"""What epoll's trigger mode does to a closed loop's p99: the experiment behind fastnova/_ext/_edge.pyx.

At concurrency 8 and 64 the bare uvloop + httptools server, which does nothing but look up fixed
bytes, had a p99 above nginx's while it served 1.3-1.5x nginx's requests.  This run puts next
to each other, taking turns round after round under bench/loadgen.c (recorded latencies):

- fastnova, as it serves (its connections in an edge-triggered epoll set);
- fastnova with ``FASTNOVA_EDGE_IO=0`` (uvloop's transports: libuv's level-triggered set);
- nginx and the bare server, on fastnova's answer bytes (as bench.load runs them);
- bench/epoll_server.c, one read and one write per event plus a fixed busy cost per request,
  registered level-triggered (``lt-<ns>``) and edge-triggered (``et-<ns>``): the same program,
  only the trigger mode differs.

    python -m bench.epoll_order [--servers 1000000] [--concurrency 8,64] [--rounds 5]
        [--duration 3] [--cost-ns 2000,3500]

Prints, per concurrency, each server's median req/s, p50, p90, p99 and the median of its
per-round p99 ratios to nginx, and saves everything to bench/results/epoll-order-<utc>.json.
Server on core 0, client on core 1, as bench.load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from bench import load, loadgen, machine, nginx, procs, rounds, scenarios, stores
from bench.procs import Procs

SERVER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "epoll_server.c")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=1000000, help="servers in the demo store")
    p.add_argument("--concurrency", type=load._ints, default=[8, 64])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--cost-ns", type=load._ints, default=[2000, 3500],
                   help="busy work per request of the C server, one pair (lt, et) each")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--out", help="result file (default bench/results/epoll-order-<utc>.json)")
    return p.parse_args(argv)


def start_servers(ps: Procs, args, tmp: str) -> dict[str, str]:
    data = stores.ensure_store(args.servers, log=load.log)
    bases = {}
    _, bases["fastnova"] = load.start_fastnova(ps, data, 1, args.server_cpus, tmp, stores.REPO)
    os.environ["FASTNOVA_EDGE_IO"] = "0"
    try:
        uv_tmp = os.path.join(tmp, "uvloop-io")
        os.makedirs(uv_tmp)
        _, bases["fastnova-uvloop-io"] = load.start_fastnova(ps, data, 1, args.server_cpus,
                                                             uv_tmp, stores.REPO)
    finally:
        del os.environ["FASTNOVA_EDGE_IO"]
    return bases


def main(argv=None) -> int:
    args = parse_args(argv)
    server_bin = loadgen.build(SERVER_SOURCE, "epoll_server")
    ids = scenarios.demo_ids(args.servers)
    token = scenarios.MEMBER_TOKEN
    paths = scenarios.select("show")[0].paths("", ids)
    out = {"kind": "epoll-order", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "args": vars(args), "machine": machine.describe(), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="fastnova-epoll-order-") as tmp, Procs() as ps:
        os.chmod(tmp, 0o755)
        bases = start_servers(ps, args, tmp)
        bodies = load.fetch_bodies(bases["fastnova"], paths, token)
        root = os.path.join(tmp, "root")
        nginx.write_tree(root, bodies)
        bases.update(load.start_references(ps, ["nginx", "bare"], root, args.server_cpus, tmp,
                                           []))
        body_file = os.path.join(root, paths[0].lstrip("/"))
        for cost in args.cost_ns:
            for mode in ("lt", "et"):
                port = procs.free_port()
                name = "%s-%d" % (mode, cost)
                proc = ps.start([server_bin, str(port), mode, str(cost), body_file],
                                cpus=args.server_cpus, log_path=os.path.join(tmp, name + ".log"))
                bases[name] = "http://127.0.0.1:%d" % port
                procs.wait_http(bases[name] + "/", proc)
        paths_file = loadgen.write_paths(tmp, "show", paths)
        headers = {"X-Auth-Token": token}
        for c in args.concurrency:
            cell = []
            for n in range(args.rounds):
                for name, base in bases.items():
                    if n == 0 and args.warmup > 0:
                        loadgen.run(base, paths_file, headers, c, args.warmup, args.client_cpus)
                    result = loadgen.run(base, paths_file, headers, c, args.duration,
                                         args.client_cpus)
                    cell.append(dict(server=name, concurrency=c, round=n, **result))
            out["rounds"].extend(cell)
            print("c=%d  (%d rounds of %.0f s; p99/nginx is the median of per-round ratios)"
                  % (c, args.rounds, args.duration))
            for name in bases:
                mine = [r for r in cell if r["server"] == name]
                med = {k: statistics.median(r[k] for r in mine)
                       for k in ("rps", "p50_ms", "p90_ms", "p99_ms")}
                ratios = rounds.per_round(cell, "p99_ms", name, "nginx")
                print("  %-19s %8.0f req/s  p50 %.3f  p90 %.3f  p99 %.3f ms  p99/nginx %.2fx"
                      "  (%s)" % (name, med["rps"], med["p50_ms"], med["p90_ms"], med["p99_ms"],
                                  statistics.median(ratios),
                                  " ".join("%.2f" % x for x in ratios)), flush=True)
    path = args.out or os.path.join(stores.REPO, "bench", "results", "epoll-order-%s.json"
                                    % time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("saved", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
