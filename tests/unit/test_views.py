"""Server documents rendered at write time, checked against nova's own API samples.

Every GET sample of a server (show, detail, list) is turned back into a canonical record, rendered,
assembled for the sample's microversion and role, and compared strictly (same keys, same nesting,
same JSON types, same values; only hostId is compared by form where the sample's host is a
template).  Gate boundaries and policy rules have their own tests.
"""
from __future__ import annotations

import collections
import glob
import hashlib
import json
import os

import pytest

from fastnova.record import normalize
from fastnova.store.assemble import fill_links, select
from fastnova.store.layout import (MAX_MINOR, ROLE_ADMIN, ROLE_MEMBER, VIEW_DETAIL, VIEW_INDEX,
                                   VIEW_SHOW, pack_blob)
from fastnova.views.servers import host_id, render_server
from fastnova.views.status import server_status, states_for_statuses, status_filter
from tests.samples import SAMPLES as _SAMPLES

SAMPLES = str(_SAMPLES)
PROJECT = "6f70656e737461636b20342065766572"
ROOT = b"http://openstack.example.com/" + PROJECT.encode()
VROOT = b"http://openstack.example.com/v2.1/" + PROJECT.encode()
ROLES = {"admin": ROLE_ADMIN, "member": ROLE_MEMBER}
VIEWS = {"show": VIEW_SHOW, "detail": VIEW_DETAIL, "index": VIEW_INDEX}


# -- helpers shared with tests/unit/test_flavor_views.py ---------------------------------------------

