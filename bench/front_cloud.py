"""fastnova in front of a real nova 34 cloud (tests/cloud): reads against nova-api, a command's
latency through fastnova against nova-api direct, and notification-to-visible lag.

    python -m bench.front_cloud [--servers 100] [--duration 10] [--connections 8]
                                [--commands 50] [--lag-samples 50]

It starts keystone (tests/cloud/keystone.py) and the cloud (tests/cloud/cloud.py), boots
``--servers`` servers in nova (one multiple-create, ``networks: none``), imports them, and runs
fastnova ``--commands upstream`` following nova's notifications.  Then:

* show and ``detail?limit=100``: wrk against fastnova and against nova-api, the same paths and
  connections, one after the other in the same run: req/s, p50/p99 and their ratio;
* a command: ``PUT /servers/{id}`` (a rename) ``--commands`` times through fastnova and as many
  straight to nova-api, alternating: p50/p99 of each and the difference (what fastnova adds:
  forwarding plus the store write before it answers);
* notification-to-visible: a rename made straight in nova-api (fastnova never sees the command);
  the time from the ``instance.update`` notification nova emitted (its own ``timestamp``, read
  from a side queue on nova's exchange) to the new name in fastnova's answer: p50/p99.

Results print as JSON and go to bench/results/front-cloud-<utc>.json.  The load parts are for a
quiet machine (the lead runs them); ``--duration 2 --commands 10 --lag-samples 10`` proves it
works in about a minute after the cloud is up.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pika

from bench import wrk
from tests.cloud.client import call, fastnova, serving, wait_for

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def _summary(ms):
    return {"n": len(ms), "p50_ms": round(_pct(ms, 50), 3), "p99_ms": round(_pct(ms, 99), 3),
            "mean_ms": round(statistics.fmean(ms), 3)}


def boot(cloud, token, admin, count):
    """``count`` ACTIVE servers in the demo project (quota raised first); their ids."""
    call(cloud.compute_url, "PUT", "/os-quota-sets/" + cloud.demo_project_id, admin,
         {"quota_set": {"instances": count + 50, "cores": 4 * count + 100,
                        "ram": 1024 * (count + 50)}})
    got = call(cloud.compute_url, "POST", "/servers", token, {"server": {
        "name": "bench", "flavorRef": "1", "imageRef": cloud.image_id, "networks": "none",
        "min_count": count, "max_count": count}}, version="2.37")
    assert got.status == 202, got

    def active():
        doc = call(cloud.compute_url, "GET", "/servers/detail?limit=1000", token).json()
        ids = [s["id"] for s in doc["servers"] if s["status"] == "ACTIVE"]
        return ids if len(ids) >= count else None
    return wait_for(active, 600, "%d servers ACTIVE" % count)


def _python_load(base, paths, headers, connections, duration) -> dict:
    """A closed loop of ``connections`` threads, each with one keep-alive connection: the
    fallback where wrk is not installed (it measures less: the client costs more than wrk)."""
    import http.client
    import threading
    from urllib.parse import urlsplit
    parts = urlsplit(base)
    lat, errors, stop = [], [0], time.monotonic() + duration

    def loop(k):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        i = k
        while time.monotonic() < stop:
            started = time.perf_counter()
            conn.request("GET", paths[i % len(paths)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            lat.append((time.perf_counter() - started) * 1000)
            errors[0] += resp.status != 200
            i += 1
        conn.close()
    began = time.monotonic()
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = _summary(lat)
    out.update(rps=len(lat) / (time.monotonic() - began), errors=errors[0], client="python")
    return out


def reads(fn_url, nova_url, fn_token, nova_token, ids, duration, connections, workdir):
    import shutil
    out = {}
    for name, paths in (("show", ["/v2.1/servers/" + i for i in ids]),
                        ("detail_limit_100", ["/v2.1/servers/detail?limit=100"])):
        row = {}
        for side, base, token in (("fastnova", fn_url, fn_token), ("nova", nova_url, nova_token)):
            headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.1"}
            if shutil.which("wrk"):
                script = wrk.write_script(workdir, "%s-%s" % (name, side), paths, headers)
                row[side] = wrk.run(base, script, connections, duration)
            else:
                row[side] = _python_load(base, paths, headers, connections, duration)
        row["ratio_rps"] = round(row["fastnova"]["rps"] / max(1e-9, row["nova"]["rps"]), 1)
        out[name] = row
    return out


def commands(fn, nova, token, ids, count):
    through, direct = [], []
    for i in range(count):
        sid = ids[i % len(ids)]
        for base, into in ((fn, through), (nova, direct)):
            started = time.perf_counter()
            got = call(base, "PUT", "/servers/" + sid, token, {"server": {"name": "c%d" % i}})
            into.append((time.perf_counter() - started) * 1000)
            assert got.status == 200, got
    a, b = _summary(through), _summary(direct)
    return {"through_fastnova": a, "nova_direct": b,
            "added_p50_ms": round(a["p50_ms"] - b["p50_ms"], 3)}


def lag(cloud, fn, nova, token, read_token, ids, samples):
    """Notification timestamp -> visible in fastnova, for renames made straight in nova."""
    conn = pika.BlockingConnection(pika.URLParameters(cloud.amqp_url))
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(queue, "nova", routing_key="versioned_notifications.info")
    lags = []
    for i in range(samples):
        sid, name = ids[i % len(ids)], "lag-%d-%d" % (i, time.time_ns())
        assert call(nova, "PUT", "/servers/" + sid, token, {"server": {"name": name}}).status == 200
        wait_for(lambda: call(fn, "GET", "/servers/" + sid, read_token).json()[
            "server"]["name"] == name, 30, "the rename in fastnova")
        seen = time.time()
        emitted = _notification_time(ch, queue, sid, name)
        lags.append((seen - emitted) * 1000)
    conn.close()
    return _summary(lags)


def _notification_time(ch, queue, sid, name) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.005)
            continue
        msg = json.loads(body)
        msg = json.loads(msg["oslo.message"]) if "oslo.message" in msg else msg
        data = msg.get("payload", {}).get("nova_object.data", {})
        if data.get("uuid") == sid and data.get("display_name") == name:
            when = datetime.datetime.strptime(msg["timestamp"], "%Y-%m-%d %H:%M:%S.%f")
            return when.replace(tzinfo=datetime.timezone.utc).timestamp()
    raise AssertionError("no instance.update notification for %s" % name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--servers", type=int, default=100)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--commands", type=int, default=50)
    p.add_argument("--lag-samples", type=int, default=50)
    p.add_argument("--cloud", default=os.environ.get("FASTNOVA_CLOUD"), metavar="PATH",
                   help="a running cloud (python -m tests.cloud.cloud PATH) instead of a new one")
    args = p.parse_args(argv)

    from tests.cloud.cloud import Cloud, start_cloud
    from tests.cloud.keystone import drop, start_keystone
    work = Path(tempfile.mkdtemp(prefix="front-cloud-bench-"))
    keystone = None if args.cloud else start_keystone(log=print)
    cloud, booted = None, []
    try:
        cloud = Cloud.described(args.cloud) if args.cloud else start_cloud(keystone, work / "cloud")
        token, admin = cloud.token(), cloud.admin_token()
        ids = boot(cloud, token, admin, args.servers)
        booted.extend(ids)
        data = str(work / "data")
        fastnova("import-nova", "--api-db", cloud.api_db_url, "--data-dir", data)
        serve = ("--data-dir", data, "--commands", "upstream", "--upstream", cloud.nova_url,
                 "--amqp", cloud.amqp_url, "--feed-queue", "fastnova.nova.bench")
        with serving(serve) as srv:
            srv.wait_for(lambda: "Streaming transport linked up" in srv.log() or None, 60,
                         "cellfeed")
            read_token = "demo:" + cloud.demo_project_id
            result = {"cloud_start_s": {k: round(v, 1) for k, v in cloud.timings.items()},
                      "servers": len(ids)}
            result["reads"] = reads(srv.url, cloud.nova_url, read_token, token, ids,
                                    args.duration, args.connections, str(work))
            result["command_rename"] = commands(srv.url + "/v2.1", cloud.compute_url, token,
                                                ids, args.commands)
            result["notification_to_visible"] = lag(cloud, srv.url + "/v2.1",
                                                    cloud.compute_url, token, read_token, ids,
                                                    args.lag_samples)
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        (RESULTS / ("front-cloud-%s.json" % stamp)).write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
    finally:
        for sid in booted:          # a running cloud (--cloud) gets its quota back
            call(cloud.compute_url, "DELETE", "/servers/" + sid, cloud.token())
        if cloud is not None:
            cloud.stop()
        if keystone is not None:
            drop(keystone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
