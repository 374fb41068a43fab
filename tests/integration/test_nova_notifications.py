"""nova's versioned notification samples -> cellfeed updates, and through RabbitMQ into the store.

The samples (../shared/nova-api-samples/notification_samples) factor payloads into
common_payloads/ with "$ref"; ``resolve`` restates nova's tests/json_ref.py: the referenced file,
recursively updated with the overriding keys beside the "$ref".
"""
from __future__ import annotations

import datetime as dt
import glob
import json
import os
import multiprocessing
import signal
import sys
import time
import uuid as uuidlib

import orjson
import pika
import pytest

from cellfeed import contract as C
from cellfeed import nova_notifications as N
from cellfeed import service
from cellfeed.service import Options
from fastnova.api.app import App, Request
from fastnova.importer.run import import_nova
from fastnova.store.reader import StoreReader
from tests.cellfeed_support import AMQP_URL, needs_broker
from tests.import_support import NovaDeployment, needs_pg
from tests.samples import SAMPLES as _SAMPLES

SAMPLES = str(_SAMPLES / "notification_samples")
UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"
PROJECT = "6f70656e737461636b20342065766572"


def _merge(base, over):
    for k, v in over.items():
        if k in base and isinstance(base[k], dict) and isinstance(v, dict):
            _merge(base[k], v)
        else:
            base[k] = v


