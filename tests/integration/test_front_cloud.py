"""fastnova in front of a real nova 34 cloud (tests/cloud): front mode, import, reconcile.

fastnova runs ``--commands upstream --upstream <nova-api>`` and follows nova's versioned
notifications from the cloud's RabbitMQ vhost (cellfeed ``--decoder nova``).  Commands go to nova
with the keystone token the client got; nova accepts them and fastnova's store shows the change
before fastnova answers.  Every server here boots with ``networks: none`` (the neutron stand-in,
tests/cloud/neutron_standin.py).
"""
from __future__ import annotations

import time

import pytest

from tests.cloud.client import call, differences, fastnova, front_of, serving, wait_for

NETWORKLESS = "2.37"          # "networks": "none" needs 2.37
# The first test pays the session cloud's start-up (keystone, placement, glance, nova: 3-7
# minutes on a loaded 2-core machine), which pytest-timeout counts against that test.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def cloud(nova_cloud):
    return nova_cloud


@pytest.fixture(scope="module")
def front(cloud, tmp_path_factory):
    """fastnova serve in front mode, its store first filled by import-nova from the cloud."""
    data = str(tmp_path_factory.mktemp("front-cloud") / "data")
    with front_of(cloud, data, "fastnova.nova.%s" % cloud.tag) as srv:
        yield srv


class Tokens:
    """A real keystone token (commands: nova checks it) and what fastnova's identity scheme
    takes for the same user (reads)."""

    def __init__(self, cloud):
        self.nova = cloud.token()
        self.read = "demo:%s" % cloud.demo_project_id


@pytest.fixture(scope="module")
def tokens(cloud):
    return Tokens(cloud)


def _status(base, sid, token, version="2.1"):
    got = call(base, "GET", "/servers/" + sid, token, version=version)
    return got.json()["server"]["status"] if got.status == 200 else got.status


def _boot(base, cloud, token, name, **extra):
    server = {"name": name, "flavorRef": "1", "imageRef": cloud.image_id, "networks": "none"}
    server.update(extra)
    got = call(base, "POST", "/servers", token, {"server": server}, version=NETWORKLESS)
    assert got.status == 202, got
    return got.json()["server"]["id"]


def _act(base, sid, token, action, version="2.1"):
    got = call(base, "POST", "/servers/%s/action" % sid, token, action, version=version)
    assert got.status in (202, 204), (action, got)
    return got


def test_server_life_cycle_through_fastnova(cloud, front, tokens):
    fn, nova = front.url + "/v2.1", cloud.compute_url
    sid = _boot(fn, cloud, tokens.nova, "life")

    # read-your-writes: the store has the server before fastnova answered the create
    first = call(fn, "GET", "/servers/" + sid, tokens.read, version="latest")
    assert first.status == 200, first
    assert first.json()["server"]["status"] in ("BUILD", "ACTIVE")
    listed = call(fn, "GET", "/servers/detail", tokens.read).json()["servers"]
    assert sid in [s["id"] for s in listed]

    wait_for(lambda: _status(nova, sid, tokens.nova) == "ACTIVE", 120, "nova: ACTIVE")
    seen = time.monotonic()
    wait_for(lambda: _status(fn, sid, tokens.read) == "ACTIVE", 30, "fastnova: ACTIVE")
    print("ACTIVE in fastnova %.3f s after nova-api showed it" % (time.monotonic() - seen))

    # rename, metadata, tags: visible in fastnova's next answer
    got = call(fn, "PUT", "/servers/" + sid, tokens.nova, {"server": {"name": "renamed"}})
    assert got.status == 200 and got.json()["server"]["name"] == "renamed"
    assert call(fn, "GET", "/servers/" + sid, tokens.read).json()["server"]["name"] == "renamed"
    got = call(fn, "POST", "/servers/%s/metadata" % sid, tokens.nova, {"metadata": {"k": "v"}})
    assert got.status == 200, got
    assert call(fn, "GET", "/servers/" + sid, tokens.read).json()["server"]["metadata"] == {
        "k": "v"}
    got = call(fn, "PUT", "/servers/%s/tags/blue" % sid, tokens.nova, version="2.26")
    assert got.status == 201, got
    shown = call(fn, "GET", "/servers/" + sid, tokens.read, version="2.26").json()["server"]
    assert shown["tags"] == ["blue"]

    # lock and unlock: the lock is visible at once
    _act(fn, sid, tokens.nova, {"lock": None})
    assert call(fn, "GET", "/servers/" + sid, tokens.read, version="2.9").json()[
        "server"]["locked"] is True
    _act(fn, sid, tokens.nova, {"unlock": None})
    assert call(fn, "GET", "/servers/" + sid, tokens.read, version="2.9").json()[
        "server"]["locked"] is False

    for action, settled in (({"reboot": {"type": "SOFT"}}, "ACTIVE"), ({"os-stop": None},
                            "SHUTOFF"), ({"os-start": None}, "ACTIVE"),
                            ({"resize": {"flavorRef": "2"}}, "VERIFY_RESIZE"),
                            ({"confirmResize": None}, "ACTIVE")):
        _act(fn, sid, tokens.nova, action)
        wait_for(lambda: _status(nova, sid, tokens.nova) == settled, 120, "nova: %s" % settled)
        wait_for(lambda: _status(fn, sid, tokens.read) == settled
                 and not call(fn, "GET", "/servers/" + sid, tokens.read).json()[
                     "server"]["OS-EXT-STS:task_state"], 30, "fastnova: %s" % settled)
    flavor = call(fn, "GET", "/servers/" + sid, tokens.read, version="latest").json()[
        "server"]["flavor"]
    assert flavor["original_name"] == "m1.small"

    # what fastnova does not serve reaches nova: a console log, the instance actions
    out = call(fn, "POST", "/servers/%s/action" % sid, tokens.nova, {"os-getConsoleOutput": {}})
    assert out.status == 200 and out.json()["output"], out
    events = call(fn, "GET", "/servers/%s/os-instance-actions" % sid, tokens.nova).json()
    assert {"create", "reboot", "stop", "start", "resize", "confirmResize"} <= {
        e["action"] for e in events["instanceActions"]}

    # a nova error passes through as nova wrote it
    bogus = {"no-such-action": None}
    ours = call(fn, "POST", "/servers/%s/action" % sid, tokens.nova, bogus)
    theirs = call(nova, "POST", "/servers/%s/action" % sid, tokens.nova, bogus)
    assert (ours.status, ours.body) == (theirs.status, theirs.body) and ours.status == 400

    got = call(fn, "DELETE", "/servers/" + sid, tokens.nova)
    assert got.status == 204, got
    after = call(fn, "GET", "/servers/" + sid, tokens.read)
    assert after.status == 404 or after.json()["server"]["OS-EXT-STS:task_state"] == "deleting"
    wait_for(lambda: call(fn, "GET", "/servers/" + sid, tokens.read).status == 404, 60,
             "fastnova: the deleted server gone")


