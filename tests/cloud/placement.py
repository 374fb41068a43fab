"""openstack-placement 16 from PyPI under gunicorn, on its own PostgreSQL database."""
from __future__ import annotations

import os
from pathlib import Path

from tests.cloud import procs
from tests.cloud.catalog import service_user_conf


def start(bin_dir: Path, workdir: Path, dbs, keystone, password: str) -> tuple[str, procs.Service]:
    """Configure, db sync and start placement; (its URL, its Service) once it answers."""
    cfg = workdir / "placement"
    cfg.mkdir(parents=True, exist_ok=True)
    db = dbs.create("placement")
    sock = procs.listening_socket()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    (cfg / "placement.conf").write_text("""[DEFAULT]
debug = False
[api]
auth_strategy = keystone
[placement_database]
connection = %s
max_pool_size = 2
max_overflow = 5
""" % db + service_user_conf("keystone_authtoken", keystone.url, "placement", password,
                             keystone.region))
    env = dict(os.environ, OS_PLACEMENT_CONFIG_DIR=str(cfg))
    log = workdir / "placement.log"
    procs.run([str(bin_dir / "placement-manage"), "--config-dir", str(cfg), "db", "sync"],
              log, env)
    svc = procs.gunicorn(bin_dir, "placement", "placement.wsgi.api:application", sock, log, env)
    sock.close()
    svc.wait_http(url + "/")
    return url, svc
