"""The server "status" field: nova's mapping from (vm_state, task_state), and back for filters.

The forward map decides what "status" a server shows; the reverse map is what a ``status=X``
list filter turns into (a vm_state set and a task_state set).  Both are nova's table
(nova/api/openstack/common.py, ``_STATE_MAP``) restated as data: a vm_state gives a default
status, and some task_states override it.
"""
from __future__ import annotations

from fastnova.record import canonical_time, isotime

# "default" is the key nova uses for "no overriding task_state"; the reverse map reports it too,
# because nova's servers controller drops the task_state filter when it appears (see below).
DEFAULT = "default"

_REBOOT = ("rebooting", "reboot_pending", "reboot_started")
_HARD_REBOOT = ("rebooting_hard", "reboot_pending_hard", "reboot_started_hard")
_REBUILD = ("rebuilding", "rebuild_block_device_mapping", "rebuild_spawning")
_RESIZE = ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish")


def _tasks(status: str, task_states) -> dict[str, str]:
    return {task: status for task in task_states}


STATE_MAP: dict[str, dict[str, str]] = {
    "active": {
        DEFAULT: "ACTIVE",
        **_tasks("REBOOT", _REBOOT),
        **_tasks("HARD_REBOOT", _HARD_REBOOT),
        "updating_password": "PASSWORD",
        **_tasks("REBUILD", _REBUILD),
        "migrating": "MIGRATING",
        **_tasks("RESIZE", _RESIZE),
    },
    "building": {DEFAULT: "BUILD"},
    "stopped": {
        DEFAULT: "SHUTOFF",
        **_tasks("RESIZE", _RESIZE),
        **_tasks("REBUILD", _REBUILD),
    },
    # nova leaves resize_confirming out on purpose (the API never had CONFIRMING_RESIZE).
    "resized": {DEFAULT: "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {DEFAULT: "PAUSED", "migrating": "MIGRATING"},
    "suspended": {DEFAULT: "SUSPENDED"},
    "rescued": {DEFAULT: "RESCUE"},
    "error": {DEFAULT: "ERROR", **_tasks("REBUILD", _REBUILD)},
    "deleted": {DEFAULT: "DELETED"},
    "soft-delete": {DEFAULT: "SOFT_DELETED"},
    "shelved": {DEFAULT: "SHELVED"},
    "shelved_offloaded": {DEFAULT: "SHELVED_OFFLOADED"},
}

_UNKNOWN = {DEFAULT: "UNKNOWN"}


def server_status(vm_state: str | None, task_state: str | None) -> str:
    """The API status of a server; "UNKNOWN" for a vm_state nova does not know."""
    task_map = STATE_MAP.get(vm_state, _UNKNOWN)
    return task_map.get(task_state, task_map[DEFAULT])


def record_status(rec: dict) -> str:
    """Status of a canonical record: a soft-deleted row is DELETED whatever its states say."""
    if rec.get("deleted"):
        return "DELETED"
    return server_status(rec.get("vm_state"), rec.get("task_state"))


def _reverse() -> dict[str, tuple[frozenset, frozenset]]:
    out: dict[str, tuple[set, set]] = {}
    for vm_state, task_map in STATE_MAP.items():
        for task_state, status in task_map.items():
            vms, tasks = out.setdefault(status, (set(), set()))
            vms.add(vm_state)
            tasks.add(task_state)
    return {status: (frozenset(v), frozenset(t)) for status, (v, t) in out.items()}


# status -> (vm_states, task_states), task_states possibly holding DEFAULT.
STATUS_STATES: dict[str, tuple[frozenset, frozenset]] = _reverse()


def states_for_statuses(statuses) -> tuple[list[str], list[str]]:
    """nova's ``task_and_vm_state_from_status``: the sorted vm_states and task_states (which may
    include "default") that the given statuses (any case) map to.  Both empty: unknown status
    (nova answers 400 from 2.38, an empty list before)."""
    vms: set[str] = set()
    tasks: set[str] = set()
    for status in {s.upper() for s in statuses}:
        pair = STATUS_STATES.get(status)
        if pair:
            vms |= pair[0]
            tasks |= pair[1]
    return sorted(vms), sorted(tasks)


def status_filter(statuses) -> tuple[list[str], list[str] | None] | None:
    """What a ``status=`` list filter selects, exactly as nova's servers controller applies it:
    ``(vm_states, task_states)`` meaning vm_state IN vm_states AND task_state IN task_states,
    where task_states None means no task_state condition.  None: no status matched.

    nova drops the task_state condition whenever "default" is among the task states, so
    ``status=ACTIVE`` also returns servers that show REBOOT, RESIZE, ... (a known nova quirk that
    clients observe; kept for compatibility).
    """
    vms, tasks = states_for_statuses(statuses)
    if not vms and not tasks:
        return None
    if DEFAULT in tasks:
        return vms, None
    return vms, tasks


def fault_doc(fault: dict, with_details: bool) -> dict:
    """The "fault" member of a server in ERROR (or DELETED with a fault): code, created and
    message, and "details" where the caller may see them.  Shared by the pure parts
    (fastnova.views.servers) and the compiled ones (_render.pyx); a fault is rare, so the
    compiled module calls this rather than keeping a copy."""
    created = fault.get("created") or fault.get("created_at")
    doc = {
        "code": fault.get("code"),
        "created": isotime(canonical_time(created)) if created else None,
        "message": fault.get("message"),
    }
    if with_details:
        doc["details"] = fault["details"]
    return doc
