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


def test_cellfeed_run_flags_for_nova_notifications():
    from cellfeed.cli import build_parser
    from cellfeed.service import Options

    args = build_parser().parse_args(
        ["run", "--data-dir", "/tmp/x", "--decoder", "nova",
         "--binding-key", "versioned_notifications.*", "--no-exchange-durable"])
    opts = Options.from_any(args)
    assert (opts.decoder, opts.binding_key, opts.exchange_durable) == (
        "nova", "versioned_notifications.*", False)
    plain = Options.from_any(build_parser().parse_args(["run", "--data-dir", "/tmp/x"]))
    assert (plain.decoder, plain.binding_key, plain.exchange_durable) == ("", "#", True)


@pytest.mark.parametrize("value, ok", [("0", True), ("19", True), ("-1", False), ("20", False)])
def test_feed_nice_is_0_to_19(value, ok, capsys):
    from fastnova.cli import build_parser
    argv = ["serve", "--feed-nice", value]
    if ok:
        assert build_parser().parse_args(argv).feed_nice == int(value)
    else:
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(argv)
        assert exc.value.code == 2 and "0 to 19" in capsys.readouterr().err


def test_a_nova_conf_reaches_the_workers(tmp_path):
    # nova.conf's [api] max_limit, passed as it is, caps every page as nova's does.
    conf = tmp_path / "nova.conf"
    conf.write_text("[DEFAULT]\nmy_ip = 10.0.0.1\n\n[api]\nmax_limit = 3\n")
    with running_server(workers=1, demo=20, extra_args=("--config-file", str(conf))) as srv:
        for path in ("/v2.1/servers?all_tenants=1", "/v2.1/servers/detail?all_tenants=1",
                     "/v2.1/flavors"):
            status, _, body = srv.get(path)
            assert status == 200, srv.log()[-2000:]
            doc = json.loads(body)
            items = doc.get("servers", doc.get("flavors"))
            assert len(items) == 3 and "next" in json.dumps(doc), path