def resolve(obj, base):
    if isinstance(obj, list):
        return [resolve(x, base) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "$ref" in obj:
        obj = dict(obj)
        path = os.path.join(base, obj.pop("$ref").partition("#")[0])
        with open(path) as f:
            target = resolve(json.load(f), os.path.dirname(path))
        _merge(target, resolve(obj, base))
        return target
    return {k: resolve(v, base) for k, v in obj.items()}


def sample(name: str) -> dict:
    with open(os.path.join(SAMPLES, name + ".json")) as f:
        return resolve(json.load(f), SAMPLES)


def envelope(msg: dict, emitted: str) -> bytes:
    """What oslo.messaging's rabbit driver puts on the wire for a v2 notification."""
    inner = dict(msg, message_id=str(uuidlib.uuid4()), timestamp=emitted,
                 _context_request_id="req-1", _context_user_id="fake",
                 _context_project_id=PROJECT, _unique_id=uuidlib.uuid4().hex)
    return orjson.dumps({"oslo.version": "2.0", "oslo.message": orjson.dumps(inner).decode()})


def decoded(name: str, emitted="2012-10-29 13:42:12.000000") -> list:
    return N.decode(envelope(sample(name), emitted))


# -- decoding every instance sample ----------------------------------------------------------------

INSTANCE_SAMPLES = sorted(os.path.basename(p)[:-5]
                          for p in glob.glob(os.path.join(SAMPLES, "instance-*.json")))


@pytest.mark.parametrize("name", INSTANCE_SAMPLES)
def test_every_instance_sample_decodes(name):
    updates = decoded(name)
    msg = sample(name)
    if msg["event_type"] == "instance.exists" or "uuid" not in msg["payload"]["nova_object.data"]:
        return
    assert updates, name
    assert {u["id"] for u in updates} == {UUID}
    for u in updates:                       # each survives the journal round trip
        assert C.decode(C.encode(u)) == [C.validate(u)]


def _patch(updates):
    return next(u for u in updates if u["kind"] == C.SERVER_PATCH)["changes"]


def test_actions_map_to_fields():
    assert _patch(decoded("instance-power_off-end"))["vm_state"] == "stopped"
    assert _patch(decoded("instance-power_off-end"))["power_state"] == 4
    lock = _patch(decoded("instance-lock-with-reason"))
    assert lock["locked"] is True and lock["locked_reason"] == "global warming"
    assert _patch(decoded("instance-unlock"))["locked"] is False
    resized = _patch(decoded("instance-resize_finish-end"))
    assert resized["flavor"]["name"] == "other_flavor" and resized["flavor"]["ram"] == 256
    assert resized["vm_state"] == "resized"
    assert _patch(decoded("instance-update-tags-action"))["tags"] == ["tag1"]
    assert "addresses" not in _patch(decoded("instance-pause-end"))
    created = decoded("instance-create-end")
    assert [u["kind"] for u in created] == [C.SERVER_PATCH, C.SERVER_UPSERT]
    assert created[1]["server"]["addresses"]["private"][0]["mac"] == "fa:16:3e:4c:2c:30"
    assert created[1]["server"]["tags"] == ["tag"]
    assert created[1]["server"]["instance_name"] == "instance-00000001"
    (delete,) = decoded("instance-delete-end")
    assert delete["kind"] == C.SERVER_DELETE
    error = _patch(decoded("instance-reboot-error"))
    assert error["fault"]["message"].startswith("Virtualization type")


def test_ordering_by_updated_at_then_emission():
    early = decoded("instance-pause-end", "2012-10-29 13:42:12.000000")[0]["version"]
    later = decoded("instance-pause-end", "2012-10-29 13:42:15.000000")[0]["version"]
    assert early < later
    stale = sample("instance-power_on-end")
    stale["payload"]["nova_object.data"]["updated_at"] = "2012-10-29T13:00:00Z"
    old = N.decode(envelope(stale, "2012-10-29 13:50:00.000000"))[0]["version"]
    assert old < early                      # emitted later, but an older state


def test_unrelated_and_malformed():
    assert decoded("aggregate-create-end") == []
    assert decoded("keypair-create-end") == []
    with pytest.raises(C.ContractError):
        N.decode(b"not json")
    with pytest.raises(C.ContractError):
        N.decode(orjson.dumps({"oslo.version": "2.0", "oslo.message": "{}"}))


# -- end to end: import, then nova's notifications through RabbitMQ into a running cellfeed ----------

@needs_pg
@needs_broker
def test_samples_through_rabbitmq_into_store(tmp_path):
    nova = NovaDeployment()
    tag = uuidlib.uuid4().hex[:10]
    exchange, queue = "test.nova.%s" % tag, "test.nova.%s.q" % tag
    data = str(tmp_path)
    runner = None
    try:
        t0 = dt.datetime(2012, 10, 29, 13, 42, 11)
        nova.add_instance(uuid=UUID, created_at=t0, updated_at=t0, project_id=PROJECT)
        gone = nova.add_instance(project_id=PROJECT, created_at=t0, updated_at=t0)
        nova.add_service()
        import_nova(nova.url("api"), nova.cell_urls(), data, out=open(os.devnull, "w"))

        opts = Options(data_dir=data, amqp_url=AMQP_URL, exchange=exchange, queue=queue,
                       decoder="nova", binding_key="versioned_notifications.*",
                       exchange_durable=False, batch_interval=0.002)
        # A process of its own, as in production (and LMDB allows one open per process).
        runner = multiprocessing.get_context("fork").Process(target=_run_feed, args=(opts,))
        runner.start()
        _wait(lambda: _queue_exists(queue))

        new_uuid = str(uuidlib.uuid4())
        create = sample("instance-create-end")
        create["payload"]["nova_object.data"]["uuid"] = new_uuid
        delete = sample("instance-delete-end")
        delete["payload"]["nova_object.data"]["uuid"] = gone["uuid"]
        stale = sample("instance-power_off-end")
        stale["payload"]["nova_object.data"]["updated_at"] = "2012-10-29T13:00:00Z"
        # Every payload is the instance's whole state: the last fresh one decides each field
        # it carries (tags only come with instance.update and create).
        msgs = [(sample("instance-power_off-end"), "info"),
                (sample("instance-reboot-error"), "error"),
                (sample("instance-update-tags-action"), "info"),
                (sample("instance-lock-with-reason"), "info"),
                (stale, "info"),
                (sample("aggregate-create-end"), "info"),
                (create, "info"), (delete, "info")]
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        ch.confirm_delivery()
        for n, (msg, prio) in enumerate(msgs, 1):
            emitted = (dt.datetime(2012, 10, 29, 13, 42, 11) + dt.timedelta(seconds=n))
            ch.basic_publish(exchange, "versioned_notifications." + prio,
                             envelope(msg, str(emitted)),
                             pika.BasicProperties(content_type="application/json"))
        conn.close()

        app = App(StoreReader.open(data))

        def show(uuid, mv="2.100"):
            raw = app.handle(Request(
                method="GET", path="/v2.1/servers/" + uuid, token="admin:admin",
                mv_header="compute " + mv))
            head, _, body = raw.partition(b"\r\n\r\n")
            return int(head.split(b" ")[1]), orjson.loads(body)

        # nova answers 404 for a deleted server (the tombstone stays for changes-since)
        _wait(lambda: show(new_uuid)[0] == 200 and show(gone["uuid"])[0] == 404)
        os.kill(runner.pid, signal.SIGTERM)
        runner.join(30)
        assert runner.exitcode == 0

        s = show(UUID)[1]["server"]
        assert s["locked"] is True and s["locked_reason"] == "global warming"
        # the stale power_off (older updated_at, emitted last) was ignored
        assert s["OS-EXT-STS:vm_state"] == "active" and s["status"] == "ACTIVE"
        assert s["OS-EXT-STS:power_state"] == 1 and s["OS-EXT-STS:task_state"] is None
        assert s["tags"] == ["tag1"]
        # fields notifications never carry stay as imported
        assert s["security_groups"] == [{"name": "default"}]
        assert s["OS-EXT-AZ:availability_zone"] == "nova"
        c = show(new_uuid)[1]["server"]
        assert c["name"] == "some-server" and c["flavor"]["original_name"] == "test_flavor"
        assert c["addresses"]["private"][0]["addr"] == "192.168.1.3"
        assert c["tags"] == ["tag"] and c["key_name"] == "my-key"
        app.reader.close()
    finally:
        if runner is not None and runner.is_alive():     # a failed test: stop the feed first
            runner.kill()
            runner.join(10)
        nova.drop()
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        for q in (queue, queue + ".dead"):
            ch.queue_delete(q)
        for e in (exchange, queue + ".dlx"):
            ch.exchange_delete(e)
        conn.close()


def _run_feed(opts):
    sys.exit(service.run(opts))


def _queue_exists(queue) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if conn.is_open:
            conn.close()


def _wait(cond, timeout=20.0):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception as exc:   # the store may not hold the server yet
            last = exc
        time.sleep(0.05)
    raise AssertionError("condition not met within %.0fs (%r)" % (timeout, last))


def test_service_update_reports_a_zone_host():
    """service.update (os-availability-zone's source beside a real nova)."""
    updates = decoded("service-update")
    assert [u["kind"] for u in updates] == [C.SERVICE_UPSERT]
    svc = updates[0]["service"]
    payload = sample("service-update")["payload"]["nova_object.data"]
    assert svc["host"] == payload["host"] and svc["binary"] == payload["binary"]
    assert svc["disabled"] is payload["disabled"] and svc["up"] is not payload["forced_down"]
    assert updates[0]["id"] == "%s/%s" % (payload["host"], payload["binary"])
