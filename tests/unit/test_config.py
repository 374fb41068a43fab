"""One configuration (fastnova/config.py): flags, then environment, then files, then defaults."""
import argparse
import logging
import os
import subprocess
import sys

import pytest

from fastnova import cli, config, options

NOVA_CONF = """\
[DEFAULT]
# nova-api's own nova.conf, passed as it is
transport_url = rabbit://nova:s3cret@rabbit1:5672,nova:s3cret@rabbit2:5672/nova
osapi_compute_listen = 10.0.0.5
osapi_compute_listen_port = 18774
osapi_compute_workers = 3
instance_name_template = vm-%08x
my_ip = 10.0.0.5
debug = True

[api]
max_limit = 200
compute_link_prefix = https://compute.example.com

[api_database]
connection = mysql+pymysql://nova:dbpass@db/nova_api

[database]
connection = mysql+pymysql://nova:dbpass@db/nova_cell0

[wsgi]
client_socket_timeout = 120

[quota]
instances = 50
cores = 100
driver = nova.quota.DbQuotaDriver

[keystone_authtoken]
www_authenticate_uri = http://keystone:5000
auth_url = http://keystone:5000
username = nova
password = kspass
memcached_servers = mc1:11211
"""


@pytest.fixture(autouse=True)
def _no_installed_settings():
    """cli.main installs its settings in this process: leave none behind for other tests."""
    yield
    config.uninstall()


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_defaults_without_anything():
    s = config.load(_parse("serve"), environ={})
    assert s.bind == ("0.0.0.0", 8774) and s.source("bind") == "default"
    assert s.log_level == "INFO" and s.max_limit == 1000 and s.access_log is None
    assert s.pure is False and s.mapped_reads is True


def test_precedence_flag_then_env_then_file_then_default(tmp_path):
    conf = _write(tmp_path, "a.conf", "[fastnova]\nbind = 127.0.0.1:1000\n"
                                      "timeout = 7\nmax_limit = 20\n")
    env = {"FASTNOVA_BIND": "127.0.0.1:2000", "FASTNOVA_TIMEOUT": "8"}
    s = config.load(_parse("serve", "--config-file", conf, "--bind", "127.0.0.1:3000"),
                    environ=env)
    assert s.bind == ("127.0.0.1", 3000) and s.source("bind") == "--bind"
    assert s.timeout == 8.0 and s.source("timeout") == "env FASTNOVA_TIMEOUT"
    assert s.max_limit == 20 and s.source("max_limit") == "%s [fastnova] max_limit" % conf
    assert s.graceful_timeout == 30.0 and s.source("graceful_timeout") == "default"


def test_later_files_win_key_by_key(tmp_path):
    one = _write(tmp_path, "1.conf", "[fastnova]\nworkers = 2\ndemo = 5\n")
    two = _write(tmp_path, "2.conf", "[fastnova]\nworkers = 4\n")
    s = config.load(_parse("serve", "--config-file", one, "--config-file", two), environ={})
    assert (s.workers, s.demo) == (4, 5)
    assert s.source("workers").startswith(two) and s.source("demo").startswith(one)


def test_a_nova_conf_as_it_is(tmp_path, caplog):
    conf = _write(tmp_path, "nova.conf", NOVA_CONF)
    with caplog.at_level(logging.DEBUG, logger="fastnova.config"):
        s = config.load(_parse("serve", "--config-file", conf), environ={})
    assert s.amqp == "amqp://nova:s3cret@rabbit1:5672/nova"
    assert s.bind == ("10.0.0.5", 18774) and s.workers == 3
    assert s.log_level == "DEBUG"
    assert s.max_limit == 200 and s.public_endpoint == "https://compute.example.com"
    assert s.api_db == "mysql://nova:dbpass@db/nova_api"
    assert s.keepalive_timeout == 120.0
    assert s.quota == {"instances": 50, "cores": 100}
    assert s.instance_name_template == "vm-%08x"      # no interpolation: as nova reads it
    assert s.section("keystone_authtoken")["memcached_servers"] == "mc1:11211"
    assert s.section("keystone_authtoken")["password"] == "kspass"
    assert s.section("nothing") == {}
    ignored = " ".join(r.getMessage() for r in caplog.records)
    assert "[DEFAULT] my_ip ignored" in ignored and "[quota] driver ignored" in ignored
    assert "[database] connection ignored: nova-api reads the cells" in ignored
    assert "[keystone_authtoken]" not in ignored


def test_fastnova_keys_beat_nova_names_in_the_files(tmp_path):
    conf = _write(tmp_path, "nova.conf", NOVA_CONF + "\n[fastnova]\nworkers = 6\n")
    s = config.load(_parse("serve", "--config-file", conf), environ={})
    assert s.workers == 6


