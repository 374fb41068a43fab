"""POST /servers: validate locally, one PostgreSQL round trip, one store write, 202.

Everything nova's create checks without another service is checked here from the store: the body
for the microversion, flavor (exists, enabled), image reference format, key pair, networks format,
block device mappings, quota.  What only the cell can know (image in glance, network in neutron,
a host) is the cell's business; a failure there ends as an ERROR server with a fault, as in nova.
"""
from __future__ import annotations

import re
import uuid as uuidlib

import orjson

from fastnova.outbound import outbox
from fastnova.api import errors
from fastnova.commands import common, quota, runtime, schemas
from fastnova.commands.validation import is_uuid_like
from fastnova.resources import actions, server_groups
from fastnova.store import layout as L
from fastnova.store.reader import get as reader_get

META_KEYPAIR = b"keypair:"
_TRUE = {True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes"}
_HOST_BAD = re.compile(r"[^\w.-]+")


def keypair_key(user_id: str, name: str) -> bytes:
    return META_KEYPAIR + user_id.encode() + b"\x00" + name.encode()


async def create(app, req, ctx, minor, route, links):
    rt = runtime.get(app)
    body = common.parse_body(req)
    schemas.CREATE[minor].check(body)
    actions.start(req, ctx, "create")
    server = body["server"]
    plan = _plan(server, body, minor)
    with rt.begin() as txn:
        rt.check_outbox(txn)
        flavor = _flavor(rt, txn, server["flavorRef"])
        if plan["key_name"] is not None and reader_get(
                txn, keypair_key(ctx.user_id, plan["key_name"]), rt.reader.dbs[L.DB_META]) is None:
            raise errors.bad_request("Invalid key_name provided.")
        quota.check_metadata(rt, txn, ctx.project_id, plan["metadata"])
        count = quota.check_create(rt, txn, ctx.project_id, flavor, plan["min_count"],
                                   plan["max_count"], ctx.user_id)
        group = server_groups.check_hint(rt, txn, plan["hints"], count, ctx.project_id)
    records = _records(ctx, plan, flavor, count)
    if group is not None:
        for rec in records:
            rec["server_groups"] = [group]
    casts = [outbox.make_cast("build_and_run_instance", rec, plan["cast_args"], rt.cfg.api_host)
             for rec in records]
    for cast in casts:        # the action rides with the casts into the store write's thread
        cast["request_id"] = actions.request_id()
        cast["action"] = actions.PENDING.get()
    seqs = rt.db.take_seqs(count) if rt.db is not None and rt.overlapped else None
    if seqs is not None:
        await _overlapped(rt, records, casts, seqs)
    else:
        if rt.db is not None:
            _name(records, await rt.db.insert_servers(records, casts))
            common.runtime_fault("after_db_commit")
        await rt.write(lambda b: _store(b, records, casts))

    if plan["return_reservation_id"]:
        return 202, orjson.dumps({"reservation_id": plan["reservation_id"]})
    first = records[0]["id"]
    doc = {"id": first, "links": common.server_links(links, first),
           "OS-DCF:diskConfig": plan["disk_config"],
           "security_groups": server.get("security_groups", [{"name": "default"}])}
    if rt.cfg.enable_instance_password:
        doc["adminPass"] = plan["admin_pass"]
    location = b"Location: " + common.self_href(links, first).encode() + b"\r\n"
    return 202, orjson.dumps({"server": doc}), location


def _name(records, seqs):
    for rec, seq in zip(records, seqs):
        rec["seq"] = seq
        rec["instance_name"] = "instance-%08x" % seq


def _store(b, records, casts) -> list[int]:
    """The store write of a create: records and their casts; the outbox keys."""
    keys = []
    for rec, cast in zip(records, casts):
        if not rec["seq"]:
            _name([rec], [_next_seq(b)])
        b.upsert_server(rec)
        actions.record(b, rec["id"], pending=casts and casts[0].get("action"))
        cast["instance"] = rec
        keys.append(outbox.append(b, cast))
    group = records[0].get("server_groups") if records else None
    if group:          # the "group" hint: members join in the create's own transaction
        server_groups.add_members(b, group[0], [rec["id"] for rec in records])
    return keys


async def _overlapped(rt, records, casts, seqs):
    """Store and database together (fastnova.commands.runtime): the casts wait in the outbox
    for their rows (``db_version``), and a create whose insert failed is deleted again."""
    _name(records, seqs)
    for rec, cast in zip(records, casts):
        cast["db_version"] = rec["version"]

    def undo(b, keys) -> bool:
        if not outbox.withdraw(b, [outbox.key(k) for k in keys]):
            return False          # the forwarder has taken it over
        for rec in records:
            b.delete_server(rec["id"], rec["version"] + 1, rec["created_at"])
        return True
    await rt.write_with_db(lambda b: _store(b, records, casts),
                           lambda: rt.db.insert_servers(records, casts), undo)


def _next_seq(b) -> int:
    raw = b.get_meta(L.META_SEQ)
    seq = int(raw) + 1 if raw else 1
    b.set_meta(L.META_SEQ, b"%d" % seq)
    return seq


def _flavor(rt, txn, flavor_ref) -> dict:
    fid = common.id_from_href(flavor_ref)
    frec = rt.reader.flavor_record(txn, fid.encode())
    if frec is None or frec.get("disabled"):
        raise errors.bad_request("Flavor %s could not be found." % fid)
    return frec


def _plan(server: dict, body: dict, minor: int) -> dict:
    """Everything the request asks for, checked as nova's controller checks it."""
    name = server["name"].strip()
    min_count = int(server.get("min_count", 1))
    max_count = int(server.get("max_count", min_count))
    if min_count > max_count:
        raise errors.bad_request("min_count must be <= max_count")
    bdms = _bdms(server)
    image = server.get("imageRef")
    if not image and not bdms:
        raise errors.bad_request("Missing imageRef attribute")
    networks = _networks(server.get("networks"))
    hints = body.get("os:scheduler_hints", body.get("OS-SCH-HNT:scheduler_hints")) or {}
    groups = server.get("security_groups")
    sg_names = sorted({g["name"] for g in groups if g.get("name")}) if groups else ["default"]
    hostname = server.get("hostname") if minor >= 90 else None
    if hostname and max_count > 1 and minor < 94:
        raise errors.bad_request("Unable to allocate hostname for multiple instances.")
    return {
        "name": name, "min_count": min_count, "max_count": max_count, "image": image or None,
        "bdms": bdms, "networks": networks, "hints": hints, "security_groups": sg_names,
        "metadata": server.get("metadata") or {}, "key_name": server.get("key_name"),
        "description": server.get("description", name) if minor >= 19 else name,
        "hostname": hostname, "tags": server.get("tags") or [] if minor >= 52 else [],
        "user_data": server.get("user_data"), "admin_pass": common.admin_password(server),
        "config_drive": "True" if server.get("config_drive") in _TRUE else "",
        "disk_config": server.get("OS-DCF:diskConfig", "MANUAL"),
        "access_ip_v4": server.get("accessIPv4", ""), "access_ip_v6": server.get("accessIPv6", ""),
        "availability_zone": server.get("availability_zone"),
        "trusted_certs": server.get("trusted_image_certificates"),
        "return_reservation_id": server.get("return_reservation_id") in _TRUE,
        "reservation_id": "r-" + common.random_text("abcdefghijklmnopqrstuvwxyz0123456789", 8),
        "cast_args": {"requested_networks": networks, "block_device_mapping": bdms,
                      "scheduler_hints": hints, "availability_zone":
                      server.get("availability_zone"), "host": server.get("host"),
                      "node": server.get("hypervisor_hostname")},
    }


def _networks(requested):
    """nova's _get_requested_networks: 'auto'/'none', or a list of {uuid|port, fixed_ip, tag}."""
    if requested is None or isinstance(requested, str):
        return requested
    out, ports = [], set()
    for net in requested:
        port, addr = net.get("port"), net.get("fixed_ip")
        if port:
            if port in ports:
                raise errors.bad_request("Port ID '%s' was specified twice: you cannot attach "
                                         "a port multiple times." % port)
            if addr is not None:
                raise errors.bad_request("Specified Fixed IP '%s' cannot be used with port "
                                         "'%s': the two cannot be specified together."
                                         % (addr, port))
            ports.add(port)
            out.append({"port": port, "tag": net.get("tag")})
            continue
        if "uuid" not in net:
            raise errors.bad_request("Bad network format: missing 'uuid'")
        if not is_uuid_like(net["uuid"]):
            raise errors.bad_request("Bad networks format: network uuid is not in proper "
                                     "format (%s)" % net["uuid"])
        out.append({"uuid": net["uuid"], "fixed_ip": addr, "tag": net.get("tag")})
    return out


def _bdms(server: dict) -> list:
    legacy, v2 = server.get("block_device_mapping", []), server.get("block_device_mapping_v2", [])
    if legacy and v2:
        raise errors.bad_request("Using different block_device_mapping syntaxes is not "
                                 "allowed in the same request.")
    out = []
    for bdm in legacy:
        out.append({"source_type": "volume", "destination_type": "volume",
                    "uuid": bdm.get("volume_id") or bdm.get("snapshot_id"),
                    "boot_index": 0 if not out else None,
                    "delete_on_termination": bdm.get("delete_on_termination") in _TRUE})
    for bdm in v2:
        src = bdm.get("source_type")
        if src is None and any(k in bdm for k in ("volume_id", "snapshot_id", "image_id")):
            src = ("volume" if "volume_id" in bdm else
                   "snapshot" if "snapshot_id" in bdm else "image")
        ident = bdm.get("uuid") or bdm.get("volume_id") or bdm.get("snapshot_id") \
            or bdm.get("image_id")
        if src in ("volume", "snapshot", "image") and not ident:
            raise errors.bad_request("Block Device Mapping is Invalid: missing uuid")
        dest = bdm.get("destination_type", "volume" if src != "image" else "local")
        out.append({"source_type": src, "destination_type": dest, "uuid": ident,
                    "boot_index": bdm.get("boot_index"), "volume_size": bdm.get("volume_size"),
                    "volume_type": bdm.get("volume_type"),
                    "delete_on_termination": bdm.get("delete_on_termination") in _TRUE})
    return out


def _hostname(name: str, fallback: str) -> str:
    """nova's sanitize_hostname, roughly: lower case, [a-z0-9.-], at most 63 characters."""
    host = _HOST_BAD.sub("", name.lower().replace(" ", "-").replace("_", "-"))
    host = host.strip(".-")[:63]
    return host or fallback


def _records(ctx, plan: dict, flavor: dict, count: int) -> list[dict]:
    when = common.now()
    version = common.next_version(0)
    flavor_copy = {k: flavor.get(k, 0) for k in ("vcpus", "ram", "disk", "ephemeral", "swap")}
    flavor_copy.update(id=str(flavor["id"]), name=flavor.get("name", ""),
                       extra_specs=flavor.get("extra_specs") or {})
    volumes = [{"id": b["uuid"], "delete_on_termination": b["delete_on_termination"]}
               for b in plan["bdms"] if b["destination_type"] == "volume" and
               b["source_type"] == "volume"]
    out = []
    for index in range(count):
        uuid = str(uuidlib.uuid4())
        name = plan["name"] if count == 1 else "%s-%d" % (plan["name"], index + 1)
        hostname = plan["hostname"] or _hostname(name, "Server-" + uuid)
        out.append({
            "id": uuid, "version": version, "seq": 0, "name": name,
            "project_id": ctx.project_id, "user_id": ctx.user_id,
            "created_at": when, "updated_at": when, "vm_state": "building",
            "task_state": "scheduling", "power_state": 0, "hostname": hostname,
            "reservation_id": plan["reservation_id"], "launch_index": index,
            "user_data": plan["user_data"], "availability_zone": plan["availability_zone"],
            "pinned_availability_zone": plan["availability_zone"],
            "access_ip_v4": plan["access_ip_v4"], "access_ip_v6": plan["access_ip_v6"],
            "config_drive": plan["config_drive"], "disk_config": plan["disk_config"],
            "key_name": plan["key_name"], "description": plan["description"],
            "metadata": dict(plan["metadata"]), "tags": list(dict.fromkeys(plan["tags"])),
            "flavor": flavor_copy,
            "image": {"id": plan["image"], "properties": {}} if plan["image"] else None,
            "security_groups": [], "volumes_attached": volumes,
            "trusted_image_certificates": plan["trusted_certs"],
            "scheduler_hints": plan["hints"],
        })
    return out
