"""The whole path over the real RabbitMQ and PostgreSQL: fastnova serve --amqp --database, its
forwarder and cellfeed children, and ``cellfeed cell-sim``; driven by openstacksdk and
python-novaclient as a user would."""
from __future__ import annotations

import time

import pytest

from tests.commands_support import (IMAGE, PROJECT, Names, needs_broker, needs_pg,
                                         pg_schema, serve, PG_URL)

pytestmark = [needs_broker, needs_pg]


@pytest.fixture(scope="module")
def stack():
    names = Names()
    with pg_schema() as schema, serve(*names.serve_args(), "--database", PG_URL,
                                      "--db-schema", schema, workers=2) as srv:
        sim = names.cellsim()
        try:
            yield srv
        finally:
            sim.terminate()
            sim.wait(10)
            names.cleanup()


def _sdk(srv):
    import openstack
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token
    sess = session.Session(auth=Token(srv_url(srv) + "/v2.1", "demo:" + PROJECT))
    return openstack.connection.Connection(session=sess, compute_api_version="2.79",
                                           compute_endpoint_override=srv_url(srv) + "/v2.1")


def srv_url(srv):
    return "http://%s:%d" % (srv.host, srv.port)


def test_openstacksdk_create_wait_delete(stack):
    conn = _sdk(stack)
    server = conn.compute.create_server(name="sdk-vm", flavor_id="1", image_id=IMAGE,
                                        networks="auto")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=0.2)
    assert server.status == "ACTIVE" and server.addresses["private"]
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60, interval=0.2)
    assert conn.compute.find_server(server.id) is None


def test_novaclient_boot_reboot_delete(stack):
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token
    from novaclient import client
    sess = session.Session(auth=Token(srv_url(stack) + "/v2.1", "demo:" + PROJECT))
    nova = client.Client("2.79", session=sess, endpoint_override=srv_url(stack) + "/v2.1")
    server = nova.servers.create("nc-vm", IMAGE, "1", nics="auto")
    _wait(lambda: nova.servers.get(server.id).status == "ACTIVE")
    nova.servers.reboot(server.id, reboot_type="HARD")
    assert nova.servers.get(server.id).status == "HARD_REBOOT"
    _wait(lambda: nova.servers.get(server.id).status == "ACTIVE")
    nova.servers.delete(server.id)
    from novaclient import exceptions

    def gone():
        try:
            nova.servers.get(server.id)
            return False
        except exceptions.NotFound:
            return True
    _wait(gone)


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_console_events_and_zones_through_the_broker(stack):
    """Issue 20 over the real cell path: the console output is a call the cell-sim answers
    (call.reply through cellfeed), its instance action events arrive as action.event updates,
    and its hosts as service.upsert."""
    from novaclient import client
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token
    sess = session.Session(auth=Token(srv_url(stack) + "/v2.1", "demo:" + PROJECT))
    nova = client.Client("2.84", session=sess, endpoint_override=srv_url(stack) + "/v2.1")
    server = nova.servers.create("co-vm", IMAGE, "1", nics="none")
    _wait(lambda: nova.servers.get(server.id).status == "ACTIVE")
    output = nova.servers.get_console_output(server.id, length=1)
    assert output.strip().endswith("login:")

    def finished():
        acts = nova.instance_action.list(server.id)
        if not acts:
            return False
        act = nova.instance_action.get(server.id, acts[0].request_id)
        return bool(act.events) and all(e["finish_time"] for e in act.events)
    _wait(finished)
    zones = {z.zoneName for z in nova.availability_zones.list(detailed=False)}
    assert "nova" in zones
    nova.servers.delete(server.id)
