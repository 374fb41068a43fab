"""fastnova.record.normalize: the canonical record every writer hands to the store."""
import pytest

from fastnova.record import DEFAULTS, RecordError, merge, normalize

BASE = {"id": "7c0c9a6e-4a4b-4a43-9d0a-1f2d3c4b5a69", "project_id": "p", "user_id": "u",
        "created_at": "2026-01-02T03:04:05.000006", "flavor": {"id": 1, "name": "m1.tiny"}}


def test_defaults_filled_and_unknown_keys_dropped():
    rec = normalize(dict(BASE, bogus=1))
    assert "bogus" not in rec
    assert set(rec) == set(DEFAULTS) | set(BASE)
    assert rec["vm_state"] == "building" and rec["metadata"] == {} and rec["tags"] == []
    assert rec["flavor"]["id"] == "1" and rec["flavor"]["extra_specs"] == {}


def test_default_containers_are_never_shared():
    a, b = normalize(dict(BASE)), normalize(dict(BASE))
    a["metadata"]["k"] = "v"
    a["flavor"]["extra_specs"]["x"] = "y"
    assert b["metadata"] == {} and DEFAULTS["metadata"] == {}
    assert b["flavor"]["extra_specs"] == {}


def test_times_become_canonical_and_canonical_ones_stay():
    rec = normalize(dict(BASE, updated_at="2026-01-02T05:04:05+02:00",
                         launched_at="2026-01-02 03:04:05Z"))
    assert rec["created_at"] == "2026-01-02T03:04:05.000006"
    assert rec["updated_at"] == "2026-01-02T03:04:05.000000"       # to UTC
    assert rec["launched_at"] == "2026-01-02T03:04:05.000000"
    with pytest.raises(RecordError):
        normalize(dict(BASE, terminated_at="yesterday"))


def test_required_fields():
    for key in ("id", "project_id", "user_id", "created_at", "flavor"):
        with pytest.raises(RecordError):
            normalize({k: v for k, v in BASE.items() if k != key})


def test_merge_leaves_out_values_the_record_holds():
    old = normalize(dict(BASE, vm_state="active", progress=3, locked=True, metadata={"a": "1"}))
    new, changed = merge(old, {"vm_state": "active", "progress": 4, "name": "",
                               "metadata": {"a": "1"}}, 2)
    # Equal containers still count: equal is not always the same JSON ({"a": 1} == {"a": True}).
    assert changed == {"progress", "metadata"}
    assert (new["version"], new["progress"], new["vm_state"]) == (2, 4, "active")
    # Equal but of another type renders otherwise: 1 is not true, 0 is not 0.0.
    _, changed = merge(old, {"locked": 1, "progress": 3.0, "power_state": False}, 3)
    assert changed == {"locked", "progress", "power_state"}
