"""glance 33 from PyPI under gunicorn: a file store, and one small raw image for the fake driver.

Glance under a WSGI server (not its old eventlet ``glance-api``) needs the reserved staging and
tasks stores and ``worker_self_reference_url`` configured, or it refuses to load.  The image is a
few KB of random bytes, ``raw``/``bare``, public: nova's fake driver never reads it, but nova
checks its size, formats and status before it boots a server from it.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import urllib.request
from pathlib import Path

from tests.cloud import procs
from tests.cloud.catalog import service_user_conf

IMAGE_BYTES = 4096


def start(bin_dir: Path, workdir: Path, dbs, keystone, password: str) -> tuple[str, procs.Service]:
    cfg = workdir / "glance"
    for sub in ("images", "staging", "tasks"):
        (cfg / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(bin_dir.parent / "etc" / "glance" / "glance-api-paste.ini", cfg)
    db = dbs.create("glance")
    sock = procs.listening_socket()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    (cfg / "glance-api.conf").write_text("""[DEFAULT]
debug = False
enabled_backends = fs:file
worker_self_reference_url = %(url)s
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = %(cfg)s/images
[os_glance_staging_store]
filesystem_store_datadir = %(cfg)s/staging
[os_glance_tasks_store]
filesystem_store_datadir = %(cfg)s/tasks
[database]
connection = %(db)s
max_pool_size = 2
max_overflow = 5
[paste_deploy]
flavor = keystone
config_file = %(cfg)s/glance-api-paste.ini
[oslo_concurrency]
lock_path = %(cfg)s/lock
""" % {"url": url, "cfg": cfg, "db": db} + service_user_conf(
        "keystone_authtoken", keystone.url, "glance", password, keystone.region))
    env = dict(os.environ, OS_GLANCE_CONFIG_DIR=str(cfg))
    log = workdir / "glance.log"
    procs.run([str(bin_dir / "glance-manage"), "--config-dir", str(cfg), "db_sync"], log, env)
    svc = procs.gunicorn(bin_dir, "glance", "glance.wsgi.api:application", sock, log, env)
    sock.close()
    svc.wait_http(url + "/versions")
    return url, svc


def upload_image(url: str, token: str, name: str = "cirros-standin") -> str:
    """Create a public raw/bare image of IMAGE_BYTES random bytes; its id once it is active."""
    doc = _call(url + "/v2/images", token, "POST", json.dumps({
        "name": name, "disk_format": "raw", "container_format": "bare",
        "visibility": "public"}).encode(), "application/json")
    _call(url + "/v2/images/%s/file" % doc["id"], token, "PUT", secrets.token_bytes(IMAGE_BYTES),
          "application/octet-stream")
    status = _call(url + "/v2/images/%s" % doc["id"], token)["status"]
    if status != "active":
        raise procs.ServiceFailed("glance image %s is %s after its upload" % (doc["id"], status))
    return doc["id"]


def _call(url, token, method="GET", data=None, ctype=None):
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("X-Auth-Token", token)
    if ctype:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}
