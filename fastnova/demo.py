"""Deterministic, realistic demo data: ``fastnova serve --demo N`` and the benchmarks' stores.

The same N always gives the same servers (a seeded generator), spread over several projects and
users, with fixed and floating addresses on one or two networks, metadata, tags, security groups,
several states, and the admin-only fields set, so that every part of the documents is exercised.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid as _uuid

PROJECTS = [
    ("6f70656e737461636b20342065766572", ["demo", "alice"]),
    ("8ab7c0b1c3a84c1e9d2a5b3e4f6a7b8c", ["bob", "carol"]),
    ("1d2e3f4a5b6c4d7e8f9a0b1c2d3e4f5a", ["dave"]),
    ("c0ffee00c0ffee00c0ffee00c0ffee00", ["erin", "frank"]),
    ("0badcafe0badcafe0badcafe0badcafe", ["grace"]),
]

FLAVORS = [
    {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1},
    {"id": "2", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20},
    {"id": "3", "name": "m1.medium", "vcpus": 2, "ram": 4096, "disk": 40},
    {"id": "4", "name": "m1.large", "vcpus": 4, "ram": 8192, "disk": 80},
    {"id": "5", "name": "m1.xlarge", "vcpus": 8, "ram": 16384, "disk": 160},
    {"id": "6", "name": "m1.tiny.specs", "vcpus": 1, "ram": 512, "disk": 1,
     "extra_specs": {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large"}},
    {"id": "7", "name": "m1.private", "vcpus": 2, "ram": 2048, "disk": 10, "is_public": False,
     "description": "a private flavor"},
]

IMAGES = [
    ("70a599e0-31e7-49b7-b260-868f441e862b", {"architecture": "x86_64", "os_distro": "ubuntu"}),
    ("155d900f-4e14-4e4c-a73d-069cbf4541e6", {"architecture": "x86_64", "os_distro": "fedora"}),
    ("a2459075-d96c-40d5-893e-577ff92e721c", {"architecture": "aarch64", "os_distro": "debian"}),
]

NETWORKS = ["private", "shared"]
AZS = ["nova", "az-east", "az-west"]
HOSTS = ["compute-%02d" % i for i in range(1, 21)]
# (vm_state, task_state, power_state, weight)
STATES = [
    ("active", None, 1, 80), ("stopped", None, 4, 8), ("building", "spawning", 0, 3),
    ("error", None, 0, 2), ("paused", None, 3, 2), ("suspended", None, 7, 1),
    ("active", "rebooting", 1, 2), ("shelved_offloaded", None, 4, 1), ("resized", None, 1, 1),
]
_EPOCH = dt.datetime(2026, 1, 1)


def flavor_records():
    out = []
    for f in FLAVORS:
        rec = {"ephemeral": 0, "swap": 0, "rxtx_factor": 1.0, "is_public": True,
               "disabled": False, "description": None, "extra_specs": {}}
        rec.update(f)
        out.append(rec)
    return out


def _uuid_from(rng: random.Random) -> str:
    return str(_uuid.UUID(int=rng.getrandbits(128), version=4))


def _mac(rng):
    return "fa:16:3e:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _addresses(rng, index):
    nets = NETWORKS[: 1 + (index % 3 == 0)]
    out = {}
    for n, net in enumerate(nets):
        fixed = "10.%d.%d.%d" % (n, (index >> 8) & 255, index & 255)
        entries = [{"addr": fixed, "version": 4, "type": "fixed", "mac": _mac(rng)}]
        if n == 0 and index % 4 == 0:
            entries.append({"addr": "172.24.%d.%d" % ((index >> 8) & 255, index & 255),
                            "version": 4, "type": "floating", "mac": entries[0]["mac"]})
        if index % 5 == 0:
            entries.append({"addr": "fd00:%x::%x" % (n, index), "version": 6, "type": "fixed",
                            "mac": entries[0]["mac"]})
        out[net] = entries
    return out


def _state(rng):
    total = sum(s[3] for s in STATES)
    pick = rng.randrange(total)
    for vm, task, power, weight in STATES:
        if pick < weight:
            return vm, task, power
        pick -= weight
    raise AssertionError("unreachable")


def _time(minutes: float) -> str:
    return (_EPOCH + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f")


def server(index: int, seed: int = 0) -> dict:
    """The index-th demo server (same index and seed, same server)."""
    rng = random.Random(seed * 1_000_003 + index)
    project, users = PROJECTS[index % len(PROJECTS)]
    flavor = FLAVORS[index % 6]
    vm_state, task_state, power = _state(rng)
    host = HOSTS[rng.randrange(len(HOSTS))] if vm_state not in ("building",
                                                                "shelved_offloaded") else None
    image_id, props = IMAGES[index % len(IMAGES)]
    uuid = _uuid_from(rng)
    created = _time(index * 0.5)
    name = "demo-%s-%06d" % (("web", "db", "cache", "batch")[index % 4], index)
    faulted = vm_state == "error"
    return {
        "id": uuid, "seq": index + 1, "version": 1, "name": name,
        "project_id": project, "user_id": users[index % len(users)],
        "created_at": created, "updated_at": _time(index * 0.5 + 3),
        "launched_at": None if vm_state == "building" else _time(index * 0.5 + 1),
        "vm_state": vm_state, "task_state": task_state, "power_state": power,
        "host": host, "node": host and host + ".example.org",
        "instance_name": "instance-%08x" % (index + 1), "hostname": name,
        "reservation_id": "r-%08x" % rng.getrandbits(32), "launch_index": 0,
        "kernel_id": "", "ramdisk_id": "", "root_device_name": "/dev/vda",
        "user_data": "IyEvYmluL3NoCmVjaG8gaGVsbG8K" if index % 7 == 0 else None,
        "availability_zone": AZS[index % len(AZS)] if host else None,
        "pinned_availability_zone": AZS[index % len(AZS)] if index % 11 == 0 else None,
        "access_ip_v4": "", "access_ip_v6": "", "config_drive": "True" if index % 9 == 0 else "",
        "disk_config": "AUTO" if index % 2 else "MANUAL",
        "key_name": "key-%s" % users[index % len(users)] if index % 3 else None,
        "description": "demo server %d" % index if index % 4 == 0 else None,
        "locked": index % 13 == 0, "locked_reason": "maintenance" if index % 26 == 0 else None,
        "progress": 0 if vm_state != "building" else 40,
        "metadata": {"role": ("web", "db", "cache", "batch")[index % 4],
                     "owner": users[index % len(users)], "tier": str(index % 3)},
        "tags": [t for t in ("prod", "staging", "blue", "green") if rng.random() < 0.3],
        "addresses": _addresses(rng, index) if vm_state != "building" else {},
        "flavor": {"id": flavor["id"], "name": flavor["name"], "vcpus": flavor["vcpus"],
                   "ram": flavor["ram"], "disk": flavor["disk"], "ephemeral": 0, "swap": 0,
                   "extra_specs": dict(flavor.get("extra_specs", {}))},
        "image": None if index % 17 == 0 else {"id": image_id, "properties": dict(props)},
        "security_groups": ["default"] + (["web"] if index % 4 == 0 else []),
        "volumes_attached": ([{"id": _uuid_from(rng), "delete_on_termination": False}]
                             if index % 17 == 0 else []),
        "host_status": "UP" if host else "",
        "fault": {"code": 500, "message": "No valid host was found. ",
                  "details": "Traceback (most recent call last): ...",
                  "created": _time(index * 0.5 + 2)} if faulted else None,
        "server_groups": [],
        "trusted_image_certificates": None,
        "scheduler_hints": {"group": "8f0b6a3c-3d5e-4a2b-9c1d-0e2f3a4b5c6d"} if index % 10 == 0
        else {},
    }


def _services(b):
    """The demo hosts as nova-compute services, spread over the demo zones, all up."""
    from fastnova.resources import services
    for i, host in enumerate(HOSTS):
        services.put(b, {"host": host, "binary": "nova-compute", "zone": AZS[i % len(AZS)],
                         "up": True, "updated_at": "2026-01-01T00:00:00.000000"})


def fill(writer, count: int, seed: int = 0, batch: int = 2000, progress=None) -> int:
    """Write ``count`` demo servers and the demo flavors, in batches of ``batch`` per txn."""
    with writer.batch() as b:
        for frec in flavor_records():
            b.put_flavor(frec)
    done = 0
    while done < count:
        n = min(batch, count - done)
        with writer.batch() as b:
            for i in range(done, done + n):
                b.upsert_server(server(i, seed))
        done += n
        if progress is not None:
            progress(done, count)
    with writer.batch() as b:
        _services(b)
        # Demo servers carry their own seq; later writers must number after them.
        current = int(b.get_meta(b"seq") or 0)
        b.set_meta(b"seq", b"%d" % max(current, count))
    return done
