"""Scenarios that change the store while they are measured (issue 6's "create" and "reads while
the feed applies updates"), with the same pinning and wrk as bench/load.py:

- ``create``: ``POST /servers`` on the embedded default (the store is the record, the simulated
  cell moves each server to ACTIVE), quotas unlimited, at each concurrency;
- ``show_under_feed``: ``GET /servers/{id}`` with ``serve --amqp``, idle and then while a
  publisher sends cell updates (patches with growing versions) at ``--feed-rate`` updates/s
  through RabbitMQ into the supervised cellfeed, in the same run: the ratio is the cost of the
  feed to readers.  Each round ends with a third turn, idle again: its ratio to the first idle
  turn (A/A) is the noise floor of that ratio on this host.

``python -m bench.load --mixed`` runs them after the read scenarios; ``python -m bench.mixed``
alone.  Requires RabbitMQ at $FASTNOVA_BENCH_AMQP (default the local guest broker).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pika

from bench import loadgen, procs, rounds, scenarios, stores, wrk
from bench.procs import Procs

AMQP = os.environ.get("FASTNOVA_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
IDLE_AGAIN = "idle again (A/A)"
CREATE_BODY = json.dumps({"server": {"name": "bench", "flavorRef": "1", "imageRef": IMAGE,
                                     "networks": "none"}})

_PUBLISHER = r"""
import sys, time
from cellfeed import contract
from cellfeed.publish import Publisher
url, exchange, rate, seconds, ids = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5].split(",")
per_message = 10                       # updates per message: rate / 10 confirms a second
with Publisher(url, exchange) as pub:
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        batch = []
        for _ in range(per_message):
            uuid = ids[sent % len(ids)]
            batch.append(contract.server_patch(uuid, time.time_ns() // 1000 + sent,
                                               {"task_state": None if sent % 2 else "rebooting"}))
            sent += 1
        pub.send(batch)
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
print(sent)
"""


def _serve(ps: Procs, args, data_dir: str, tmp: str, extra=()) -> tuple:
    port = procs.free_port()
    cmd = [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:%d" % port,
           "--workers", "1", "--data-dir", data_dir, "--log-level", "WARNING", *extra]
    proc = ps.start(cmd, cpus=args.server_cpus, log_path=os.path.join(tmp, "mixed.log"),
                    cwd=args.src)
    base = "http://127.0.0.1:%d" % port
    procs.wait_http(base + "/", proc)
    time.sleep(0.5)                     # workers ready (the master answers nothing itself)
    return proc, base


def run_create(ps: Procs, args, tmp: str) -> list[dict]:
    data = tempfile.mkdtemp(prefix="create-", dir=tmp)
    # --demo 1 for the demo flavors: like nova, an empty store has none to boot from.
    proc, base = _serve(ps, args, data, tmp,
                        ("--demo", "1", "--quota", "instances=-1,cores=-1,ram=-1"))
    script = wrk.write_script(tmp, "create", ["/v2.1/servers"],
                              {"X-Auth-Token": scenarios.MEMBER_TOKEN,
                               "Content-Type": "application/json",
                               "OpenStack-API-Version": "compute 2.37"},
                              method="POST", body=CREATE_BODY)
    rows = []
    try:
        for c in args.concurrency:
            result = wrk.run(base, script, c, args.duration, args.client_cpus, args.wrk_timeout)
            rows.append(dict(result, scenario="create", concurrency=c))
            print("[bench] create c=%d %.0f req/s p50 %.3f p99 %.3f ms errors %d" % (
                c, result["rps"], result["p50_ms"], result["p99_ms"], result["errors"]),
                flush=True)
    finally:
        ps.stop(proc)
    return rows


def run_show_under_feed(ps: Procs, args, tmp: str) -> list[dict]:
    count = min(args.servers)
    data = os.path.join(tmp, "feed-store")
    shutil.copytree(stores.ensure_store(count, log=print, src=args.src), data)
    tag = "bench%d" % os.getpid()
    extra = ("--amqp", AMQP, "--feed-exchange", tag + ".updates", "--feed-queue", tag + ".feed",
             "--cast-exchange", tag + ".casts", "--cast-queue", tag + ".cells")
    if getattr(args, "feed_nice", None) is not None:
        extra += ("--feed-nice", str(args.feed_nice))
    proc, base = _serve(ps, args, data, tmp, extra)
    ids = scenarios.demo_ids(count)
    paths = ["/v2.1/servers/" + i for i in ids]
    headers = {"X-Auth-Token": scenarios.MEMBER_TOKEN}
    script = wrk.write_script(tmp, "show-feed", paths, headers)
    if getattr(args, "client", "wrk") == "loadgen":
        # Recorded latencies (bench/loadgen.py says why wrk's p99 is mostly the host's stalls).
        paths_file = loadgen.write_paths(tmp, "show-feed", paths)

        def turn(c):
            return loadgen.run(base, paths_file, headers, c, args.duration, args.client_cpus)
    else:
        def turn(c):
            return wrk.run(base, script, c, args.duration, args.client_cpus, args.wrk_timeout)
    rows = []
    fed_label = "feed %d/s" % args.feed_rate
    try:
        time.sleep(2.0)                 # the feed's queue is declared and bound
        for c in args.concurrency:
            turns = []
            for n in range(getattr(args, "rounds", 1)):
                # One idle turn, then one fed turn, per round (bench/rounds.py).
                idle = turn(c)
                pub = subprocess.Popen([sys.executable, "-c", _PUBLISHER, AMQP,
                                        tag + ".updates", str(args.feed_rate),
                                        str(args.duration + 2), ",".join(ids)],
                                       cwd=args.src, stdout=subprocess.PIPE)
                time.sleep(1.0)
                fed = turn(c)
                sent = int(pub.communicate(timeout=args.duration + 60)[0] or 0)
                # The control: idle again, the same distance from the first idle turn.  Its
                # ratio to the first is what this host's noise alone does to a p99 (A/A), the
                # floor under which a fed/idle difference cannot be told from noise.
                again = turn(c)
                for label, result in (("idle", idle), (fed_label, fed), (IDLE_AGAIN, again)):
                    turns.append(dict(result, scenario="show_under_feed", concurrency=c,
                                      server=label, feed=label, round=n,
                                      updates_sent=sent if label == fed_label else 0))
                print("[bench] show c=%d r%d idle %.0f req/s p99 %.3f ms | under feed %.0f "
                      "req/s p99 %.3f ms (%d updates sent) | idle again p99 %.3f ms" % (
                          c, n, idle["rps"], idle["p99_ms"], fed["rps"], fed["p99_ms"], sent,
                          again["p99_ms"]), flush=True)
            for row in rounds.cells(turns, reference="idle"):
                row["updates_sent"] = sum(t["updates_sent"] for t in turns
                                          if t["server"] == row["server"])
                rows.append(row)
    finally:
        ps.stop(proc)
        _cleanup(tag)
    return rows


def _cleanup(tag: str):
    try:
        conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        ch = conn.channel()
        for q in (tag + ".feed", tag + ".feed.dead", tag + ".cells"):
            ch.queue_delete(q)
        for e in (tag + ".updates", tag + ".feed.dlx", tag + ".casts"):
            ch.exchange_delete(e)
        conn.close()
    except pika.exceptions.AMQPError:
        pass


def run(args, tmp: str, out: dict) -> None:
    ps = Procs()
    try:
        out["mixed"] = run_create(ps, args, tmp) + run_show_under_feed(ps, args, tmp)
    finally:
        ps.stop_all()


def table(rows: list[dict]) -> str:
    """Figures are medians over rounds; "p99 vs idle" is the median of each round's fed/idle
    ratio, with the rounds' ratios after it."""
    lines = ["| scenario | c | feed | req/s | p50 ms | p99 ms | p99 vs idle (per round) | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per = (r.get("vs_idle") or {}).get("p99_ms") or []
        vs = "**%.2fx** (%s)" % (rounds.median_ratio(r, "p99_ms", "idle"),
                                 ", ".join("%.2f" % x for x in per)) if per else ""
        lines.append("| %s | %d | %s | %.0f | %.3f | %.3f | %s | %d |" % (
            r["scenario"], r["concurrency"], r.get("feed", ""), r["rps"], r["p50_ms"],
            r["p99_ms"], vs, r["errors"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench.load import parse_args
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="fastnova-mixed-")
    out: dict = {}
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        run(args, tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(out.get("mixed", [])))
    path = args.out or os.path.join(stores.REPO, "bench", "results", "mixed-%s.json" % started)
    with open(path, "w") as f:
        json.dump(dict(out, argv=sys.argv[1:], client=args.client), f, indent=1)
    print("saved", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
