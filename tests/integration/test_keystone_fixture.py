"""The session's real keystone (tests/cloud/keystone.py): the helpers other tests build on do
what they say, against keystone itself."""
from __future__ import annotations

import pytest

# The first test to use the session keystone pays for starting it (db_sync, bootstrap: ~20 s
# idle, over a minute on a loaded machine), and pytest-timeout counts fixture set-up.
pytestmark = pytest.mark.timeout(600)


def test_roles_tokens_and_revocation(keystone):
    project = keystone.create_project()
    keystone.create_user("fx-reader", "pw", project_id=project, role="reader")
    keystone.create_user("fx-member", "pw", project_id=project, role="member")
    token, doc = keystone.auth("fx-member", "pw", project_id=project)
    assert doc["project"]["id"] == project
    # keystone's implied roles: member implies reader
    assert {r["name"] for r in doc["roles"]} == {"member", "reader"}
    _tok, rdoc = keystone.auth("fx-reader", "pw", project_id=project)
    assert {r["name"] for r in rdoc["roles"]} == {"reader"}
    assert keystone.validate(token) == 200
    keystone.revoke(token)
    assert keystone.validate(token) == 404


def test_catalogue_registration(keystone):
    keystone.register_service("compute-fixture-test", "fx", "http://127.0.0.1:9/v2.1")
    _tok, doc = keystone.auth("admin", "keystone-admin-secret", project_name="admin")
    entries = [s for s in doc["catalog"] if s["type"] == "compute-fixture-test"]
    assert len(entries) == 1
    assert {e["interface"] for e in entries[0]["endpoints"]} == {"public", "internal", "admin"}
    assert {e["url"] for e in entries[0]["endpoints"]} == {"http://127.0.0.1:9/v2.1"}


def test_unscoped_and_system_scoped_tokens(keystone):
    _tok, doc = keystone.auth("admin", "keystone-admin-secret", system=True)
    assert doc["system"] == {"all": True} and "project" not in doc
    keystone.create_user("fx-loner", "pw")
    _tok, doc = keystone.auth("fx-loner", "pw")
    assert "project" not in doc and "roles" not in doc
