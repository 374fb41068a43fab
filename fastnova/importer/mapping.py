"""nova's rows and object primitives -> the canonical server record (fastnova.record).

Each function restates where nova-api takes an API field from (nova 34,
nova/api/openstack/compute/views/servers.py and the objects it loads); the functions are pure, so
the importer, reconcile and the tests share them.  ``Bundle`` is everything one server needs: its
instances row (or build request) plus the rows of the tables nova would join or look up.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass, field

import orjson

from fastnova.importer.versions import db_version
from fastnova.record import canonical_time

# nova.objects.image_meta.ImageMetaProps: field names and legacy names (nova 34).  The API's 2.98
# "image.properties" shows only these, taken from the "image_"-prefixed system metadata.
IMAGE_PROP_FIELDS = frozenset((
    "hw_architecture", "hw_emulation_architecture", "hw_auto_disk_config", "hw_boot_menu",
    "hw_cdrom_bus", "hw_cpu_cores", "hw_cpu_sockets", "hw_cpu_max_cores", "hw_cpu_max_sockets",
    "hw_cpu_max_threads", "hw_cpu_policy", "hw_cpu_thread_policy", "hw_cpu_realtime_mask",
    "hw_cpu_threads", "hw_device_id", "hw_disk_bus", "hw_disk_type", "hw_floppy_bus",
    "hw_firmware_type", "hw_firmware_stateless", "hw_input_bus", "hw_ipxe_boot",
    "hw_locked_memory", "hw_machine_type", "hw_mem_encryption", "hw_mem_encryption_model",
    "hw_mem_page_size", "hw_numa_nodes", "hw_numa_cpus", "hw_numa_mem",
    "hw_pci_numa_affinity_policy", "hw_pointer_model", "hw_pmu", "hw_qemu_guest_agent",
    "hw_rescue_bus", "hw_rescue_device", "hw_rng_model", "hw_time_hpet", "hw_serial_port_count",
    "hw_scsi_model", "hw_video_model", "hw_video_ram", "hw_vif_model", "hw_viommu_model",
    "hw_vm_mode", "hw_watchdog_action", "hw_vif_multiqueue_enabled", "hw_tpm_model",
    "hw_tpm_version", "hw_ephemeral_encryption", "hw_ephemeral_encryption_format",
    "hw_ephemeral_encryption_secret_uuid", "hw_virtio_packed_ring", "hw_maxphysaddr_mode",
    "hw_maxphysaddr_bits", "hw_sound_model", "hw_usb_model", "hw_redirected_usb_ports",
    "img_bittorrent", "img_bdm_v2", "img_block_device_mapping", "img_cache_in_nova",
    "img_compression_level", "img_hv_requested_version", "img_hv_type", "img_config_drive",
    "img_linked_clone", "img_mappings", "img_owner_id", "img_root_device_name", "img_use_agent",
    "img_version", "img_signature", "img_signature_hash_method", "img_signature_certificate_uuid",
    "img_signature_key_type", "img_hide_hypervisor_id", "os_admin_user", "os_command_line",
    "os_distro", "os_require_quiesce", "os_secure_boot", "os_skip_agent_inject_files_at_boot",
    "os_skip_agent_inject_ssh", "os_type", "traits_required",
    # _legacy_property_map keys: shown under the legacy name when that is what was stored.
    "architecture", "owner_id", "vmware_disktype", "vmware_image_version", "vmware_ostype",
    "auto_disk_config", "ipxe_boot", "xenapi_device_id", "xenapi_image_compression_level",
    "vmware_linked_clone", "xenapi_use_agent", "xenapi_skip_agent_inject_ssh",
    "xenapi_skip_agent_inject_files_at_boot", "cache_in_nova", "vm_mode", "bittorrent",
    "mappings", "block_device_mapping", "bdm_v2", "root_device_name",
    "hypervisor_version_requires", "hypervisor_type",
))
SM_IMAGE_PREFIX = "image_"

# nova.objects.fields.HostStatus
HOST_UP, HOST_DOWN, HOST_MAINTENANCE, HOST_UNKNOWN, HOST_NONE = (
    "UP", "DOWN", "MAINTENANCE", "UNKNOWN", "")


@dataclass
class Settings:
    """nova.conf values the API's answers depend on (the importer's options)."""
    instance_name_template: str = "instance-%08x"
    default_availability_zone: str = "nova"
    service_down_time: int = 60


@dataclass
class Context:
    """Small lookups loaded whole before streaming (services, aggregates' zones)."""
    settings: Settings = field(default_factory=Settings)
    host_az: dict = field(default_factory=dict)            # host -> aggregate AZ
    services: dict = field(default_factory=dict)           # (cell, host) -> host status
    now: _dt.datetime = field(default_factory=lambda: _dt.datetime.utcnow())


@dataclass
class Bundle:
    uuid: str
    cell: int = 0
    instance: dict | None = None          # instances row
    build_request: dict | None = None     # build_requests row (API db), when not in a cell
    extra: dict | None = None             # instance_extra row
    info_cache: dict | None = None
    metadata: list = field(default_factory=list)
    sysmeta: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    fault: dict | None = None
    bdms: list = field(default_factory=list)
    request_spec: dict | None = None      # request_specs row (API db)
    groups: list = field(default_factory=list)


# -- small helpers ---------------------------------------------------------------------------------

def _time(value):
    return canonical_time(value) if value is not None else None


def _loads(text):
    if text is None or text == "":
        return None
    return orjson.loads(text)


def object_data(primitive):
    """The field dict of an oslo.versionedobjects primitive (or the dict itself)."""
    if isinstance(primitive, dict) and "nova_object.data" in primitive:
        return primitive["nova_object.data"]
    return primitive


def image_id_from_ref(image_ref: str | None) -> str | None:
    """nova's common.get_id_from_href: the last path segment of an image href."""
    if not image_ref:
        return None
    return image_ref.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


# -- services -> host_status ---------------------------------------------------------------------

def host_status(service: dict | None, now: _dt.datetime, down_time: int) -> str:
    """nova.compute.api.API.get_instance_host_status with the DB servicegroup driver.

    UP depends on the clock (last_seen_up within service_down_time): the value is as of the
    import or the last reconcile, which is why reconcile refreshes it.
    """
    if service is None:
        return HOST_NONE
    if service.get("forced_down"):
        return HOST_DOWN
    if service.get("disabled"):
        return HOST_MAINTENANCE
    beat = service.get("last_seen_up") or service.get("created_at")
    if beat is None:
        return HOST_UNKNOWN
    return HOST_UP if abs((now - beat).total_seconds()) <= down_time else HOST_UNKNOWN


# -- instance_extra ------------------------------------------------------------------------------

def flavor_record(flavor_primitive) -> dict:
    """The instance's own flavor copy (a nova Flavor primitive) as the record's flavor."""
    f = object_data(flavor_primitive) or {}
    return {
        "id": str(f.get("flavorid", "")),
        "name": f.get("name") or "",
        "vcpus": f.get("vcpus") or 0,
        "ram": f.get("memory_mb") or 0,
        "disk": f.get("root_gb") or 0,
        "ephemeral": f.get("ephemeral_gb") or 0,
        "swap": f.get("swap") or 0,
        "extra_specs": dict(f.get("extra_specs") or {}),
    }


def extra_flavor(extra: dict | None) -> dict | None:
    """instance_extra.flavor is {"cur": Flavor, "old": …, "new": …}; the API shows "cur"."""
    doc = _loads(extra.get("flavor")) if extra else None
    if not doc or not doc.get("cur"):
        return None
    return flavor_record(doc["cur"])


def trusted_certs(extra: dict | None):
    doc = _loads(extra.get("trusted_certs")) if extra else None
    ids = (object_data(doc) or {}).get("ids") if doc else None
    return list(ids) if ids else None


# -- network info cache -> addresses ---------------------------------------------------------------

def _ip_version(ip: dict) -> int | None:
    if ip.get("version"):
        return ip["version"]
    try:
        return ipaddress.ip_address(ip.get("address") or "").version
    except ValueError:
        return None


def addresses(network_info) -> dict:
    """nova's get_networks_for_instance_from_nw_info + the ips view: per network label the
    fixed IPs of every VIF, then their floating IPs, each with the VIF's MAC."""
    nw = _loads(network_info) if isinstance(network_info, (str, bytes)) else network_info
    out: dict[str, list] = {}
    floating: dict[str, list] = {}
    for vif in nw or []:
        net = vif.get("network") or {}
        label = net.get("label")
        if label is None:
            continue
        fixed = out.setdefault(label, [])
        floats = floating.setdefault(label, [])
        mac = vif.get("address")
        for subnet in net.get("subnets") or []:
            for ip in subnet.get("ips") or []:
                fixed.append(_addr(ip, ip.get("type") or "fixed", mac))
                for fip in ip.get("floating_ips") or []:
                    floats.append(_addr(fip, fip.get("type"), mac))
    for label, floats in floating.items():
        out[label].extend(floats)
    return out


def _addr(ip: dict, kind, mac) -> dict:
    return {"addr": ip.get("address"), "version": _ip_version(ip), "type": kind, "mac": mac}


def has_ports(network_info) -> bool:
    nw = _loads(network_info) if isinstance(network_info, (str, bytes)) else network_info
    return bool(nw)


# -- request spec ----------------------------------------------------------------------------------

def request_spec_fields(spec_text) -> dict:
    """What the API shows from request_specs.spec: pinned AZ (2.96), scheduler hints (2.100),
    and the security group names asked for at boot (see security_groups below)."""
    spec = object_data(_loads(spec_text)) or {}
    groups = object_data(spec.get("security_groups")) or {}
    names = [object_data(g).get("name") for g in groups.get("objects") or []]
    return {
        "pinned_availability_zone": spec.get("availability_zone"),
        "scheduler_hints": spec.get("scheduler_hints"),
        "security_groups": [n for n in names if n],
    }


# -- the record -------------------------------------------------------------------------------------

def image(image_ref, sysmeta: dict) -> dict | None:
    iid = image_id_from_ref(image_ref)
    if not iid:
        return None
    plen = len(SM_IMAGE_PREFIX)
    props = {k[plen:]: v for k, v in sysmeta.items()
             if k.startswith(SM_IMAGE_PREFIX) and k[plen:] in IMAGE_PROP_FIELDS and v is not None}
    return {"id": iid, "properties": props}


def availability_zone(host, instance_az, ctx: Context):
    """nova.availability_zones.get_instance_availability_zone: a hosted instance shows its
    host's aggregate zone (the default zone when it has none); one without a host, what it
    asked for."""
    if not host:
        return instance_az
    return ctx.host_az.get(host, ctx.settings.default_availability_zone)


def _live(rows: list, deleted: bool) -> list:
    return rows if deleted else [r for r in rows if not r.get("deleted")]


def server_record(b: Bundle, ctx: Context) -> dict | None:
    """The record of one server, or None when nova-api would not show it at all."""
    if b.instance is not None:
        return _from_instance(b, ctx)
    if b.build_request is not None:
        return _from_build_request(b, ctx)
    return None


def _common(b: Bundle, rec: dict, ports: bool):
    spec = request_spec_fields(b.request_spec["spec"]) if b.request_spec else None
    rec["pinned_availability_zone"] = spec["pinned_availability_zone"] if spec else None
    hints = spec["scheduler_hints"] if spec else None
    rec["scheduler_hints"] = hints if hints is not None else {}
    # nova asks neutron for the groups of the server's ports at every read; fastnova shows the
    # groups the server was booted with (request spec), for servers that have ports.
    rec["security_groups"] = (spec["security_groups"] or ["default"]) if (spec and ports) else []
    rec["server_groups"] = list(b.groups[:1])
    rec["tags"] = sorted(b.tags)


def _from_instance(b: Bundle, ctx: Context) -> dict | None:
    i = b.instance
    deleted = bool(i.get("deleted"))
    flavor = extra_flavor(b.extra)
    if flavor is None:
        # nova-api answers with an empty flavor ({}); a record needs one, so keep the id empty.
        flavor = {"id": ""}
    sysmeta = {r["key"]: r["value"] for r in _live(b.sysmeta, deleted)}
    network_info = b.info_cache.get("network_info") if b.info_cache else None
    ip4, ip6 = i.get("access_ip_v4"), i.get("access_ip_v6")
    rec = {
        "id": b.uuid,
        "seq": i["id"],
        "version": db_version(i.get("updated_at"), i.get("created_at")),
        "name": i.get("display_name") or "",
        "project_id": i.get("project_id") or "",
        "user_id": i.get("user_id") or "",
        "created_at": _time(i["created_at"]),
        "updated_at": _time(i.get("updated_at")),
        "launched_at": _time(i.get("launched_at")),
        "terminated_at": _time(i.get("terminated_at")),
        "deleted_at": _time(i.get("deleted_at")) if deleted else None,
        "deleted": deleted,
        "vm_state": i.get("vm_state") or "",
        "task_state": i.get("task_state"),
        "power_state": i.get("power_state"),
        "host": i.get("host"),
        "node": i.get("node"),
        "instance_name": _instance_name(i, ctx.settings.instance_name_template),
        "hostname": i.get("hostname"),
        "reservation_id": i.get("reservation_id"),
        "launch_index": i.get("launch_index"),
        "kernel_id": i.get("kernel_id"),
        "ramdisk_id": i.get("ramdisk_id"),
        "root_device_name": i.get("root_device_name"),
        "user_data": i.get("user_data"),
        "availability_zone": availability_zone(i.get("host"), i.get("availability_zone"), ctx),
        "access_ip_v4": str(ip4) if ip4 is not None else "",
        "access_ip_v6": str(ip6) if ip6 is not None else "",
        "config_drive": i.get("config_drive"),
        "disk_config": "AUTO" if i.get("auto_disk_config") else "MANUAL",
        "key_name": i.get("key_name"),
        "description": i.get("display_description"),
        "locked": i.get("locked_by") is not None,
        "locked_reason": sysmeta.get("locked_reason"),
        "progress": i.get("progress"),
        "metadata": {r["key"]: r["value"] for r in _live(b.metadata, deleted)},
        "addresses": addresses(network_info),
        "flavor": flavor,
        "image": image(i.get("image_ref"), sysmeta),
        "volumes_attached": [{"id": r["volume_id"],
                              "delete_on_termination": bool(r.get("delete_on_termination"))}
                             for r in _live(b.bdms, deleted) if r.get("volume_id")],
        "host_status": (ctx.services.get((b.cell, i["host"]), HOST_NONE)
                        if i.get("host") else HOST_NONE),
        "fault": _fault(b.fault),
        "trusted_image_certificates": trusted_certs(b.extra),
    }
    _common(b, rec, has_ports(network_info))
    return rec


def _instance_name(i: dict, template: str) -> str:
    """nova's Instance.name: instance_name_template % id, or % the row's columns."""
    try:
        return template % i["id"]
    except TypeError:
        try:
            return template % i
        except KeyError:
            return i["uuid"]


def _fault(row: dict | None) -> dict | None:
    if not row:
        return None
    return {"code": row["code"], "message": row.get("message"), "details": row.get("details"),
            "created": _time(row.get("created_at"))}


def _from_build_request(b: Bundle, ctx: Context) -> dict | None:
    """A server the API database holds before any cell has it (nova's BuildRequest)."""
    br = b.build_request
    inst = object_data(_loads(br.get("instance"))) or {}
    if not inst:
        return None
    created = br.get("created_at") or inst.get("created_at")
    sysmeta = inst.get("system_metadata") or {}
    bdms = object_data(_loads(br.get("block_device_mappings"))) or {}
    tags = object_data(_loads(br.get("tags"))) or {}
    ip4, ip6 = inst.get("access_ip_v4"), inst.get("access_ip_v6")
    rec = {
        "id": b.uuid,
        "seq": 0,
        "version": db_version(br.get("updated_at"), created),
        "name": inst.get("display_name") or "",
        "project_id": inst.get("project_id") or br.get("project_id") or "",
        "user_id": inst.get("user_id") or "",
        "created_at": _time(created),
        "updated_at": _time(br.get("updated_at")),
        "vm_state": inst.get("vm_state") or "building",
        "task_state": inst.get("task_state"),
        "power_state": inst.get("power_state") or 0,
        "instance_name": "",
        "hostname": inst.get("hostname"),
        "reservation_id": inst.get("reservation_id"),
        "launch_index": inst.get("launch_index"),
        "kernel_id": inst.get("kernel_id"),
        "ramdisk_id": inst.get("ramdisk_id"),
        "root_device_name": inst.get("root_device_name"),
        "user_data": inst.get("user_data"),
        "availability_zone": inst.get("availability_zone"),
        "access_ip_v4": str(ip4) if ip4 is not None else "",
        "access_ip_v6": str(ip6) if ip6 is not None else "",
        "config_drive": inst.get("config_drive"),
        "disk_config": "AUTO" if inst.get("auto_disk_config") else "MANUAL",
        "key_name": inst.get("key_name"),
        "description": inst.get("display_description"),
        "locked": inst.get("locked_by") is not None,
        "locked_reason": sysmeta.get("locked_reason"),
        "progress": inst.get("progress"),
        "metadata": dict(inst.get("metadata") or {}),
        "flavor": flavor_record(inst.get("flavor")) if inst.get("flavor") else {"id": ""},
        "image": image(inst.get("image_ref"), sysmeta),
        "volumes_attached": [
            {"id": d["volume_id"], "delete_on_termination": bool(d.get("delete_on_termination"))}
            for d in (object_data(x) for x in bdms.get("objects") or []) if d.get("volume_id")],
        "trusted_image_certificates": trusted_certs({"trusted_certs": orjson.dumps(
            inst["trusted_certs"])} if inst.get("trusted_certs") else None),
    }
    _common(b, rec, ports=False)
    rec["tags"] = sorted(object_data(t).get("tag") for t in tags.get("objects") or [])
    return rec


# -- flavors (API database) -------------------------------------------------------------------------

def api_flavor(row: dict, extra_specs: dict, projects: list) -> dict:
    """A flavors row as the store's flavor record (fastnova.views.flavors)."""
    return {
        "id": str(row["flavorid"]),
        "name": row["name"],
        "vcpus": row["vcpus"],
        "ram": row["memory_mb"],
        "disk": row.get("root_gb") or 0,
        "ephemeral": row.get("ephemeral_gb") or 0,
        "swap": row.get("swap") or 0,
        "rxtx_factor": row.get("rxtx_factor") if row.get("rxtx_factor") is not None else 1.0,
        "is_public": bool(row.get("is_public", True)),
        "disabled": bool(row.get("disabled")),
        "description": row.get("description"),
        "extra_specs": extra_specs,
        "projects": sorted(projects),
        # What only ?sort_key= reads (fastnova.api.flavor_order): the row's internal id breaks
        # ties as nova's paginate_query does.
        "internal_id": row.get("id"),
        "vcpu_weight": row.get("vcpu_weight"),
        "created_at": _text(row.get("created_at")),
        "updated_at": _text(row.get("updated_at")),
    }


def _text(value):
    return None if value is None else str(value)