def strict_equal(got, want, path="$"):
    """Equality that also insists on JSON types (0 is not false, 1 is not 1.0)."""
    assert type(got) is type(want), "%s: %r (%s) != %r (%s)" % (
        path, got, type(got).__name__, want, type(want).__name__)
    if isinstance(want, dict):
        assert set(got) == set(want), "%s: keys +%s -%s" % (
            path, sorted(set(got) - set(want)), sorted(set(want) - set(got)))
        for key in want:
            strict_equal(got[key], want[key], "%s.%s" % (path, key))
    elif isinstance(want, list):
        assert len(got) == len(want), "%s: length %d != %d" % (path, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            strict_equal(g, w, "%s[%d]" % (path, i))
    else:
        assert got == want, "%s: %r != %r" % (path, got, want)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dupes = [k for k, n in collections.Counter(keys).items() if n > 1]
    assert not dupes, "duplicate keys %s" % dupes
    return dict(pairs)


def assemble(pieces, minor, role, view, root=ROOT, vroot=VROOT):
    """Pack, select and fill links as a reader would; parse with a duplicate-key check."""
    blob = pack_blob(PROJECT, pieces)
    doc = fill_links(select(blob, minor, role | view), root, vroot)
    return json.loads(doc, object_pairs_hook=_no_duplicates)


def sample_minor(folder: str) -> int:
    base = os.path.basename(folder)
    return int(base.split(".")[1]) if base.startswith("v2.") else 1


def link_prefixes(doc: dict) -> tuple[bytes, bytes]:
    """The (root, version root) prefixes a sample's own self/bookmark links were made with."""
    hrefs = {link["rel"]: link["href"] for link in doc["links"]}
    coll = "/" + hrefs["self"].rsplit("/", 2)[-2] + "/"
    return (hrefs["bookmark"].rsplit(coll, 1)[0].encode(),
            hrefs["self"].rsplit(coll, 1)[0].encode())


# -- sample -> record -------------------------------------------------------------------------

_ADMIN_ONLY = ("OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:instance_name",
               "OS-EXT-SRV-ATTR:hypervisor_hostname", "OS-EXT-SRV-ATTR:reservation_id",
               "OS-EXT-SRV-ATTR:launch_index", "OS-EXT-SRV-ATTR:kernel_id",
               "OS-EXT-SRV-ATTR:ramdisk_id", "OS-EXT-SRV-ATTR:root_device_name",
               "OS-EXT-SRV-ATTR:user_data", "host_status")

_SIMPLE = {  # record field <- sample key, for values copied unchanged
    "name": "name", "user_id": "user_id", "project_id": "tenant_id",
    "created_at": "created", "updated_at": "updated",
    "launched_at": "OS-SRV-USG:launched_at", "terminated_at": "OS-SRV-USG:terminated_at",
    "vm_state": "OS-EXT-STS:vm_state", "task_state": "OS-EXT-STS:task_state",
    "power_state": "OS-EXT-STS:power_state", "host": "OS-EXT-SRV-ATTR:host",
    "node": "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "instance_name": "OS-EXT-SRV-ATTR:instance_name", "hostname": "OS-EXT-SRV-ATTR:hostname",
    "reservation_id": "OS-EXT-SRV-ATTR:reservation_id",
    "launch_index": "OS-EXT-SRV-ATTR:launch_index", "kernel_id": "OS-EXT-SRV-ATTR:kernel_id",
    "ramdisk_id": "OS-EXT-SRV-ATTR:ramdisk_id",
    "root_device_name": "OS-EXT-SRV-ATTR:root_device_name",
    "user_data": "OS-EXT-SRV-ATTR:user_data",
    "availability_zone": "OS-EXT-AZ:availability_zone",
    "pinned_availability_zone": "pinned_availability_zone",
    "access_ip_v4": "accessIPv4", "access_ip_v6": "accessIPv6",
    "config_drive": "config_drive", "disk_config": "OS-DCF:diskConfig",
    "key_name": "key_name", "description": "description", "locked": "locked",
    "locked_reason": "locked_reason", "progress": "progress", "metadata": "metadata",
    "tags": "tags", "host_status": "host_status", "server_groups": "server_groups",
    "trusted_image_certificates": "trusted_image_certificates",
    "scheduler_hints": "scheduler_hints",
}


def _flavor_from(doc: dict) -> dict:
    flavor = doc["flavor"]
    if "id" in flavor:
        return {"id": flavor["id"]}
    keys = ("vcpus", "ram", "disk", "ephemeral", "swap", "extra_specs")
    return dict({k: flavor[k] for k in keys if k in flavor}, id="1", name=flavor["original_name"])


def _addresses_from(doc: dict) -> dict:
    return {label: [{"addr": a["addr"], "version": a["version"], "type": a["OS-EXT-IPS:type"],
                     "mac": a["OS-EXT-IPS-MAC:mac_addr"]} for a in addrs]
            for label, addrs in doc["addresses"].items()}


def record_from_sample(doc: dict) -> dict:
    """A canonical record holding exactly the data the sample shows."""
    rec = {field: doc[key] for field, key in _SIMPLE.items() if key in doc}
    rec.setdefault("project_id", PROJECT)
    rec.setdefault("user_id", "fake")
    rec.setdefault("created_at", "2013-09-03T04:01:32Z")
    rec["id"] = doc["id"]
    if "flavor" in doc:
        rec["flavor"] = _flavor_from(doc)
        rec["addresses"] = _addresses_from(doc)
        image = doc["image"]
        rec["image"] = ({"id": image["id"], "properties": image.get("properties", {})}
                        if image else None)
        rec["security_groups"] = [g["name"] for g in doc.get("security_groups", [])]
        rec["volumes_attached"] = [
            {"id": v["id"], "delete_on_termination": v.get("delete_on_termination", False)}
            for v in doc["os-extended-volumes:volumes_attached"]]
        # A non-admin sample does not show the host: any host gives a well-formed hostId.
        rec.setdefault("host", "compute" if doc["hostId"] else None)
    else:
        rec["flavor"] = {"id": "1"}
    return normalize(rec)


def _comparable(got: dict, want: dict, rec: dict) -> None:
    """Sample hostIds come from template hosts; check ours is nova's hash and of the same form."""
    if "hostId" in want:
        assert got["hostId"] == host_id(rec["project_id"], rec["host"])
        assert len(got["hostId"]) == len(want["hostId"])
        got["hostId"] = want["hostId"]


# -- which samples ----------------------------------------------------------------------------

_FILES = {"server-get-resp.json": ("show", "server"),
          "servers-details-resp.json": ("detail", "servers"),
          "servers-list-resp.json": ("index", "servers"),
          "server-tags-show-details-resp.json": ("show", "server"),
          "servers-tags-details-resp.json": ("detail", "servers")}


def _sample_cases():
    paths = glob.glob(SAMPLES + "/servers/**/*.json", recursive=True)
    paths += glob.glob(SAMPLES + "/os-server-tags/v2.26/*.json")
    for path in sorted(paths):
        name = os.path.basename(path)
        if name in _FILES:
            yield pytest.param(path, id=os.path.relpath(path, SAMPLES))


def _docs(path):
    view, top = _FILES[os.path.basename(path)]
    with open(path) as f:
        body = json.load(f)
    docs = [body[top]] if top == "server" else body[top]
    return view, docs


def _role_of(doc: dict) -> str:
    return "admin" if any(k in doc for k in _ADMIN_ONLY) else "member"


def _is_down_cell(doc: dict) -> bool:
    # 2.69 down-cell partial documents: fastnova has no down cells (out of scope).
    return doc.get("status") == "UNKNOWN"


@pytest.mark.parametrize("path", list(_sample_cases()))
def test_sample(path):
    view, docs = _docs(path)
    minor = sample_minor(os.path.dirname(path))
    assert docs
    for want in docs:
        if _is_down_cell(want):
            assert minor >= 69
            continue
        rec = record_from_sample(want)
        root, vroot = link_prefixes(want)
        role = _role_of(want)
        got = assemble(render_server(rec), minor, ROLES[role], VIEWS[view], root, vroot)
        _comparable(got, want, rec)
        strict_equal(got, want)
        if role == "admin":
            _check_member_of_admin_sample(rec, want, minor, view, root, vroot)


def _check_member_of_admin_sample(rec, want, minor, view, root, vroot):
    """The same server seen by a project member: the admin-only keys go, nothing else changes."""
    got = assemble(render_server(rec), minor, ROLE_MEMBER, VIEWS[view], root, vroot)
    expect = {k: v for k, v in want.items() if k not in _ADMIN_ONLY}
    if minor < 90:
        expect.pop("OS-EXT-SRV-ATTR:hostname", None)
    _comparable(got, expect, rec)
    strict_equal(got, expect)


def test_every_sample_folder_is_covered():
    cases = {os.path.dirname(p.values[0]) for p in _sample_cases()}
    folders = {os.path.dirname(p) for p in glob.glob(SAMPLES + "/servers/**/server-get-resp.json",
                                                       recursive=True)}
    assert folders <= cases and len(cases) >= 17


# -- records built by hand --------------------------------------------------------------------

def make(**fields) -> dict:
    base = {"id": "0e44cc9c-e052-415d-afbf-469b0d384170", "project_id": PROJECT,
            "user_id": "fake", "name": "srv", "created_at": "2013-09-03T04:01:32.123456",
            "vm_state": "active", "host": "compute", "hostname": "srv",
            "flavor": {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1,
                       "extra_specs": {"hw:numa_nodes": "1"}},
            "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b",
                      "properties": {"architecture": "x86_64", "os_distro": None}},
            "volumes_attached": [{"id": "v1", "delete_on_termination": True}],
            "security_groups": ["default"], "host_status": "UP"}
    base.update(fields)
    return normalize(base)


