"""The v1 message contract (no broker needed) and the service's option handling."""
from __future__ import annotations

import argparse

import orjson
import pytest

from cellfeed import contract as C
from cellfeed.service import Options
from tests.cellfeed_support import server

U = "9168b536-cd40-4630-b43f-b259807c6e87"


def test_round_trip_of_every_kind():
    updates = [C.server_upsert(server(U, 3)), C.server_patch(U, 4, {"vm_state": "stopped"}),
               C.server_delete(U, 5, "2024-05-02T10:00:00+02:00"),
               C.flavor_upsert({"id": 42, "name": "f", "vcpus": 1, "ram": 1, "disk": 1}, 1),
               C.flavor_delete("42", 2),
               C.service_upsert({"host": "h1", "binary": "nova-compute", "zone": "z",
                                 "updated_at": "2024-05-02T10:00:00Z"}, 1),
               C.action_event(U, 6, {"request_id": "req-1", "event": "compute_start_instance",
                                     "start_time": "2024-05-02T10:00:00Z"}),
               C.call_reply("call-1", 1, {"output": "boot"})]
    decoded = C.decode(C.encode(updates))
    assert [u["kind"] for u in decoded] == list(C.KINDS)
    assert decoded[0]["server"]["version"] == 3 and decoded[0]["server"]["metadata"] == {}
    assert decoded[2]["deleted_at"] == "2024-05-02T08:00:00.000000"
    assert decoded[3]["flavor"]["id"] == "42"
    assert decoded[5]["id"] == "h1/nova-compute"
    assert decoded[5]["service"]["updated_at"] == "2024-05-02T10:00:00.000000"
    assert decoded[6]["event"]["start_time"] == "2024-05-02T10:00:00.000000"
    assert C.routing_key(updates) == "batch" and C.routing_key(updates[1]) == "server.patch"


def test_envelope_version_wins_over_record_version():
    msg = C.server_upsert(server(U, 1), version=9)
    assert C.decode(C.encode(msg))[0]["server"]["version"] == 9


@pytest.mark.parametrize("doc, reason", [
    ({"contract": 2, "kind": "server.delete", "id": U, "version": 1}, "contract 2"),
    ({"contract": 1, "kind": "server.delete", "id": U, "version": 0}, "version"),
    ({"contract": 1, "kind": "server.delete", "id": U, "version": 1.5}, "version"),
    ({"contract": 1, "kind": "server.delete", "id": "", "version": 1}, "id"),
    ({"contract": 1, "kind": "server.upsert", "id": U, "version": 1,
      "server": dict(server(U, 1), id="other")}, "differs"),
    ({"contract": 1, "kind": "server.upsert", "id": U, "version": 1,
      "server": {"id": U}}, "lacks"),
    ({"contract": 1, "kind": "server.patch", "id": U, "version": 2,
      "changes": {"deleted": True}}, "not patchable"),
    ({"contract": 1, "kind": "server.patch", "id": U, "version": 2,
      "changes": {"updated_at": "yesterday"}}, "ISO 8601"),
    ({"contract": 1, "kind": "server.patch", "id": U, "version": 2,
      "changes": {"tags": "a,b"}}, "tags must be a list"),
    ({"contract": 1, "kind": "flavor.upsert", "id": "1", "version": 1,
      "flavor": {"id": "1", "ram": "big"}}, "ram must be an integer"),
    ("just a string", "not a JSON object"),
])
def test_poison_is_refused_with_a_reason(doc, reason):
    with pytest.raises(C.ContractError, match=reason):
        C.decode(orjson.dumps(doc))


def test_options_from_argparse_namespace_and_dict():
    ns = argparse.Namespace(command="run", amqp="amqp://x/", data_dir="/d", exchange="e",
                            queue=None, prefetch=10, batch_size=5, batch_interval=0.01,
                            log_level="INFO", segment_bytes=None)
    opts = Options.from_any(ns)
    assert (opts.amqp_url, opts.data_dir, opts.prefetch, opts.batch_size) == ("amqp://x/", "/d",
                                                                              10, 5)
    assert opts.queue.startswith("fastnova.feed.") and opts.segment_bytes == 64 << 20
    assert Options.from_any({"data_dir": "/d", "amqp": "amqp://y/"}).amqp_url == "amqp://y/"


def test_journal_form_reads_back_as_decoded():
    """The consumer journals decode()'s result; reading it back gives the same updates without
    validating again, and an entry journaled as a raw body (earlier cellfeed) is validated."""
    import random

    from bench.bench_feed import workload
    updates = [C.server_upsert(server(U, 3)), C.server_patch(U, 4, {"vm_state": "stopped",
                                                                     "launched_at": "2024-05-02"}),
               C.server_delete(U, 5, "2024-05-02T10:00:00+02:00"),
               C.flavor_upsert({"id": 42, "name": "f", "vcpus": 1, "ram": 1, "disk": 1}, 1),
               C.flavor_delete("42", 2)] + workload(200, random.Random(3))
    for body in [C.encode(updates), C.encode(updates[0]), C.encode(updates[-1])]:
        decoded = C.decode(body)
        read = C.decode_journal(C.encode_journal(decoded))
        assert read == [dict(u, journaled=True) for u in decoded]
        assert [list(u["server"]) for u in read if "server" in u] == \
            [list(u["server"]) for u in decoded if "server" in u]     # key order: same bytes
        assert C.decode_journal(body) == decoded


def test_a_forged_journal_mark_is_still_validated():
    forged = [dict(C.server_upsert(dict(server(U, 1), metadata=["x"])), journaled=True)]
    with pytest.raises(C.ContractError, match="metadata must be an object"):
        C.decode(C.encode(forged))