@pytest.mark.parametrize("text, words", [
    ("[fastnova]\nworkers = many\n", ["bad value 'many' for workers", "[fastnova] workers"]),
    ("[fastnova]\nno_such_key = 1\n", ["no_such_key is not a fastnova option"]),
    ("[fastnova\nworkers = 1\n", ["config file"]),
    ("[api]\nmax_limit = lots\n", ["[api] max_limit", "bad value 'lots'"]),
])
def test_bad_files_are_refused_naming_the_place(tmp_path, text, words, capsys):
    conf = _write(tmp_path, "bad.conf", text)
    assert cli.main(["config", "--config-file", conf]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert cli.main(["config", "--config-file", str(tmp_path / "missing.conf")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_config_command_shows_sources_and_masks_secrets(tmp_path):
    conf = _write(tmp_path, "nova.conf", NOVA_CONF)
    out = subprocess.run(
        [sys.executable, "-m", "fastnova.cli", "config", "--config-file", conf,
         "--database", "postgresql://fn:pgpass@127.0.0.1/fn", "--log-level", "warning"],
        capture_output=True, text=True, timeout=60, env={"FASTNOVA_DEMO": "7", "PATH": ""})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for secret in ("s3cret", "dbpass", "kspass", "pgpass"):
        assert secret not in text
    rows = {line.split("=")[0].strip(): line for line in text.splitlines()}
    assert "amqp://nova:****@rabbit1:5672/nova" in rows["[fastnova] amqp"]
    assert "--database" in rows["[fastnova] database"]
    assert "postgresql://fn:****@127.0.0.1/fn" in rows["[fastnova] database"]
    assert "WARNING" in rows["[fastnova] log_level"] and "--log-level" in rows[
        "[fastnova] log_level"]
    assert "env FASTNOVA_DEMO" in rows["[fastnova] demo"]
    assert "[api] max_limit" in rows["[fastnova] max_limit"]
    assert "****" in rows["[keystone_authtoken] password"]
    assert "http://keystone:5000" in rows["[keystone_authtoken] auth_url"]


def test_installed_settings_are_the_processes_and_switches_reach_subprocesses(monkeypatch):
    monkeypatch.delenv("FASTNOVA_EDGE_IO", raising=False)
    assert config.current().edge_io is True
    monkeypatch.setenv("FASTNOVA_EDGE_IO", "0")
    assert config.current().edge_io is False      # not installed: read afresh (tests)
    before = os.environ.get("FASTNOVA_PURE")
    try:
        s = config.install(config.load(_parse("serve"), environ={"FASTNOVA_PURE": "yes"}))
        assert config.current() is s and s.pure is True
        assert os.environ["FASTNOVA_PURE"] == "1"
    finally:
        config.uninstall()
        os.environ.pop("FASTNOVA_PURE", None)     # install's, not monkeypatch's, to undo
        if before is not None:
            os.environ["FASTNOVA_PURE"] = before


@pytest.mark.parametrize("level", ["debug", "DEBUG", "Info", "warn", "error"])
def test_log_levels_in_any_case(level):
    assert options.parse_log_level(level) in options.LOG_LEVELS
    assert _parse("serve", "--log-level", level).log_level in options.LOG_LEVELS


def test_a_bad_log_level_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse("serve", "--log-level", "chatty")
    assert exc.value.code == 2 and "any case" in capsys.readouterr().err


def test_every_option_has_help_and_a_key():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    keys = {o.name for o in options.OPTS}
    parsers = dict(subs.choices)
    parsers["db sync"] = parsers["db"]._subparsers._group_actions[0].choices["sync"]
    for name, sub in parsers.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            if name == "serve" and action.option_strings and action.dest not in (
                    "help", "config_file") and not action.dest.startswith("keystone_"):
                # --keystone-*: keys of [keystone_authtoken], not of [fastnova] (docs/auth.md)
                assert action.dest in keys, action.dest


def test_version_and_help_are_clean():
    for argv in (["--version"], ["--help"], ["serve", "--help"], ["config", "--help"],
                 ["import-nova", "--help"]):
        out = subprocess.run([sys.executable, "-m", "fastnova.cli", *argv],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stderr == "", (argv, out.stderr)
        assert "fastnova" in out.stdout
    out = subprocess.run([sys.executable, "-m", "fastnova.cli", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("fastnova 0.")


def test_every_key_is_documented():
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "operations.md")).read()
    for opt in options.OPTS:
        assert "| `%s` |" % opt.name in doc and "`%s`" % opt.env in doc, opt.name
