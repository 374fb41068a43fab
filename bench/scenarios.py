"""The standard read scenarios: what is requested, by whom, and how each answer is checked.

Pages of 1000 are asked for by an admin with ``all_tenants=1``: the demo data spreads servers over
five projects, so in a 1,000-server store a member's project holds only 200 and a member's
``limit=1000`` page would be a fifth of the size of the same page in a 1,000,000-server store,
which would make the store-size comparison meaningless.
"""
from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from fastnova import demo

MEMBER_PROJECT = demo.PROJECTS[0][0]
MEMBER_TOKEN = "%s:%s" % (demo.PROJECTS[0][1][0], MEMBER_PROJECT)
ADMIN_TOKEN = "admin:%s" % MEMBER_PROJECT
SHOW_IDS = 1000           # distinct ids the show scenario rotates through


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str             # "{id}" is replaced by each of the rotated server ids
    admin: bool = False
    status_filter: str | None = None   # the filter a response must honour, if any

    def paths(self, prefix: str, ids: list[str]) -> list[str]:
        if "{id}" in self.path:
            return [prefix + self.path.replace("{id}", i) for i in ids]
        return [prefix + self.path]


SCENARIOS = [
    Scenario("show", "/v2.1/servers/{id}"),
    Scenario("index100", "/v2.1/servers?limit=100"),
    Scenario("index1000", "/v2.1/servers?limit=1000&all_tenants=1", admin=True),
    Scenario("detail100", "/v2.1/servers/detail?limit=100"),
    Scenario("detail1000", "/v2.1/servers/detail?limit=1000&all_tenants=1", admin=True),
    Scenario("detail100_active", "/v2.1/servers/detail?limit=100&status=ACTIVE",
             status_filter="ACTIVE"),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def select(names: str) -> list[Scenario]:
    if names == "all":
        return list(SCENARIOS)
    unknown = [n for n in names.split(",") if n not in BY_NAME]
    if unknown:
        raise SystemExit("unknown scenario(s) %s; known: %s" % (unknown, ", ".join(BY_NAME)))
    return [BY_NAME[n] for n in names.split(",")]


def demo_ids(count: int, how_many: int = SHOW_IDS) -> list[str]:
    """Ids of the member project's servers spread evenly over the whole demo store.

    Spreading them (rather than taking the newest page) makes a show touch pages all over a
    1,000,000-server file, which is the honest test of "the store's size does not matter".
    demo.server(i) belongs to PROJECTS[i % 5], so member indices are the multiples of 5.
    """
    members = range(0, count, len(demo.PROJECTS))
    step = max(1, len(members) // how_many)
    return [demo.server(i)["id"] for i in members[::step][:how_many]]


def fetch(url: str, token: str, timeout: float = 120.0) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def discover_ids(base: str, prefix: str, token: str, how_many: int = SHOW_IDS) -> list[str]:
    """Server ids visible to ``token`` on any nova-compatible endpoint (the first page)."""
    status, _ctype, body = fetch("%s%s/v2.1/servers?limit=%d" % (base, prefix, how_many), token)
    if status != 200:
        raise RuntimeError("listing servers on %s answered %d: %r" % (base, status, body[:200]))
    return [s["id"] for s in json.loads(body)["servers"]]


def check_filter(scenario: Scenario, body: bytes) -> tuple[bool | None, str]:
    """(applied?, note) for a filtered scenario: did every returned server match?"""
    if scenario.status_filter is None:
        return None, ""
    servers = json.loads(body).get("servers", [])
    # nova filters status by vm_state: status=ACTIVE also returns active servers whose task
    # shows them as REBOOT, RESIZE, … (fastnova/views/status.py), so check the vm_state.
    vm_state = scenario.status_filter.lower()
    wrong = sorted({s.get("status") for s in servers
                    if s.get("OS-EXT-STS:vm_state", vm_state) != vm_state})
    if not servers:
        return None, "filter returned no servers"
    if wrong:
        return False, ("filter not applied by the server (answer holds status %s): measured as "
                       "an unfiltered page" % ", ".join(map(str, wrong)))
    return True, ""
