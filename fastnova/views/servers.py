"""Write-time rendering of the server documents (GET /servers, /servers/detail, /servers/{id}).

``render_server`` turns one canonical record (fastnova.record) into gated pieces (see
fastnova.store.layout): every member of every variant nova 34 shows, each with the microversion
range, roles and views that nova's view builder and DEFAULT policies give it.  Where one key has
different values per microversion or role (flavor, image, volumes, fault, hostname) it becomes
several pieces with disjoint gates, so a selection never holds a key twice.

Policy defaults used (nova/policies/*.py, nova 34):
  os_compute_api:os-extended-server-attributes        ADMIN   -> OS-EXT-SRV-ATTR:*
  os_compute_api:servers:show:host_status (+unknown-only) ADMIN -> host_status
  os_compute_api:servers:show:flavor-extra-specs      PROJECT_READER_OR_ADMIN -> both roles
  fault "details": context.is_admin, or a code other than 500.

Rendering is split into *parts*, each a pure function of a few record fields (``PARTS`` names
them).  ``render_parts`` renders all of them; ``rerender_parts`` renders again only those whose
fields a patch changed and keeps the others; ``assemble`` turns parts into pieces.  The pieces
depend only on the parts, so a partial re-render gives the bytes of a full one
(tests/unit/test_writer_incremental.py checks both, and that each part reads only its fields).
"""
from __future__ import annotations

import hashlib

import orjson

from fastnova._ext import compiled
from fastnova.record import isotime
from fastnova.store.layout import pack_blob
from fastnova.views import links
from fastnova.views.gates import (FAULT_STATUSES, G_2_9, G_2_19, G_2_26, G_2_63, G_2_71_SHOW,
                                  G_2_73, G_2_96, G_2_100, G_ADMIN, G_ADMIN_2_3, G_CORE,
                                  G_FLAVOR_NEW, G_FLAVOR_OLD, G_HOST_STATUS, G_HOSTNAME_2_90,
                                  G_IDENTITY, G_IMAGE_NEW, G_IMAGE_OLD, G_MEMBER, G_VOLUMES_NEW,
                                  G_VOLUMES_OLD, MEMBERS, PROGRESS_STATUSES, RAW)
from fastnova.views.status import fault_doc, record_status

# A part's output is a tuple of (gate, raw, bytes) (gates: fastnova.views.gates).  ``bytes``
# holds one or more ``"key":value`` members.  Raw chunks of a gate come first in its piece, then
# its member chunks; gates appear in the order parts first name them, raw gates before member
# gates (the order nova's documents have always had here, so the stored bytes did not change
# with the split into parts).


class _Keys(dict):
    """``"key":`` prefixes, encoded once per key name."""

    def __missing__(self, key):
        value = self[key] = orjson.dumps(key) + b":"
        return value


_KEYS = _Keys()


def _raw(gate: tuple, key: str, value: bytes) -> tuple:
    return (gate, RAW, _KEYS[key] + value)


def _member(gate: tuple, key: str, value) -> tuple:
    return (gate, MEMBERS, _KEYS[key] + orjson.dumps(value))


def _members(gate: tuple, values: dict) -> tuple:
    """Several members of one gate, encoded by one orjson call (a third of the cost of one
    call per member, measured)."""
    return (gate, MEMBERS, orjson.dumps(values)[1:-1])