def doc(rec, minor, role="member", view="show"):
    return assemble(render_server(rec), minor, ROLES[role], VIEWS[view])


# (key, first minor, roles that see it, views that show it)
BOUNDARIES = [
    ("OS-EXT-SRV-ATTR:reservation_id", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:launch_index", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:kernel_id", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:ramdisk_id", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:root_device_name", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:user_data", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:hostname", 3, ("admin",), ("show", "detail")),
    ("OS-EXT-SRV-ATTR:hostname", 90, ("member",), ("show", "detail")),
    ("locked", 9, ("admin", "member"), ("show", "detail")),
    ("host_status", 16, ("admin",), ("show", "detail")),
    ("description", 19, ("admin", "member"), ("show", "detail")),
    ("tags", 26, ("admin", "member"), ("show", "detail")),
    ("trusted_image_certificates", 63, ("admin", "member"), ("show", "detail")),
    ("server_groups", 71, ("admin", "member"), ("show",)),
    ("locked_reason", 73, ("admin", "member"), ("show", "detail")),
    ("pinned_availability_zone", 96, ("admin", "member"), ("show", "detail")),
    ("scheduler_hints", 100, ("admin", "member"), ("show", "detail")),
]


@pytest.mark.parametrize("key,minor,roles,views", BOUNDARIES,
                         ids=["%s@%d/%s" % (b[0], b[1], b[2][0]) for b in BOUNDARIES])
def test_boundary(key, minor, roles, views):
    rec = make()
    for role in ("admin", "member"):
        for view in ("show", "detail", "index"):
            wanted = role in roles and view in views
            assert key not in doc(rec, minor - 1, role, view) or (
                role == "admin" and key == "OS-EXT-SRV-ATTR:hostname" and minor == 90)
            assert (key in doc(rec, minor, role, view)) == (wanted or (
                role == "admin" and view != "index" and key == "OS-EXT-SRV-ATTR:hostname")), (
                role, view)
            assert (key in doc(rec, 104, role, view)) == (key in doc(rec, MAX_MINOR, role, view))


