"""Store size, measured side by side: one fastnova per store size, taking turns under wrk.

    python -m bench.sizes --commit HEAD --servers 1000,1000000 --concurrency 1,8,64 \\
        --duration 5 --rounds 3

Issue #2 asks that the 1,000,000-server figures stay within 20% of the 1,000-server ones.  A
load run (bench/load.py) measures the two sizes minutes apart, and on this shared VM the host's
speed moves more than that in minutes (nginx's own req/s, serving the same bytes, moved by 40%
between the two halves of one run).  Here every size has its own fastnova (one worker each, all
on core 0, wrk on core 1), started together, and they take turns for a few seconds each, round
after round, so drift falls on all sizes alike.  The figure is the median over rounds of each
round's large/small ratio.  nginx serving the largest store's answers (the same bytes) takes its
turn too, as the record of how much the host moved.

Each size rotates through its own demo ids (bench/scenarios.py: spread over the whole store).
Results: bench/results/sizes-<utc>.json and a table on stdout.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile

from bench import load, machine, nginx, procs, rounds, scenarios, stores, wrk
from bench.procs import Procs


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--servers", default="1000,1000000", help="store sizes, comma-separated")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per turn")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before each turn")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--wrk-timeout", type=int, default=5)
    p.add_argument("--no-nginx", action="store_true", help="leave nginx's turn out")
    p.add_argument("--src", default=stores.REPO)
    p.add_argument("--commit", default=None, help="run a built snapshot of this commit")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.servers = load._ints(args.servers)
    args.concurrency = load._ints(args.concurrency)
    return args


def ratios(rows: list[dict], small: int, large: int, c: int, key: str) -> list[float]:
    """Per round: the large store's figure over the small one's."""
    return rounds.per_round([r for r in rows if r["concurrency"] == c], key,
                            "fastnova-%d" % large, "fastnova-%d" % small)


def table(out: dict) -> str:
    rows, sizes = out["runs"], out["config"]["servers"]
    small, large = min(sizes), max(sizes)
    servers = ["fastnova-%d" % s for s in sizes] + (["nginx"] if any(
        r["server"] == "nginx" for r in rows) else [])
    lines = ["| c | " + " | ".join("%s req/s (median)" % s for s in servers)
             + " | %d/%d req/s per round | median | p99 ratio per round | median |"
             % (large, small),
             "|---" * (len(servers) + 5) + "|"]
    for c in out["config"]["concurrency"]:
        med = []
        for s in servers:
            vals = [r["rps"] for r in rows if r["server"] == s and r["concurrency"] == c]
            med.append("%.0f" % statistics.median(vals) if vals else "-")
        rps = ratios(rows, small, large, c, "rps")
        p99 = ratios(rows, small, large, c, "p99_ms")
        lines.append("| %d | %s | %s | **%.2f** | %s | %.2f |" % (
            c, " | ".join(med), ", ".join("%.2f" % x for x in rps), statistics.median(rps),
            ", ".join("%.2f" % x for x in p99), statistics.median(p99)))
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out = args.out or os.path.join(load.RESULTS, "sizes-%s.json" % stamp)
    if args.commit:
        args.src = stores.snapshot(args.commit, log=load.log)
    show = scenarios.BY_NAME["show"]
    out = {"schema": 1, "kind": "sizes", "command": "python -m bench.sizes " + " ".join(argv),
           "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine.describe(os.path.abspath(args.src)),
           "config": {k: v for k, v in vars(args).items() if k != "out"}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="fastnova-sizes-") as tmp, Procs() as ps:
        os.chmod(tmp, 0o755)
        targets = {}                      # server name -> (base url, wrk script)
        for size in args.servers:
            data_dir = stores.ensure_store(size, log=load.log, src=args.src)
            sdir = tempfile.mkdtemp(prefix="size-%d-" % size, dir=tmp)
            _, base = load.start_fastnova(ps, data_dir, 1, args.server_cpus, sdir, args.src)
            paths = show.paths("", scenarios.demo_ids(size))
            bodies = load.fetch_bodies(base, paths, scenarios.MEMBER_TOKEN)
            script = wrk.write_script(sdir, "load", paths, {"X-Auth-Token": scenarios.MEMBER_TOKEN})
            targets["fastnova-%d" % size] = (base, script)
            if size == max(args.servers) and not args.no_nginx:
                os.chmod(sdir, 0o755)
                root = os.path.join(sdir, "root")
                nginx.write_tree(root, bodies)
                refs = load.start_references(ps, ["nginx"], root, args.server_cpus, sdir, [])
                load.check_same_bytes(refs, bodies, scenarios.MEMBER_TOKEN)
                targets["nginx"] = (refs["nginx"], script)
        for n in range(args.rounds):
            for c in args.concurrency:
                for name, (base, script) in targets.items():
                    result = load.drive(base, script, args, c)
                    out["runs"].append(dict(round=n, server=name, concurrency=c, **result))
                    load.log("round %d  %-16s c=%-3d %9.0f req/s  p50 %.3f  p99 %.3f ms  "
                             "errors %d" % (n, name, c, result["rps"], result["p50_ms"],
                                            result["p99_ms"], result["errors"]))
                    load.save(out, args.out)
    out["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out["machine"]["loadavg_end"] = machine.loadavg()
    load.save(out, args.out)
    load.log("results: %s" % args.out)
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
