"""Import throughput and peak memory of ``fastnova import-nova`` at N servers (default 100,000).

Fills a nova deployment (tests/nova_schema.sql: one API schema, --cells cell schemas) in the
PostgreSQL at $FASTNOVA_PG_URL with rows shaped as nova writes them — per server an instances
row, instance_extra with the flavor JSON, a network info cache with one VIF (fixed + floating
IP), 2 metadata rows, 6 system metadata rows (image_* and others), 2 tags, a volume BDM, a
request spec — generated inside PostgreSQL (generate_series), then runs the import as a separate
process, as an operator would, and reports servers/s and the importer's peak RSS.

    python bench/bench_import.py [--servers 100000] [--cells 1] [--keep]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.import_support import NovaDeployment  # noqa: E402

UUID = ("substr(md5('{salt}'||i),1,8)||'-'||substr(md5('{salt}'||i),9,4)||'-4'||"
        "substr(md5('{salt}'||i),14,3)||'-a'||substr(md5('{salt}'||i),18,3)||'-'||"
        "substr(md5('{salt}'||i),21,12)")

FLAVOR = ('{"cur": {"nova_object.name": "Flavor", "nova_object.namespace": "nova", '
          '"nova_object.version": "1.2", "nova_object.data": {"id": 1, "flavorid": "1", '
          '"name": "m1.small", "memory_mb": 2048, "vcpus": 1, "root_gb": 20, '
          '"ephemeral_gb": 0, "swap": 0, "rxtx_factor": 1.0, "vcpu_weight": 0, '
          '"disabled": false, "is_public": true, "extra_specs": {"hw:cpu_policy": '
          '"shared"}, "description": null}}, "old": null, "new": null}')


def network_sql(i: str) -> str:
    """A NetworkInfo JSON with one VIF (fixed 10.x.y.z + floating 172.24.y.z), built in SQL."""
    ip = "jsonb_build_object('address', %s, 'type', %s, 'version', 4, 'meta', '{}'::jsonb%s)"
    fixed_addr = "'10.' || ({i} / 65536 MOD 256) || '.' || ({i} / 256 MOD 256) || '.' || ({i} MOD 256)"
    float_addr = "'172.24.' || ({i} / 256 MOD 256) || '.' || ({i} MOD 256)"
    floating = ip % (float_addr, "'floating'", "")
    fixed = ip % (fixed_addr, "'fixed'", ", 'floating_ips', jsonb_build_array(%s)" % floating)
    subnet = ("jsonb_build_object('cidr', '10.0.0.0/8', 'version', 4, 'meta', '{}'::jsonb, "
              "'ips', jsonb_build_array(%s))" % fixed)
    network = ("jsonb_build_object('id', 'net', 'label', 'private', 'meta', '{}'::jsonb, "
               "'subnets', jsonb_build_array(%s))" % subnet)
    vif = ("jsonb_build_object('id', md5('vif' || {i}), 'address', 'fa:16:3e:' || "
           "lpad(to_hex({i} MOD 256), 2, '0') || ':00:01', 'type', 'ovs', 'devname', 'tap0', "
           "'meta', '{}'::jsonb, 'active', true, 'network', %s)" % network)
    return ("jsonb_build_array(%s)::text" % vif).replace("{i}", i).replace(" MOD ", " % ")


def fill(nova: NovaDeployment, cell: str, first: int, count: int, salt: str):
    u = UUID.format(salt=salt)
    series = "FROM generate_series(%d, %d) AS i" % (first, first + count - 1)
    sqls = [
        "INSERT INTO instances (id, uuid, created_at, updated_at, deleted, user_id, project_id,"
        " image_ref, kernel_id, ramdisk_id, launch_index, power_state, vm_state, hostname,"
        " host, node, reservation_id, launched_at, display_name, availability_zone,"
        " root_device_name, config_drive, progress, auto_disk_config, hidden)"
        " SELECT i, %s, timestamp '2024-01-01' + i * interval '1 second',"
        " timestamp '2024-06-01' + i * interval '1 second', 0, 'user' || (i %% 50),"
        " 'project' || (i %% 200), '70a599e0-31e7-49b7-b260-868f441e862b', '', '', 0, 1,"
        " 'active', 'vm-' || i, 'compute' || (i %% 100), 'node' || (i %% 100), 'r-' || i,"
        " timestamp '2024-01-01', 'server-' || i, 'nova', '/dev/vda', '', 0, false, false %s"
        % (u, series),
        "INSERT INTO instance_extra (instance_uuid, created_at, deleted, flavor)"
        " SELECT %s, now(), 0, %%s %s" % (u, series),
        "INSERT INTO instance_info_caches (instance_uuid, created_at, deleted, network_info)"
        " SELECT %s, now(), 0, %s %s" % (u, network_sql("i"), series),
        "INSERT INTO instance_metadata (instance_uuid, key, value, deleted)"
        " SELECT %s, k, 'value-' || i, 0 %s, unnest(ARRAY['role', 'owner']) AS k" % (u, series),
        "INSERT INTO instance_system_metadata (instance_uuid, key, value, deleted)"
        " SELECT %s, k, 'x', 0 %s, unnest(ARRAY['image_os_distro', 'image_hw_disk_bus',"
        " 'image_min_ram', 'image_disk_format', 'owner_user_name', 'boot_roles']) AS k"
        % (u, series),
        "INSERT INTO tags (resource_id, tag) SELECT %s, t %s, unnest(ARRAY['web', 'prod']) t"
        % (u, series),
        "INSERT INTO block_device_mapping (instance_uuid, uuid, created_at, deleted, volume_id,"
        " source_type, destination_type, delete_on_termination) SELECT %s, md5('bdm'||i), now(),"
        " 0, md5('vol'||i), 'volume', 'volume', false %s" % (u, series),
    ]
    for sql in sqls:
        nova.execute(cell, sql, (FLAVOR,) if "%s" in sql.replace("%%", "") else None)
    nova.execute("api", "INSERT INTO request_specs (instance_uuid, spec) SELECT %s,"
                 " '{\"nova_object.name\": \"RequestSpec\", \"nova_object.data\": {"
                 "\"availability_zone\": null, \"scheduler_hints\": {}, \"security_groups\": "
                 "{\"nova_object.data\": {\"objects\": [{\"nova_object.data\": {\"name\": "
                 "\"default\"}}]}}}}' %s" % (u, series))
    nova.execute(cell, "INSERT INTO services (host, \"binary\", topic, last_seen_up, created_at)"
                       " SELECT 'compute' || h, 'nova-compute', 'compute', now(), now()"
                       " FROM generate_series(0, 99) h ON CONFLICT DO NOTHING")
    nova.execute(cell, "ANALYZE")


def sample_anon(proc) -> float:
    """Peak RssAnon of a running process, sampled every 50 ms from a thread."""
    import threading
    peak = [0.0]

    def run():
        while proc.poll() is None:
            try:
                with open("/proc/%d/status" % proc.pid) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            peak[0] = max(peak[0], int(line.split()[1]) / 1024.0)
            except OSError:
                return
            time.sleep(0.05)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    proc._anon_thread = t
    return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--servers", type=int, default=100_000)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the schemas and the store")
    args = ap.parse_args()
    nova = NovaDeployment(cells=args.cells)
    data = tempfile.mkdtemp(prefix="fastnova-bench-import-")
    try:
        t = time.monotonic()
        per = args.servers // args.cells
        for n in range(args.cells):
            fill(nova, "cell%d" % (n + 1), n * per + 1, per, "c%d-" % n)
        print("filled %d servers in %.1fs" % (per * args.cells, time.monotonic() - t))
        cmd = [sys.executable, "-m", "fastnova.cli", "import-nova", "--api-db", nova.url("api"),
               "--data-dir", data] + sum((["--cell-db", u] for u in nova.cell_urls()), [])
        t = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
        anon = sample_anon(proc)
        err = proc.stderr.read()
        proc.wait()
        proc._anon_thread.join()
        peak_anon = anon[0]
        took = time.monotonic() - t
        sys.stderr.write(err[-1500:])
        if proc.returncode != 0:
            return proc.returncode
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        size = os.path.getsize(os.path.join(data, "store", "data.mdb")) / 1e6
        print("machine: %s, %d cpus, python %s" % (platform.platform(), os.cpu_count(),
                                                    platform.python_version()))
        print("import-nova: %d servers in %.1fs (process wall) = %.0f servers/s; "
              "peak RSS %.0f MB of which anonymous (the importer's own memory) %.0f MB, the "
              "rest file-backed pages of the mmap'd store; store %.0f MB"
              % (per * args.cells, took, per * args.cells / took, peak, peak_anon, size))
    finally:
        if not args.keep:
            nova.drop()
            subprocess.run(["rm", "-rf", data])
    return 0


if __name__ == "__main__":
    sys.exit(main())