def test_flavor_embedded_from_2_47():
    rec = make()
    old = doc(rec, 46)["flavor"]
    assert old == {"id": "1", "links": [{"href": ROOT.decode() + "/flavors/1", "rel": "bookmark"}]}
    for role in ROLES:  # servers:show:flavor-extra-specs is PROJECT_READER_OR_ADMIN
        strict_equal(doc(rec, 47, role)["flavor"], {
            "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0,
            "original_name": "m1.tiny", "extra_specs": {"hw:numa_nodes": "1"}})


def test_image_properties_from_2_98():
    rec = make()
    assert "properties" not in doc(rec, 97)["image"]
    assert doc(rec, 98)["image"]["properties"] == {"architecture": "x86_64"}
    assert doc(rec, 98)["image"]["links"][0]["href"].endswith(
        "/images/70a599e0-31e7-49b7-b260-868f441e862b")
    bfv = make(image=None)
    assert doc(bfv, 1)["image"] == "" and doc(bfv, 104)["image"] == ""


def test_volumes_delete_on_termination_from_2_3():
    rec = make()
    assert doc(rec, 2)["os-extended-volumes:volumes_attached"] == [{"id": "v1"}]
    assert doc(rec, 3)["os-extended-volumes:volumes_attached"] == [
        {"id": "v1", "delete_on_termination": True}]


def test_member_never_sees_admin_fields():
    rec = make()
    for minor in range(0, 105):
        for view in ("show", "detail"):
            got = doc(rec, minor, "member", view)
            assert not set(got) & set(_ADMIN_ONLY), minor
            assert ("OS-EXT-SRV-ATTR:hostname" in got) == (minor >= 90)


def test_index_is_id_name_links():
    rec = make()
    for minor in (1, 47, 90, 104):
        for role in ROLES:
            got = doc(rec, minor, role, "index")
            assert list(got) == ["id", "name", "links"]
            assert got["links"] == [
                {"href": VROOT.decode() + "/servers/" + rec["id"], "rel": "self"},
                {"href": ROOT.decode() + "/servers/" + rec["id"], "rel": "bookmark"}]


def test_no_key_twice_anywhere():
    rec = make(vm_state="error", fault={"code": 500, "message": "m", "details": "tb",
                                        "created": "2013-09-03T04:01:32.5"})
    for minor in range(0, MAX_MINOR + 1):
        for role in ROLES:
            for view in VIEWS:
                doc(rec, minor, role, view)  # the parse hook rejects duplicate keys


def test_fault_details_rules():
    tb = {"code": 500, "message": "boom", "details": "Traceback", "created": "2013-09-03 04:01:32"}
    rec = make(vm_state="error", fault=tb)
    assert doc(rec, 1, "admin")["fault"] == {
        "code": 500, "message": "boom", "details": "Traceback", "created": "2013-09-03T04:01:32Z"}
    assert doc(rec, 1, "member")["fault"] == {
        "code": 500, "message": "boom", "created": "2013-09-03T04:01:32Z"}
    rec = make(vm_state="error", fault=dict(tb, code=404))
    assert doc(rec, 1, "member", "detail")["fault"]["details"] == "Traceback"
    rec = make(vm_state="error", fault=dict(tb, details=""))
    assert "details" not in doc(rec, 1, "admin")["fault"]


def test_fault_only_when_error_or_deleted():
    fault = {"code": 500, "message": "boom", "created": "2013-09-03T04:01:32"}
    assert "fault" not in doc(make(fault=fault), 1, "admin")
    # error + rebuilding shows REBUILD, so no fault (nova keys on the status, not the vm_state)
    rebuilding = doc(make(vm_state="error", task_state="rebuilding", fault=fault), 1)
    assert rebuilding["status"] == "REBUILD" and "fault" not in rebuilding
    deleted = doc(make(deleted=True, fault=fault), 1)
    assert deleted["status"] == "DELETED" and deleted["fault"]["code"] == 500
    assert "fault" not in doc(make(vm_state="error"), 1)


def test_progress_only_for_progress_statuses():
    assert doc(make(progress=40), 1)["progress"] == 40
    assert doc(make(vm_state="building"), 1)["progress"] == 0
    assert "progress" not in doc(make(vm_state="stopped"), 1)
    assert "progress" not in doc(make(vm_state="error"), 1)


