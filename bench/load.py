"""Load runs: fastnova side by side with nginx and a bare uvloop server, in the same run.

    python -m bench.load --servers 1000,1000000 --concurrency 1,8,64 --duration 10

For each store size: generate (or reuse) the demo store, start fastnova with one worker pinned
to core 0, and for every scenario fetch fastnova's answers, give the same bytes to nginx (one
worker, core 0) and to bench/bare_server.py (core 0), then drive each with wrk pinned to core 1,
one after the other at every concurrency.  Then the operator's tables: throughput and p99 against
the worker count, and memory per worker as PSS.  ``--target URL`` adds the same read scenarios
against any nova-compatible endpoint.  Results: bench/results/load-<time>.json (bench/report.py
turns them into BENCHMARKS.md's tables and plots).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import urllib.parse

from bench import loadgen, machine, nginx, procs, rounds, scenarios, stores, wrk
from bench.procs import Procs

RESULTS = os.path.join(stores.REPO, "bench", "results")
REFERENCES = ("nginx", "bare")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    p.add_argument("--servers", type=_ints, default=[1000, 1000000],
                   help="store sizes, comma-separated (default 1000,1000000)")
    p.add_argument("--concurrency", type=_ints, default=[1, 8, 64])
    p.add_argument("--duration", type=float, default=4.0,
                   help="seconds per measurement (one server, one round)")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds per cell, the servers taking turns in each (bench/rounds.py)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unrecorded load first")
    p.add_argument("--scenarios", default="all",
                   help="comma-separated, from: %s" % ", ".join(scenarios.BY_NAME))
    p.add_argument("--references", default="nginx,bare",
                   help="reference servers in the same run (nginx,bare or none)")
    p.add_argument("--server-cpus", default="0", help="cores of fastnova and the references")
    p.add_argument("--client-cpus", default="1", help="cores of wrk")
    p.add_argument("--worker-table", default="auto",
                   help="K@CPUS entries, e.g. 1@0,2@0,2@0-1; 'auto' derives them from the "
                        "core count; 'none' skips the table")
    p.add_argument("--worker-scenarios", default="show,detail100")
    p.add_argument("--worker-concurrency", type=int, default=64)
    p.add_argument("--target", default=None, metavar="URL",
                   help="also run the read scenarios against this nova-compatible endpoint")
    p.add_argument("--target-token", default=None,
                   help="X-Auth-Token for the target's member scenarios")
    p.add_argument("--target-admin-token", default=None,
                   help="X-Auth-Token for the target's admin scenarios (default: --target-token)")
    p.add_argument("--client", choices=("wrk", "loadgen"), default="wrk",
                   help="load generator of the side-by-side turns: wrk (reports only "
                        "coordinated-omission-corrected latency) or bench/loadgen.c (the "
                        "recorded latencies, and wrk's correction of them beside; "
                        "bench/loadgen.py says why)")
    p.add_argument("--wrk-timeout", type=int, default=5, help="seconds before wrk counts a timeout")
    p.add_argument("--out", default=None, help="result file (default bench/results/load-<utc>.json)")
    p.add_argument("--src", default=stores.REPO,
                   help="fastnova checkout to run (default: this repository's work tree); e.g. "
                        "a `git worktree` of a fixed commit while others edit the tree")
    p.add_argument("--mixed", action="store_true",
                   help="also run the scenarios that write: POST /servers, and show while the "
                        "feed applies cell updates (bench/mixed.py; needs RabbitMQ)")
    p.add_argument("--feed-rate", type=int, default=1000, metavar="N",
                   help="cell updates per second during show_under_feed (default 1000)")
    p.add_argument("--feed-nice", type=int, default=None, metavar="N",
                   help="serve --feed-nice during show_under_feed (default: serve's own)")
    p.add_argument("--access-log-compare", action="store_true",
                   help="also run a second fastnova writing its access log to a file, as server "
                        "'fastnova+log', taking turns with the others (e.g. --scenarios show "
                        "--concurrency 64: the target is >= 0.95x of 'fastnova')")
    p.add_argument("--commit", default=None, metavar="REV",
                   help="run a built snapshot of this commit (git archive, cached) instead")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print("[bench] %s" % msg, file=sys.stderr, flush=True)


# -- fastnova --------------------------------------------------------------------------------


def start_fastnova(ps: Procs, store: str, workers: int, cpus: str, tmp: str, src: str,
                   extra=(), name="fastnova"):
    port = procs.free_port()
    cmd = [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:%d" % port,
           "--workers", str(workers), "--data-dir", store, "--log-level", "WARNING", *extra]
    proc = ps.start(cmd, cpus=cpus, log_path=os.path.join(tmp, name + ".log"), cwd=src)
    base = "http://127.0.0.1:%d" % port
    try:
        procs.wait_http(base + "/", proc)
        _wait_workers(proc.pid, workers)
    except RuntimeError:
        log("fastnova log:\n" + _tail(os.path.join(tmp, name + ".log")))
        raise
    return proc, base


def _wait_workers(master: int, count: int, timeout: float = 30.0) -> None:
    # taskset execs python in place, so the Popen pid is the master itself.
    deadline = time.monotonic() + timeout
    while len(procs.children(master)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("fastnova did not start %d workers in %.0f s" % (count, timeout))
        time.sleep(0.05)


def _tail(path: str, size: int = 3000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return "(no log)"


def memory_rows(master: int, store: int, workers: int, cpus: str, after: str) -> list[dict]:
    """PSS of the master and each worker, sampled right after load (``after`` says which)."""
    common = dict(store=store, workers=workers, server_cpus=cpus, after=after)
    rows = [dict(role="master", pid=master, **common, **procs.memory(master))]
    for pid in procs.children(master):
        rows.append(dict(role="worker", pid=pid, **common, **procs.memory(pid)))
    return rows


# -- one scenario ----------------------------------------------------------------------------


def token_for(scenario, admin_token: str, member_token: str) -> str:
    return admin_token if scenario.admin else member_token


def fetch_bodies(base: str, paths: list[str], token: str) -> dict[str, bytes]:
    bodies = {}
    for path in paths:
        status, ctype, body = scenarios.fetch(base + path, token)
        if status != 200:
            raise RuntimeError("%s answered %d: %r" % (path, status, body[:300]))
        if not ctype.startswith("application/json"):
            raise RuntimeError("%s answered content-type %r" % (path, ctype))
        bodies[path] = body
    return bodies


def start_references(ps: Procs, names, root: str, cpus: str, tmp: str, started: list):
    bases = {}
    for name in names:
        port = procs.free_port()
        if name == "nginx":
            conf_dir = tempfile.mkdtemp(prefix="nginx-", dir=tmp)
            cmd = nginx.command(nginx.write_config(conf_dir, root, port))
        else:
            cmd = [sys.executable, "-m", "bench.bare_server", "--bind",
                   "127.0.0.1:%d" % port, "--root", root]
        proc = ps.start(cmd, cpus=cpus, log_path=os.path.join(tmp, name + ".log"),
                        cwd=stores.REPO)
        started.append(proc)
        bases[name] = "http://127.0.0.1:%d" % port
        procs.wait_http(bases[name] + "/", proc)
    return bases


def check_same_bytes(bases: dict, bodies: dict[str, bytes], token: str) -> None:
    """Every reference must answer the first path with exactly fastnova's bytes, or the
    comparison is void (a 403 from a permissions slip is fast, and wrong)."""
    path, expected = next(iter(bodies.items()))
    for name, base in bases.items():
        status, ctype, body = scenarios.fetch(base + path, token)
        if status != 200 or body != expected or not ctype.startswith("application/json"):
            raise RuntimeError("%s does not serve fastnova's bytes for %s (status %d, %s, "
                               "%d vs %d bytes)" % (name, path, status, ctype, len(body),
                                                   len(expected)))


def drive(base: str, script: str, args, concurrency: int, warm: bool = True,
          client: tuple | None = None) -> dict:
    """One measured turn (after an unrecorded warm-up with wrk).  ``client`` is
    (paths file, headers) when ``--client loadgen`` drives the turn instead of wrk."""
    if warm and args.warmup > 0:
        wrk.run(base, script, min(concurrency, 8), args.warmup, args.client_cpus,
                args.wrk_timeout)
    if client is not None:
        return loadgen.run(base, client[0], client[1], concurrency, args.duration,
                           args.client_cpus)
    return wrk.run(base, script, concurrency, args.duration, args.client_cpus, args.wrk_timeout)


def run_scenario(ps: Procs, args, tmp: str, store: int, scenario, fastnova: str,
                 ids: list[str], more: dict | None = None) -> tuple[dict, list[dict]]:
    token = token_for(scenario, scenarios.ADMIN_TOKEN, scenarios.MEMBER_TOKEN)
    paths = scenario.paths("", ids)
    bodies = fetch_bodies(fastnova, paths, token)
    applied, note = scenarios.check_filter(scenario, next(iter(bodies.values())))
    info = {"path": scenario.path, "token": "admin" if scenario.admin else "member",
            "distinct_paths": len(paths), "filter_applied": applied, "note": note,
            "body_bytes": round(sum(map(len, bodies.values())) / len(bodies))}
    sdir = tempfile.mkdtemp(prefix="%s-%d-" % (scenario.name, store), dir=tmp)
    os.chmod(sdir, 0o755)     # mkdtemp makes 0700; nginx's unprivileged worker must get in
    root = os.path.join(sdir, "root")
    nginx.write_tree(root, bodies)
    script = wrk.write_script(sdir, "load", paths, {"X-Auth-Token": token})
    client = None
    if args.client == "loadgen":
        client = (loadgen.write_paths(sdir, "load", paths), {"X-Auth-Token": token})
    started = []
    try:
        refs = start_references(ps, _reference_names(args), root, args.server_cpus, sdir,
                                started)
        check_same_bytes(refs, bodies, token)
        rows = _measure_all(args, script, dict(fastnova=fastnova, **(more or {}), **refs),
                            scenario, store, note, client)
    finally:
        for proc in started:
            ps.stop(proc)
    return info, rows


def _reference_names(args) -> list[str]:
    return [n for n in args.references.split(",") if n in REFERENCES]


def _measure_all(args, script, bases: dict, scenario, store, note,
                 client: tuple | None = None) -> tuple[list, list]:
    """Every concurrency in rounds; in each round the servers take turns (bench/rounds.py says
    why).  Returns (one combined row per server and concurrency, the rounds themselves)."""
    combined, all_rounds = [], []
    for c in args.concurrency:
        cell = []
        for n in range(args.rounds):
            for server, base in bases.items():
                result = drive(base, script, args, c, warm=(n == 0), client=client)
                cell.append(dict(store=store, scenario=scenario.name, server=server,
                                 workers=1, concurrency=c, note=note, round=n, **result))
                corrected = result.get("corrected_p99_ms")
                log("%-8d %-17s %-8s c=%-3d r%d %9.0f req/s  p50 %.3f  p99 %.3f ms%s  errors %d"
                    % (store, scenario.name, server, c, n, result["rps"], result["p50_ms"],
                       result["p99_ms"], "" if corrected is None else
                       " (corrected %.3f)" % corrected, result["errors"]))
        all_rounds.extend(cell)
        combined.extend(rounds.cells(cell))
    return combined, all_rounds


# -- the store-size loop ---------------------------------------------------------------------


def run_store(args, tmp: str, store: int, chosen, out: dict) -> None:
    data_dir = stores.ensure_store(store, log=log, src=args.src)
    ids = scenarios.demo_ids(store)
    with Procs() as ps:
        proc, base = start_fastnova(ps, data_dir, 1, args.server_cpus, tmp, args.src)
        more = {}
        if args.access_log_compare:
            # The same store and core, its access log on (to a file): the cost of the log.
            access = os.path.join(tmp, "access-%d.log" % store)
            _p, more["fastnova+log"] = start_fastnova(
                ps, data_dir, 1, args.server_cpus, tmp, args.src,
                extra=("--access-log", access), name="fastnova-log")
        for scenario in chosen:
            info, (rows, turns) = run_scenario(ps, args, tmp, store, scenario, base, ids, more)
            out["scenarios"].setdefault(scenario.name, {})[str(store)] = info
            out["runs"].extend(rows)
            out["rounds"].extend(turns)
            save(out, args.out)
        out["memory"].extend(memory_rows(proc.pid, store, 1, args.server_cpus,
                                         "all scenarios"))


# -- worker table ----------------------------------------------------------------------------


def worker_configs(spec: str, cores: int) -> list[tuple[int, str, str]]:
    """(workers, server cpus, client cpus).  With every core given to fastnova, wrk has no core
    of its own and shares them (its figures then include the generator's cost)."""
    if spec == "none":
        return []
    if spec == "auto":
        entries = ["1@0"] + ["%d@0" % k for k in range(2, cores + 1)]
        entries += ["%d@0-%d" % (k, k - 1) for k in range(2, cores + 1)]
    else:
        entries = spec.split(",")
    out = []
    for entry in entries:
        k, _, cpus = entry.partition("@")
        cpus = cpus or "0"
        client = "1" if cpus == "0" and cores > 1 else "0-%d" % (cores - 1)
        out.append((int(k), cpus, client))
    return out


def run_workers(args, tmp: str, out: dict) -> None:
    configs = worker_configs(args.worker_table, os.cpu_count() or 1)
    if not configs:
        return
    store = max(args.servers)
    data_dir = stores.ensure_store(store, log=log, src=args.src)
    ids = scenarios.demo_ids(store)
    chosen = scenarios.select(args.worker_scenarios)
    for workers, cpus, client in configs:
        with Procs() as ps:
            proc, base = start_fastnova(ps, data_dir, workers, cpus, tmp, args.src)
            sub = argparse.Namespace(**vars(args))
            sub.client_cpus = client
            for scenario in chosen:
                token = token_for(scenario, scenarios.ADMIN_TOKEN, scenarios.MEMBER_TOKEN)
                script = wrk.write_script(tmp, "w-" + scenario.name,
                                          scenario.paths("", ids), {"X-Auth-Token": token})
                result = drive(base, script, sub, args.worker_concurrency)
                out["workers"].append(dict(store=store, scenario=scenario.name,
                                           workers=workers, server_cpus=cpus,
                                           client_cpus=client,
                                           concurrency=args.worker_concurrency, **result))
                log("workers %d on cpus %s (wrk on %s) %-10s %9.0f req/s  p99 %.3f ms"
                    % (workers, cpus, client, scenario.name, result["rps"], result["p99_ms"]))
            out["memory"].extend(memory_rows(proc.pid, store, workers, cpus,
                                             args.worker_scenarios))
            save(out, args.out)


# -- target ----------------------------------------------------------------------------------


def run_target(args, tmp: str, chosen, out: dict) -> None:
    parts = urllib.parse.urlsplit(args.target)
    base = "%s://%s" % (parts.scheme, parts.netloc)
    prefix = parts.path.rstrip("/")
    member = args.target_token or scenarios.MEMBER_TOKEN
    admin = args.target_admin_token or member
    ids = scenarios.discover_ids(base, prefix, member)
    if not ids:
        raise SystemExit("the target lists no servers for this token; nothing to show")
    for scenario in chosen:
        token = token_for(scenario, admin, member)
        paths = scenario.paths(prefix, ids)
        _s, _c, body = scenarios.fetch(base + paths[0], token)
        applied, note = scenarios.check_filter(scenario, body)
        out["target"]["scenarios"][scenario.name] = {"body_bytes": len(body),
                                                     "filter_applied": applied, "note": note}
        script = wrk.write_script(tmp, "t-" + scenario.name, paths, {"X-Auth-Token": token})
        for c in args.concurrency:
            result = drive(base, script, args, c)
            out["runs"].append(dict(store=None, scenario=scenario.name, server="target",
                                    workers=None, concurrency=c, note=note, **result))
            log("target   %-17s c=%-3d %9.0f req/s  p50 %.3f  p99 %.3f ms  errors %d"
                % (scenario.name, c, result["rps"], result["p50_ms"], result["p99_ms"],
                   result["errors"]))
        save(out, args.out)


# -- results ---------------------------------------------------------------------------------


def save(out: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def new_result(args, argv) -> dict:
    return {
        "schema": 1, "kind": "load",
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.load " + " ".join(argv),
        "machine": machine.describe(os.path.abspath(args.src)),
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "scenarios": {}, "runs": [], "rounds": [], "workers": [], "memory": [],
        "target": {"url": args.target, "scenarios": {}} if args.target else None,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.makedirs(RESULTS, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out = args.out or os.path.join(RESULTS, "load-%s.json" % stamp)
    chosen = scenarios.select(args.scenarios)
    if args.commit:
        args.src = stores.snapshot(args.commit, log=log)
    out = new_result(args, argv)
    with tempfile.TemporaryDirectory(prefix="fastnova-bench-") as tmp:
        # nginx's worker drops root privileges and must be able to read the trees under here.
        os.chmod(tmp, 0o755)
        for store in args.servers:
            run_store(args, tmp, store, chosen, out)
        run_workers(args, tmp, out)
        if args.target:
            run_target(args, tmp, chosen, out)
        if args.mixed:
            from bench import mixed
            mixed.run(args, tmp, out)
    out["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out["machine"]["loadavg_end"] = machine.loadavg()
    save(out, args.out)
    log("results: %s" % args.out)
    try:
        from bench import report
        print(report.summary(out))
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
