"""nova 34 from PyPI: nova-api under gunicorn, nova-conductor, nova-scheduler, and nova-compute with
nova's fake virt driver, on PostgreSQL (API, cell0 and cell1 databases) and a private RabbitMQ
vhost, publishing versioned notifications.

``fake.FakeDriverWithoutFakeNodes``, not ``fake.FakeDriver``: the latter gives its node a new
random uuid in every process and writes no ``compute_id`` file, and nova-compute then refuses a
second start on the host.  One compute host, so resize is allowed to the same host.  Consoles are
off (no proxies run).  Every service reads one ``nova.conf``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.cloud import procs
from tests.cloud.catalog import service_user_conf

HOST = "fastnova-compute"
NOTIFY_EXCHANGE = "nova"            # [DEFAULT] control_exchange: where nova's notifications go
NOTIFY_TOPIC = "versioned_notifications"


def write_conf(bin_dir: Path, cfg: Path, dbs, vhost, keystone, password: str) -> Path:
    cfg.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "instances", "lock"):
        (cfg / sub).mkdir(exist_ok=True)
    pool = "max_pool_size = 2\nmax_overflow = 5\n"
    auth = lambda section, extra="": service_user_conf(  # noqa: E731
        section, keystone.url, "nova", password, keystone.region, extra)
    text = """[DEFAULT]
host = %(host)s
compute_driver = fake.FakeDriverWithoutFakeNodes
transport_url = %(transport)s
state_path = %(cfg)s/state
instances_path = %(cfg)s/instances
allow_resize_to_same_host = True
my_ip = 127.0.0.1
debug = False
[api]
auth_strategy = keystone
[api_database]
connection = %(api_db)s
%(pool)s
[database]
connection = %(cell1_db)s
%(pool)s
[oslo_concurrency]
lock_path = %(cfg)s/lock
[vnc]
enabled = False
[spice]
enabled = False
[serial_console]
enabled = False
[conductor]
workers = 1
[scheduler]
workers = 1
[notifications]
notification_format = versioned
notify_on_state_change = vm_and_task_state
[oslo_messaging_notifications]
driver = messagingv2
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 0
[glance]
valid_interfaces = public
region_name = %(region)s
[cinder]
os_region_name = %(region)s
""" % {"host": HOST, "transport": vhost.url(), "cfg": cfg, "api_db": dbs.url("nova_api"),
       "cell1_db": dbs.url("nova_cell1"), "pool": pool, "region": keystone.region}
    text += auth("keystone_authtoken", "service_token_roles_required = True\n")
    text += auth("service_user", "send_service_user_token = True\n")
    text += auth("placement", "valid_interfaces = public\n")
    text += auth("neutron", "valid_interfaces = public\n")
    path = cfg / "nova.conf"
    path.write_text(text)
    (cfg / "api-paste.ini").write_bytes(
        (bin_dir.parent / "etc" / "nova" / "api-paste.ini").read_bytes())
    return path


def setup_databases(bin_dir: Path, cfg: Path, dbs, vhost, log: Path, env: dict):
    """nova-manage: the schemas, then the cell mappings (the services start after this).

    The three schema migrations are independent (``db sync --local_cell`` migrates only the
    ``[database]`` it is given), so they run side by side: about a minute less than nova's
    documented one-after-the-other order on a busy 2-core machine."""
    for name in ("nova_api", "nova_cell0", "nova_cell1"):
        dbs.create(name)
    (cfg / "cell0.conf").write_text("[database]\nconnection = %s\n" % dbs.url("nova_cell0"))
    manage = [str(bin_dir / "nova-manage"), "--config-file", str(cfg / "nova.conf")]
    _together(log, env, manage + ["api_db", "sync"], manage + ["db", "sync", "--local_cell"],
              manage + ["--config-file", str(cfg / "cell0.conf"), "db", "sync", "--local_cell"])
    _together(log, env,
              manage + ["cell_v2", "map_cell0", "--database_connection", dbs.url("nova_cell0")],
              manage + ["cell_v2", "create_cell", "--name", "cell1", "--database_connection",
                        dbs.url("nova_cell1"), "--transport-url", vhost.url()])


def _together(log: Path, env: dict, *commands):
    with ThreadPoolExecutor(len(commands)) as pool:
        for done in [pool.submit(procs.run, cmd, log.with_suffix(".%d.log" % i), env)
                     for i, cmd in enumerate(commands)]:
            done.result()


def start_services(bin_dir: Path, cfg: Path, sock, workdir: Path, env: dict) -> dict:
    """Start nova-api, conductor, scheduler and compute; readiness is checked by the caller."""
    conf = ["--config-file", str(cfg / "nova.conf")]
    services = {"nova-api": procs.gunicorn(bin_dir, "nova-api",
                                           "nova.wsgi.osapi_compute:application", sock,
                                           workdir / "nova-api.log", env, workers=2, threads=2)}
    for name in ("nova-conductor", "nova-scheduler", "nova-compute"):
        services[name] = procs.Service(name, [str(bin_dir / name)] + conf,
                                       workdir / (name + ".log"), env=env)
    return services


def discover_hosts(bin_dir: Path, cfg: Path, log: Path, env: dict):
    procs.run([str(bin_dir / "nova-manage"), "--config-file", str(cfg / "nova.conf"),
               "cell_v2", "discover_hosts", "--verbose"], log, env)


def nova_env(cfg: Path) -> dict:
    return dict(os.environ, OS_NOVA_CONFIG_DIR=str(cfg))