def test_addresses_hidden_while_building():
    addrs = {"net": [{"addr": "203.0.113.5", "version": 4, "type": "floating", "mac": "m"},
                     {"addr": "10.0.0.3", "version": 4, "type": "fixed", "mac": "m"}]}
    assert doc(make(vm_state="building", addresses=addrs), 1)["addresses"] == {}
    shown = doc(make(addresses=addrs), 1)["addresses"]["net"]
    assert [a["OS-EXT-IPS:type"] for a in shown] == ["fixed", "floating"]


def test_security_groups_absent_when_none():
    assert "security_groups" not in doc(make(security_groups=[]), 1)
    assert doc(make(), 1)["security_groups"] == [{"name": "default"}]


def test_host_id_is_novas_hash():
    # servers/v2.47/server-get-resp.json: host "compute" in the samples' project.
    assert host_id(PROJECT, "compute") == \
        "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6"
    assert host_id(PROJECT, None) == "" and doc(make(host=None), 1)["hostId"] == ""
    assert host_id("p", "h") == hashlib.sha224(b"ph").hexdigest()


def test_times():
    got = doc(make(updated_at="2013-09-03T05:00:00.9", launched_at="2013-09-03T04:01:40"), 1)
    assert got["created"] == "2013-09-03T04:01:32Z"
    assert got["updated"] == "2013-09-03T05:00:00Z"
    assert got["OS-SRV-USG:launched_at"] == "2013-09-03T04:01:40.000000"
    assert doc(make(), 1)["updated"] == "2013-09-03T04:01:32Z"  # never updated: created


def test_admin_host_status_empty_without_host():
    assert doc(make(host=None, host_status=""), 16, "admin")["host_status"] == ""


def test_links_keep_markers_out_of_json_escapes():
    rec = make()
    pieces = render_server(rec)
    joined = b"".join(p[3] for p in pieces)
    assert b"\\u0001" not in joined and b"\\u0002" not in joined
    assert b"\x01/servers/" + rec["id"].encode() in joined


# -- status ------------------------------------------------------------------------------------

STATUS_CASES = [
    ("active", None, "ACTIVE"), ("active", "rebooting", "REBOOT"),
    ("active", "reboot_started_hard", "HARD_REBOOT"), ("active", "updating_password", "PASSWORD"),
    ("active", "rebuild_spawning", "REBUILD"), ("active", "migrating", "MIGRATING"),
    ("active", "resize_finish", "RESIZE"), ("active", "image_snapshot", "ACTIVE"),
    ("building", "spawning", "BUILD"), ("stopped", None, "SHUTOFF"),
    ("stopped", "resize_prep", "RESIZE"), ("stopped", "rebuilding", "REBUILD"),
    ("resized", None, "VERIFY_RESIZE"), ("resized", "resize_reverting", "REVERT_RESIZE"),
    ("resized", "resize_confirming", "VERIFY_RESIZE"), ("paused", "migrating", "MIGRATING"),
    ("paused", None, "PAUSED"), ("suspended", None, "SUSPENDED"), ("rescued", None, "RESCUE"),
    ("error", None, "ERROR"), ("error", "rebuilding", "REBUILD"), ("deleted", None, "DELETED"),
    ("soft-delete", None, "SOFT_DELETED"), ("shelved", None, "SHELVED"),
    ("shelved_offloaded", "unshelving", "SHELVED_OFFLOADED"), ("bogus", None, "UNKNOWN"),
    (None, None, "UNKNOWN"),
]


@pytest.mark.parametrize("vm_state,task_state,status", STATUS_CASES)
def test_server_status(vm_state, task_state, status):
    assert server_status(vm_state, task_state) == status


def test_status_reverse_map():
    assert states_for_statuses(["reboot"]) == (
        ["active"], ["reboot_pending", "reboot_started", "rebooting"])
    assert states_for_statuses(["RESIZE"]) == (
        ["active", "stopped"],
        ["resize_finish", "resize_migrated", "resize_migrating", "resize_prep"])
    assert states_for_statuses(["nope"]) == ([], [])
    # "default" in the task states: nova drops the task_state condition altogether.
    assert status_filter(["ACTIVE"]) == (["active"], None)
    assert status_filter(["SHUTOFF", "REBOOT"]) == (["active", "stopped"], None)
    assert status_filter(["HARD_REBOOT"]) == (
        ["active"], ["reboot_pending_hard", "reboot_started_hard", "rebooting_hard"])
    assert status_filter(["MIGRATING"]) == (["active", "paused"], ["migrating"])
    assert status_filter(["unknown-thing"]) is None