def host_id(project_id: str, host: str | None) -> str:
    """nova's obfuscated "hostId": sha224 of project id + host, "" when there is no host."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode("utf-8")).hexdigest()


# -- members of every view ---------------------------------------------------------------------

def _identity(rec: dict) -> tuple:
    sid = rec["id"]
    return ((G_IDENTITY, RAW, b"".join((
        _KEYS["id"], orjson.dumps(sid), b",", _KEYS["name"], orjson.dumps(rec["name"]), b",",
        _KEYS["links"], links.resource_links("servers", sid)))),)


# -- the core document (show and detail) ---------------------------------------------------------

def _address_list(rec: dict) -> dict:
    # nova hides addresses while the server is building.
    if rec["vm_state"] == "building":
        return {}
    out = {}
    for label, addrs in rec["addresses"].items():
        # nova lists a network's fixed IPs first, then its floating IPs.
        ordered = sorted(addrs, key=lambda a: a.get("type") == "floating")
        out[label] = [{
            "version": a.get("version"),
            "addr": a.get("addr"),
            "OS-EXT-IPS:type": a.get("type"),
            "OS-EXT-IPS-MAC:mac_addr": a.get("mac"),
        } for a in ordered]
    return out


def _access(rec: dict) -> tuple:
    return (_members(G_CORE, {"accessIPv4": rec["access_ip_v4"] or "",
                              "accessIPv6": rec["access_ip_v6"] or ""}),)


def _addresses(rec: dict) -> tuple:
    return (_member(G_CORE, "addresses", _address_list(rec)),)


def _placement(rec: dict) -> tuple:
    return (_members(G_CORE, {"created": isotime(rec["created_at"]),
                              "hostId": host_id(rec["project_id"], rec["host"]),
                              "metadata": rec["metadata"] or {}}),)


def _state(rec: dict) -> tuple:
    return (_members(G_CORE, {
        "status": record_status(rec),
        "tenant_id": rec["project_id"] or "",
        "user_id": rec["user_id"] or "",
        "updated": isotime(rec["updated_at"] or rec["created_at"]),
        "OS-DCF:diskConfig": rec["disk_config"],
        "OS-EXT-AZ:availability_zone": rec["availability_zone"] or "",
        "config_drive": rec["config_drive"],
        "key_name": rec["key_name"],
        "OS-SRV-USG:launched_at": rec["launched_at"],
        "OS-SRV-USG:terminated_at": rec["terminated_at"],
        "OS-EXT-STS:task_state": rec["task_state"],
        "OS-EXT-STS:vm_state": rec["vm_state"],
        "OS-EXT-STS:power_state": rec["power_state"],
    }),)


def _progress(rec: dict) -> tuple:
    if record_status(rec) not in PROGRESS_STATUSES:
        return ()
    return (_member(G_CORE, "progress", rec["progress"]),)


def _security_groups(rec: dict) -> tuple:
    # nova only sets the key when neutron reports at least one group for the server's ports.
    if not rec["security_groups"]:
        return ()
    return (_member(G_CORE, "security_groups", [{"name": n} for n in rec["security_groups"]]),)


# -- embedded flavor and image -----------------------------------------------------------------

def _flavor(rec: dict) -> tuple:
    flavor = rec["flavor"]
    fid = str(flavor["id"])
    old = (b'{"id":' + orjson.dumps(fid) + b',"links":'
           + links.bookmark_links("flavors", fid) + b"}")
    # 2.47 embeds the instance's own flavor copy; extra_specs goes to project readers and
    # admins alike (servers:show:flavor-extra-specs is PROJECT_READER_OR_ADMIN).
    new = orjson.dumps({
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "ephemeral": flavor["ephemeral"],
        "swap": flavor["swap"],
        "original_name": flavor["name"],
        "extra_specs": flavor["extra_specs"] or {},
    })
    return (_raw(G_FLAVOR_OLD, "flavor", old), _raw(G_FLAVOR_NEW, "flavor", new))


def _image(rec: dict) -> tuple:
    image = rec["image"]
    if not image or not image.get("id"):
        # Booted from volume: nova shows an empty string, not null or {}.
        return (_member(G_CORE, "image", ""),)
    iid = str(image["id"])
    head = b'{"id":' + orjson.dumps(iid) + b',"links":' + links.bookmark_links("images", iid)
    # nova drops None-valued properties; the writer is expected to keep only the standard
    # image property names nova shows (ImageMetaProps fields and legacy names).
    props = {k: v for k, v in (image.get("properties") or {}).items() if v is not None}
    return (_raw(G_IMAGE_OLD, "image", head + b"}"),
            _raw(G_IMAGE_NEW, "image", head + b',"properties":' + orjson.dumps(props) + b"}"))


def _volumes(rec: dict) -> tuple:
    key = "os-extended-volumes:volumes_attached"
    vols = [v for v in rec["volumes_attached"] if v.get("id")]
    short = [{"id": v["id"]} for v in vols]
    long_ = [{"id": v["id"], "delete_on_termination": bool(v.get("delete_on_termination"))}
             for v in vols]
    return (_raw(G_VOLUMES_OLD, key, orjson.dumps(short)),
            _raw(G_VOLUMES_NEW, key, orjson.dumps(long_)))


# -- fault --------------------------------------------------------------------------------------

def _fault(rec: dict) -> tuple:
    fault = rec["fault"]
    if not fault or record_status(rec) not in FAULT_STATUSES:
        return ()
    # nova shows details to admins always, to others only when the code is not 500 (a 500
    # details field is a traceback from the compute host).
    has_details = bool(fault.get("details"))
    if not has_details or fault.get("code") != 500:
        return (_member(G_CORE, "fault", fault_doc(fault, has_details)),)
    return (_member(G_ADMIN, "fault", fault_doc(fault, True)),
            _member(G_MEMBER, "fault", fault_doc(fault, False)))


# -- admin-only extended attributes and host status ----------------------------------------------

def _ext_host(rec: dict) -> tuple:
    return (_members(G_ADMIN, {"OS-EXT-SRV-ATTR:host": rec["host"],
                               "OS-EXT-SRV-ATTR:instance_name": rec["instance_name"],
                               "OS-EXT-SRV-ATTR:hypervisor_hostname": rec["node"]}),)


def _ext_2_3(rec: dict) -> tuple:
    hostname = rec["hostname"]
    return (
        _members(G_ADMIN_2_3, {
            "OS-EXT-SRV-ATTR:reservation_id": rec["reservation_id"],
            "OS-EXT-SRV-ATTR:launch_index": rec["launch_index"],
            "OS-EXT-SRV-ATTR:kernel_id": rec["kernel_id"],
            "OS-EXT-SRV-ATTR:ramdisk_id": rec["ramdisk_id"],
            "OS-EXT-SRV-ATTR:root_device_name": rec["root_device_name"],
            "OS-EXT-SRV-ATTR:user_data": rec["user_data"],
            # hostname: admin from 2.3 with the other attributes; 2.90 shows it to everyone.
            "OS-EXT-SRV-ATTR:hostname": hostname,
        }),
        _member(G_HOSTNAME_2_90, "OS-EXT-SRV-ATTR:hostname", hostname),
    )


def _host_status(rec: dict) -> tuple:
    # The admin passes show:host_status, so any value shows ("" when the server has no host).
    return (_member(G_HOST_STATUS, "host_status", rec["host_status"]),)


# -- members added by later microversions -----------------------------------------------------

def _later(rec: dict) -> tuple:
    return (
        _member(G_2_9, "locked", bool(rec["locked"])),
        _member(G_2_19, "description", rec["description"]),
        _member(G_2_26, "tags", rec["tags"] or []),
        _member(G_2_63, "trusted_image_certificates", rec["trusted_image_certificates"]),
        _member(G_2_71_SHOW, "server_groups", rec["server_groups"] or []),
        _member(G_2_73, "locked_reason", rec["locked_reason"]),
        _member(G_2_96, "pinned_availability_zone", rec["pinned_availability_zone"]),
        _member(G_2_100, "scheduler_hints", rec["scheduler_hints"]),
    )


# -- parts ---------------------------------------------------------------------------------------

_STATUS = ("deleted", "vm_state", "task_state")

# (part, the record fields it reads), in document order.  A part must read nothing else: a
# patch re-renders exactly the parts whose fields it names (the test traces every read).
PARTS = (
    (_identity, ("id", "name")),
    (_access, ("access_ip_v4", "access_ip_v6")),
    (_addresses, ("vm_state", "addresses")),
    (_placement, ("created_at", "project_id", "host", "metadata")),
    (_state, _STATUS + ("project_id", "user_id", "updated_at", "created_at", "disk_config",
                        "availability_zone", "config_drive", "key_name", "launched_at",
                        "terminated_at", "power_state")),
    (_flavor, ("flavor",)),
    (_image, ("image",)),
    (_fault, _STATUS + ("fault",)),
    (_progress, _STATUS + ("progress",)),
    (_security_groups, ("security_groups",)),
    (_ext_host, ("host", "instance_name", "node")),
    (_ext_2_3, ("reservation_id", "launch_index", "kernel_id", "ramdisk_id", "root_device_name",
                "user_data", "hostname")),
    (_volumes, ("volumes_attached",)),
    (_host_status, ("host_status",)),
    (_later, ("locked", "description", "tags", "trusted_image_certificates", "server_groups",
              "locked_reason", "pinned_availability_zone", "scheduler_hints")),
)
_FUNCS = tuple(fn for fn, _fields in PARTS)
_FIELDS = tuple(frozenset(fields) for _fn, fields in PARTS)


def render_parts_pure(rec: dict) -> tuple:
    """Every part of a normalized record; twin of fastnova/_ext/_render.pyx ``render_parts``."""
    return tuple([fn(rec) for fn in _FUNCS])


def render_some_pure(parts: tuple, rec: dict, stale: tuple) -> tuple:
    """``parts`` with the parts at the indexes ``stale`` rendered again from ``rec``; twin of
    fastnova/_ext/_render.pyx ``render_some``."""
    out = list(parts)
    for index in stale:
        out[index] = _FUNCS[index](rec)
    return tuple(out)


def rerender_parts(parts: tuple, rec: dict, changed: frozenset) -> tuple:
    """The parts of ``rec``, given ``parts`` of a record that differs from it only in the
    fields ``changed``: parts that read none of them are kept as they are."""
    if type(changed) is not frozenset:
        changed = frozenset(changed)
    stale = _STALE.get(changed)
    if stale is None:
        stale = _stale(changed)
    return render_some(parts, rec, stale) if stale else parts


# changed fields -> indexes of the parts that read them.  A feed sends a handful of shapes of
# patch (state changes, progress, addresses), so this stays small; it is bounded all the same.
_STALE: dict = {}


def _stale(changed: frozenset) -> tuple:
    stale = tuple(i for i, fields in enumerate(_FIELDS) if not fields.isdisjoint(changed))
    if len(_STALE) < 4096:
        _STALE[changed] = stale
    return stale


def assemble(parts: tuple) -> list[tuple[int, int, int, bytes]]:
    """The gated pieces (fastnova.store.layout) of rendered parts: one piece per gate.

    Members that share a gate become one piece: ~15 pieces instead of ~55, which made rendering
    ~3x and selection ~2x faster (measured with the demo records).
    """
    raw: dict = {}
    members: dict = {}
    for part in parts:
        for gate, is_raw, data in part:
            chunks = (raw if is_raw else members).setdefault(gate, [])
            chunks.append(data)
    for gate, chunks in members.items():
        raw.setdefault(gate, []).append(b",".join(chunks))
    return [(lo, hi, mask, b",".join(chunks)) for (lo, hi, mask), chunks in raw.items()]


def render_server(rec: dict) -> list[tuple[int, int, int, bytes]]:
    """All gated pieces of a normalized record's server documents (fastnova.store.layout)."""
    return assemble(render_parts(rec))


def pack_parts_pure(project_id: str, parts: tuple, deleted: bool = False) -> bytes:
    """The view blob of rendered parts; twin of fastnova/_ext/_pack.pyx ``pack_parts``."""
    return pack_blob(project_id, assemble(parts), deleted=deleted)


# The compiled twins unless the pure ones are chosen (fastnova._ext.compiled decides).
PACK_IMPLEMENTATION = "pure"
pack_parts, render_parts, render_some = pack_parts_pure, render_parts_pure, render_some_pure
if compiled("_pack", "pack_parts") is not None:
    pack_parts = compiled("_pack", "pack_parts")
    render_parts = compiled("_render", "render_parts")
    render_some = compiled("_render", "render_some")
    PACK_IMPLEMENTATION = "compiled"
