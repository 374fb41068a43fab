"""serve options that reach the workers: the database flavour of name filters."""
import json

import pytest

from tests.server import running_server


@pytest.mark.parametrize("flavour,matches", [("mysql", True), ("postgresql", False)])
def test_db_flavour_decides_name_regex_case(flavour, matches):
    # A MySQL-backed nova matches REGEXP case-insensitively; PostgreSQL's "~" does not.
    with running_server(workers=1, demo=20, extra_args=("--db-flavour", flavour)) as srv:
        status, _, body = srv.get("/v2.1/servers?all_tenants=1&name=WEB")
        assert status == 200, srv.log()[-2000:]
        names = [s["name"] for s in json.loads(body)["servers"]]
        assert bool(names) == matches
        assert all("web" in n for n in names)
