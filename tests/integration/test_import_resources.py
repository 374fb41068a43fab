"""import-nova for issue 20's resources: key pairs, server groups, quotas, services with their
zones, instance actions and events, from nova's own tables (tests/nova_schema.sql) in the real
PostgreSQL; the imported store is then served by the real ``fastnova serve`` and answers as
nova's API would."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from fastnova.importer.run import import_nova
from tests.conftest import Api
from tests.daily_support import Client
from tests.server import running_server
from tests.import_support import ENGINES, NovaDeployment
PROJECT = "6f70656e737461636b20342065766572"
FAKE = "fake:" + PROJECT
ADMIN = "admin:" + PROJECT
PUB = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8J"
       "ttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrx"
       "EsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova")


@pytest.fixture(params=ENGINES)
def nova(request):
    dep = NovaDeployment(engine=request.param)
    yield dep
    dep.drop()


def _fill(nova):
    when = dt.datetime(2024, 5, 2, 10, 0, 0)      # MySQL DATETIME keeps no fraction
    nova.insert("api", "key_pairs", name="kp1", user_id="fake", fingerprint="1e:2c", type="ssh",
                public_key=PUB, created_at=when)
    server = nova.add_instance()
    group = nova.insert("api", "instance_groups", uuid="5bbcc3c4-1da2-4437-a48a-66f15b1b13f9",
                        name="grp", user_id="fake", project_id=PROJECT, created_at=when)
    nova.insert("api", "instance_group_policy", policy="anti-affinity", group_id=group["id"],
                rules='{"max_server_per_host": 3}')
    nova.insert("api", "instance_group_member", instance_uuid=server["uuid"],
                group_id=group["id"])
    nova.insert("api", "quotas", project_id=PROJECT, resource="instances", hard_limit=7)
    nova.insert("api", "project_user_quotas", project_id=PROJECT, user_id="fake",
                resource="cores", hard_limit=5)
    nova.add_service(host="compute")
    nova.add_service(host="compute2", disabled=True)
    nova.insert("cell1", "services", host="conductor", binary="nova-conductor",
                topic="conductor", last_seen_up=dt.datetime.utcnow())
    nova.add_aggregate_az("compute", "az-east")
    action = nova.insert("cell1", "instance_actions", action="create",
                         instance_uuid=server["uuid"], request_id="req-imported-1",
                         user_id="fake", project_id=PROJECT, start_time=when,
                         created_at=when, updated_at=when + dt.timedelta(seconds=5))
    nova.insert("cell1", "instance_actions_events", event="compute__do_build_and_run_instance",
                action_id=action["id"], start_time=when + dt.timedelta(seconds=1),
                finish_time=when + dt.timedelta(seconds=5), result="Success", host="compute")
    return server["uuid"]


def test_imported_cloud_answers_as_its_nova_api(nova, tmp_path):
    uuid = _fill(nova)
    data = str(tmp_path / "data")
    stats = import_nova(nova.url("api"), nova.cell_urls(), data, out=open(os.devnull, "w"))
    assert stats.resources["key_pairs"] == 1 and stats.resources["server_groups"] == 1
    assert stats.resources["instance_actions"] == 1 and stats.resources["services"] == 3
    with running_server(workers=1, demo=0, extra_args=("--data-dir", data)) as srv:
        c = Client(Api(srv.port, data, srv.log_path))
        status, doc = c.call("GET", "/v2.1/os-keypairs/kp1", token=FAKE, version="2.2")
        assert status == 200 and doc["keypair"]["public_key"] == PUB
        assert doc["keypair"]["created_at"] == "2024-05-02T10:00:00.000000"
        group = c.call("GET", "/v2.1/os-server-groups/5bbcc3c4-1da2-4437-a48a-66f15b1b13f9",
                       token=FAKE, version="2.64")[1]["server_group"]
        assert group["policy"] == "anti-affinity" and group["rules"] == {
            "max_server_per_host": 3}
        assert group["members"] == [uuid]
        quota = c.call("GET", "/v2.1/os-quota-sets/" + PROJECT, token=FAKE)[1]["quota_set"]
        assert quota["instances"] == 7
        mine = c.call("GET", "/v2.1/os-quota-sets/%s?user_id=fake" % PROJECT,
                      token=FAKE)[1]["quota_set"]
        assert mine["cores"] == 5 and mine["instances"] == 7
        zones = c.call("GET", "/v2.1/os-availability-zone/detail", token=ADMIN)[1]
        by_name = {z["zoneName"]: z for z in zones["availabilityZoneInfo"]}
        assert by_name["az-east"]["hosts"]["compute"]["nova-compute"]["available"] is True
        assert "conductor" in by_name["internal"]["hosts"]
        acts = c.call("GET", "/v2.1/servers/%s/os-instance-actions" % uuid, token=FAKE)[1]
        assert [a["request_id"] for a in acts["instanceActions"]] == ["req-imported-1"]
        shown = c.call("GET", "/v2.1/servers/%s/os-instance-actions/req-imported-1" % uuid,
                       token=ADMIN, version="2.62")[1]["instanceAction"]
        event = shown["events"][0]
        assert event["event"] == "compute__do_build_and_run_instance"
        assert event["finish_time"] == "2024-05-02T10:00:05.000000" and event["host"] == \
            "compute"