def _compare_all(fn, nova, token_ours, token_nova, fn_base, nova_base) -> list[str]:
    found = []
    for version in ("2.1", "latest"):
        theirs = call(nova, "GET", "/servers/detail", token_nova, version=version).json()
        ours = call(fn, "GET", "/servers/detail", token_ours, version=version).json()
        found += ["detail@%s%s" % (version, d) for d in
                  differences(ours, theirs, fn_base, nova_base)]
        for server in theirs["servers"]:
            path = "/servers/" + server["id"]
            a = call(fn, "GET", path, token_ours, version=version).json()
            b = call(nova, "GET", path, token_nova, version=version).json()
            found += ["show@%s %s%s" % (version, server["id"][:8], d)
                      for d in differences(a, b, fn_base, nova_base)]
    return found


def test_import_then_reconcile_match_nova_field_by_field(cloud, tokens, tmp_path):
    """Servers in several states, made in nova directly; import-nova's store answers show and
    detail as nova-api does at 2.1 and latest.  Then a change whose notification fastnova never
    sees (no feed runs here) is repaired by reconcile."""
    nova = cloud.compute_url
    made = [_boot(nova, cloud, tokens.nova, "imp-%d" % i) for i in range(3)]
    try:
        _import_then_reconcile(cloud, tokens, tmp_path, nova, made)
    finally:                    # the demo project's quota is nova's default: 10 servers
        for sid in made:
            call(nova, "POST", "/servers/%s/action" % sid, tokens.nova, {"unlock": None})
            call(nova, "DELETE", "/servers/" + sid, tokens.nova)


def _import_then_reconcile(cloud, tokens, tmp_path, nova, made):
    for sid in made:
        wait_for(lambda: _status(nova, sid, tokens.nova) == "ACTIVE", 120, "nova: ACTIVE")
    call(nova, "PUT", "/servers/%s/tags/red" % made[0], tokens.nova, version="2.26")
    call(nova, "POST", "/servers/%s/metadata" % made[0], tokens.nova, {"metadata": {"a": "b"}})
    _act(nova, made[1], tokens.nova, {"os-stop": None})
    _act(nova, made[2], tokens.nova, {"lock": None})
    wait_for(lambda: _status(nova, made[1], tokens.nova) == "SHUTOFF", 120, "nova: SHUTOFF")

    data = str(tmp_path / "data")
    fastnova("import-nova", "--api-db", cloud.api_db_url, "--data-dir", data)
    with serving(("--data-dir", data), workers=1) as srv:
        fn = srv.url + "/v2.1"
        found = _compare_all(fn, nova, tokens.read, tokens.nova, srv.url, cloud.nova_url)
        assert found == [], "\n".join(found)

        # the dropped notification: a rename fastnova never hears of
        call(nova, "PUT", "/servers/" + made[2], tokens.nova, {"server": {"name": "moved"}})
        assert call(fn, "GET", "/servers/" + made[2], tokens.read).json()[
            "server"]["name"] == "imp-2"
        fastnova("reconcile", "--api-db", cloud.api_db_url, "--data-dir", data)
        wait_for(lambda: call(fn, "GET", "/servers/" + made[2], tokens.read).json()[
            "server"]["name"] == "moved", 30, "the reconciled name")
        found = _compare_all(fn, nova, tokens.read, tokens.nova, srv.url, cloud.nova_url)
        assert found == [], "\n".join(found)
