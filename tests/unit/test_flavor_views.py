"""Flavor documents rendered at write time, checked against nova's flavors/ API samples."""
from __future__ import annotations

import glob
import json
import os

import pytest

from fastnova.store.layout import MAX_MINOR
from fastnova.views.flavors import flavor_sort_key, render_flavor
from tests.unit.test_views import (ROLES, ROOT, SAMPLES, VIEWS, VROOT, assemble, link_prefixes,
                              sample_minor, strict_equal)

_FILES = {"flavor-get-resp.json": ("show", "flavor"),
          "flavors-detail-resp.json": ("detail", "flavors"),
          "flavors-list-resp.json": ("index", "flavors")}


def frec_from_sample(doc: dict) -> dict:
    """A flavor record holding the data the sample shows (defaults for what it does not)."""
    return {
        "id": doc["id"], "name": doc["name"],
        "vcpus": doc.get("vcpus", 1), "ram": doc.get("ram", 512), "disk": doc.get("disk", 1),
        "ephemeral": doc.get("OS-FLV-EXT-DATA:ephemeral", 0),
        "swap": doc.get("swap") or 0,
        "rxtx_factor": doc.get("rxtx_factor", 1.0),
        "is_public": doc.get("os-flavor-access:is_public", True),
        "disabled": doc.get("OS-FLV-DISABLED:disabled", False),
        "description": doc.get("description"),
        "extra_specs": doc.get("extra_specs", {}),
    }


def _cases():
    for path in sorted(glob.glob(SAMPLES + "/flavors/**/*.json", recursive=True)):
        if os.path.basename(path) in _FILES:
            yield pytest.param(path, id=os.path.relpath(path, SAMPLES))


@pytest.mark.parametrize("path", list(_cases()))
@pytest.mark.parametrize("role", ["admin", "member"])
def test_sample(path, role):
    view, top = _FILES[os.path.basename(path)]
    with open(path) as f:
        body = json.load(f)
    docs = [body[top]] if top == "flavor" else body[top]
    minor = sample_minor(os.path.dirname(path))
    assert docs
    for want in docs:
        root, vroot = link_prefixes(want)
        # Flavor documents do not differ by role: extra_specs (os-flavor-extra-specs:index) is
        # PROJECT_READER_OR_ADMIN.
        got = assemble(render_flavor(frec_from_sample(want)), minor, ROLES[role], VIEWS[view],
                       root, vroot)
        strict_equal(got, want)


def test_all_sample_folders_covered():
    folders = {os.path.dirname(p.values[0]) for p in _cases()}
    assert {os.path.basename(f) for f in folders} == {"flavors", "v2.55", "v2.61", "v2.75",
                                                     "v2.102"}


FLAVOR = {"id": "7", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20, "ephemeral": 0,
          "swap": 0, "rxtx_factor": 1.0, "is_public": True, "disabled": False,
          "description": "test description", "extra_specs": {"hw:numa_nodes": "1"}}


def fdoc(minor, view="show", role="member", **changes):
    return assemble(render_flavor(dict(FLAVOR, **changes)), minor, ROLES[role], VIEWS[view])


def test_index_view():
    assert list(fdoc(54, "index")) == ["id", "name", "links"]
    assert fdoc(55, "index")["description"] == "test description"
    assert fdoc(1, "index")["links"] == [
        {"href": VROOT.decode() + "/flavors/7", "rel": "self"},
        {"href": ROOT.decode() + "/flavors/7", "rel": "bookmark"}]


@pytest.mark.parametrize("view", ["show", "detail"])
def test_boundaries(view):
    assert "description" not in fdoc(54, view) and fdoc(55, view)["description"]
    assert "extra_specs" not in fdoc(60, view)
    for role in ROLES:
        assert fdoc(61, view, role)["extra_specs"] == {"hw:numa_nodes": "1"}
    strict_equal(fdoc(74, view)["swap"], "")
    strict_equal(fdoc(75, view)["swap"], 0)
    strict_equal(fdoc(74, view, swap=512)["swap"], 512)
    for key in ("rxtx_factor", "OS-FLV-DISABLED:disabled"):
        assert key in fdoc(101, view) and key not in fdoc(102, view)
    assert fdoc(104, view) == fdoc(MAX_MINOR, view)


def test_zero_rxtx_factor_is_empty_string():
    strict_equal(fdoc(1, rxtx_factor=0.0)["rxtx_factor"], "")
    strict_equal(fdoc(1, rxtx_factor=2.5)["rxtx_factor"], 2.5)


def test_description_null_and_flags():
    got = fdoc(55, description=None, is_public=False, disabled=True)
    assert got["description"] is None
    assert got["os-flavor-access:is_public"] is False and got["OS-FLV-DISABLED:disabled"] is True


def test_default_order_is_flavorid_string_ascending():
    ids = ["2", "10", "1", "m1.tiny", "a"]
    ordered = sorted(ids, key=lambda i: flavor_sort_key({"id": i}))
    assert ordered == ["1", "10", "2", "a", "m1.tiny"]
