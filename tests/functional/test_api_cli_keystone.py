"""The openstack CLI's commands that insist on an identity v3 service before they talk to
compute (``keypair create/list/show/delete``, ``server list``): identity is the session's real
keystone (only its version document is read), compute is fastnova with the noauth2 token."""
from __future__ import annotations

import json

import pytest

from tests.conftest import start_server
from tests.daily_support import Client, cli_with_keystone

pytestmark = pytest.mark.timeout(600)      # the first user of the session keystone starts it
TOKEN = "clik:0a1b2c3d4e5f"


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=5) as srv:
        yield srv


def test_keypair_commands_and_server_key_name(api, keystone, tmp_path):
    def cli(*args, **kw):
        return cli_with_keystone(api, keystone, TOKEN, *args, tmp_dir=str(tmp_path), **kw)

    made = cli("keypair", "create", "clikey")
    assert "PRIVATE KEY-----" in made.stdout       # from 2.92 the CLI makes it and imports it
    listed = json.loads(cli("keypair", "list", "-f", "json").stdout)
    assert [k["Name"] for k in listed] == ["clikey"]
    shown = json.loads(cli("keypair", "show", "clikey", "-f", "json").stdout)
    assert shown["name"] == "clikey" and shown["type"] == "ssh"
    c = Client(api)
    sid = c.create_server("kn", token=TOKEN, key_name="clikey")
    servers = json.loads(cli("server", "list", "-f", "json").stdout)
    assert [s["ID"] for s in servers] == [sid]
    shown = json.loads(cli("server", "show", sid, "-f", "json").stdout)
    assert shown["key_name"] == "clikey"
    bad = cli("keypair", "show", "nope", check=False)
    assert bad.returncode != 0
    cli("keypair", "delete", "clikey")
    assert json.loads(cli("keypair", "list", "-f", "json").stdout) == []
