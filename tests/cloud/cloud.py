"""The whole test cloud: keystone (given), placement, glance, the neutron stand-in and nova.

``start_cloud(keystone, workdir)`` brings it up, with independent steps in parallel (nova's
database migrations run while placement and glance start), and returns a ``Cloud`` with the
URLs, credentials, the image and flavors the tests boot from, and each service's start-up time.
Any service that does not start raises ``procs.ServiceFailed`` with its log.  ``Cloud.stop()``
ends every process and drops the databases and the vhost.

``keystone`` is the keystone fixture's object (tests/cloud/keystone.py): its ``url`` (the v3
endpoint) is used, with the admin password and region of that module unless the object carries
``admin_password`` / ``region`` itself.  Python for the services comes from the shared venv
(tests/cloud/venv.py, OPENSTACK_REQUIREMENTS).
"""
from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.cloud import backing, glance, nova, placement, procs
from tests.cloud.catalog import Identity
from tests.cloud.venv import openstack_bin
SERVICE_PASSWORD = "service-secret"
DEMO_USER, DEMO_PROJECT, DEMO_PASSWORD = "demo", "demo", "demo-secret"
FLAVORS = (("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 1024, 1, 2))


class KeystoneRef:
    """What the cloud needs of keystone: its v3 URL, the admin password and the region."""

    def __init__(self, keystone):
        self.url = keystone.url.rstrip("/")
        self.admin_password = getattr(keystone, "admin_password", None)
        self.region = getattr(keystone, "region", None)
        if self.admin_password is None or self.region is None:
            from tests.cloud import keystone as module
            self.admin_password = self.admin_password or module.ADMIN_PASSWORD
            self.region = self.region or module.REGION


class Cloud:
    def __init__(self, keystone, workdir: Path, bin_dir: Path):
        self.keystone = keystone
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.tag = backing.session_tag()
        self.dbs = backing.Databases(self.tag)
        self.vhost = None
        self.services: dict[str, procs.Service] = {}
        self.timings: dict[str, float] = {}
        self.nova_url = self.placement_url = self.glance_url = self.neutron_url = None
        self.image_id = None
        self.demo_project_id = None
        self.flavors = [f[0] for f in FLAVORS]

    # -- what tests use ---------------------------------------------------------------------

    @property
    def compute_url(self) -> str:
        return self.nova_url + "/v2.1"

    @property
    def amqp_url(self) -> str:
        """This cloud's vhost, for pika (fastnova's cellfeed follows nova's notifications)."""
        return self.vhost.url("amqp")

    def token(self, user: str = DEMO_USER, password: str = DEMO_PASSWORD,
              project: str = DEMO_PROJECT) -> str:
        return _token(self.keystone.url, user, password, project)

    def admin_token(self) -> str:
        return _token(self.keystone.url, "admin", self.keystone.admin_password, "admin")

    def auth_args(self, admin: bool = False) -> dict:
        """openstacksdk / os-client-config arguments for the demo user (or admin)."""
        user, password, project = (("admin", self.keystone.admin_password, "admin") if admin
                                   else (DEMO_USER, DEMO_PASSWORD, DEMO_PROJECT))
        return {"auth_url": self.keystone.url, "username": user, "password": password,
                "project_name": project, "user_domain_id": "default",
                "project_domain_id": "default", "region_name": self.keystone.region}

    @property
    def api_db_url(self) -> str:
        return _libpq(self.dbs.url("nova_api"))

    @property
    def cell_db_urls(self) -> list[str]:
        return [_libpq(self.dbs.url("nova_cell0")), _libpq(self.dbs.url("nova_cell1"))]

    def describe(self, path: str):
        """Write what a test needs of this cloud to ``path`` (JSON), for ``described``."""
        Path(path).write_text(json.dumps({
            "keystone": vars(self.keystone), "nova_url": self.nova_url, "tag": self.tag,
            "vhost": self.vhost.name, "image_id": self.image_id,
            "demo_project_id": self.demo_project_id, "timings": self.timings}))

    @classmethod
    def described(cls, path: str) -> "Cloud":
        """A cloud another process runs (``python -m tests.cloud.cloud PATH``): stop() leaves
        it running."""
        doc = json.loads(Path(path).read_text())
        ref = KeystoneRef.__new__(KeystoneRef)
        vars(ref).update(doc["keystone"])
        cloud = cls(ref, Path(path).parent, None)
        cloud.tag, cloud.dbs = doc["tag"], backing.Databases(doc["tag"])
        cloud.vhost = backing.Vhost.existing(doc["vhost"])
        cloud.nova_url, cloud.image_id = doc["nova_url"], doc["image_id"]
        cloud.demo_project_id, cloud.timings = doc["demo_project_id"], doc["timings"]
        cloud.stop = lambda: None
        return cloud

    def fastnova_auth_args(self) -> list[str]:
        """``fastnova serve`` flags validating tokens with this cloud's keystone, as the
        ``fastnova`` service user (docs/auth.md)."""
        return ["--auth", "keystone", "--keystone-auth-url", self.keystone.url,
                "--keystone-username", "fastnova", "--keystone-password", SERVICE_PASSWORD,
                "--keystone-project-name", "service"]

    def report(self) -> str:
        return "cloud start-up: " + ", ".join(
            "%s %.1f s" % kv for kv in self.timings.items())

    # -- life cycle -------------------------------------------------------------------------

    def stop(self):
        for svc in reversed(list(self.services.values())):
            svc.stop()
        self.services.clear()
        try:
            self.dbs.drop_all()
        finally:
            if self.vhost is not None:
                self.vhost.delete()
                self.vhost = None


def start_cloud(keystone, workdir: Path, log=print) -> Cloud:
    began = time.monotonic()
    bin_dir = openstack_bin(log=log)
    keystone = KeystoneRef(keystone)
    cloud = Cloud(keystone, workdir, bin_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        _start(cloud, keystone, workdir, bin_dir)
    except BaseException:
        cloud.stop()
        raise
    cloud.timings["total"] = time.monotonic() - began
    log(cloud.report())
    return cloud


def _start(cloud: Cloud, keystone, workdir: Path, bin_dir: Path):
    cloud.vhost = backing.Vhost(cloud.tag)
    identity = Identity(keystone.url, keystone.admin_password, keystone.region)
    for user in ("nova", "placement", "glance", "fastnova"):
        identity.user(user, SERVICE_PASSWORD, "service", ("admin", "service"))
    identity.user(DEMO_USER, DEMO_PASSWORD, DEMO_PROJECT, ("member", "reader"))
    cloud.demo_project_id = identity.find("projects", DEMO_PROJECT)

    nova_sock = procs.listening_socket()
    cloud.nova_url = "http://127.0.0.1:%d" % nova_sock.getsockname()[1]
    cloud.neutron_url = _start_neutron(cloud, workdir)
    ncfg = workdir / "nova"
    nova.write_conf(bin_dir, ncfg, cloud.dbs, cloud.vhost, keystone, SERVICE_PASSWORD)
    env = nova.nova_env(ncfg)
    nlog = workdir / "nova-manage.log"

    with ThreadPoolExecutor(3) as pool:
        started = time.monotonic()
        migrations = pool.submit(nova.setup_databases, bin_dir, ncfg, cloud.dbs, cloud.vhost,
                                 nlog, env)
        p = pool.submit(placement.start, bin_dir, workdir, cloud.dbs, keystone, SERVICE_PASSWORD)
        g = pool.submit(glance.start, bin_dir, workdir, cloud.dbs, keystone, SERVICE_PASSWORD)
        cloud.placement_url, cloud.services["placement"] = p.result()
        cloud.timings["placement"] = cloud.services["placement"].seconds
        cloud.glance_url, cloud.services["glance"] = g.result()
        cloud.timings["glance"] = cloud.services["glance"].seconds
        migrations.result()
        cloud.timings["nova db setup"] = time.monotonic() - started

    identity.service("placement", "placement", cloud.placement_url)
    identity.service("glance", "image", cloud.glance_url)
    identity.service("neutron", "network", cloud.neutron_url)
    identity.service("nova", "compute", cloud.compute_url)

    services = nova.start_services(bin_dir, ncfg, nova_sock, workdir, env)
    nova_sock.close()
    cloud.services.update(services)
    services["nova-api"].wait_http(cloud.nova_url + "/")
    admin = cloud.admin_token()
    _wait_nova_services(cloud, services, admin,
                        lambda: nova.discover_hosts(bin_dir, ncfg, nlog, env))
    for name, svc in services.items():
        cloud.timings[name] = svc.seconds
    cloud.image_id = glance.upload_image(cloud.glance_url, admin)
    for fid, name, ram, vcpus, disk in FLAVORS:
        _compute(cloud, admin, "POST", "/flavors", {"flavor": {
            "id": fid, "name": name, "ram": ram, "vcpus": vcpus, "disk": disk}})


def _start_neutron(cloud: Cloud, workdir: Path) -> str:
    sock = procs.listening_socket()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    svc = procs.Service("neutron-standin", [sys.executable, "-m", "tests.cloud.neutron_standin",
                                            "--fd", str(sock.fileno())],
                        workdir / "neutron-standin.log", env={"PYTHONPATH": str(root)},
                        pass_fds=(sock.fileno(),))
    sock.close()
    cloud.services["neutron-standin"] = svc
    svc.wait_http(url + "/v2.0/extensions")
    cloud.timings["neutron-standin"] = svc.seconds
    return url


def _wait_nova_services(cloud: Cloud, services: dict, admin: str, discover):
    """conductor, scheduler and compute are ready once os-services shows them up; the compute
    node once ``discover_hosts`` has mapped it to cell1 and os-hypervisors lists it (nova-api
    skips unmapped nodes there, and the scheduler cannot place on them)."""
    def up(binary):
        def check():
            doc = _compute(cloud, admin, "GET", "/os-services?binary=%s" % binary)
            return any(s["state"] == "up" for s in doc["services"])
        return check
    for name in ("nova-conductor", "nova-scheduler", "nova-compute"):
        services[name].wait(up(name), "report up in os-services")

    def mapped():
        discover()
        return bool(_compute(cloud, admin, "GET", "/os-hypervisors")["hypervisors"])
    services["nova-compute"].wait(mapped, "get its compute node mapped by discover_hosts")


def _compute(cloud: Cloud, token: str, method: str, path: str, body=None,
             version: str = "2.1"):
    req = urllib.request.Request(cloud.compute_url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("X-Auth-Token", token)
    req.add_header("Content-Type", "application/json")
    req.add_header("OpenStack-API-Version", "compute " + version)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise procs.ServiceFailed("nova-api %s %s: %d %s" % (method, path, err.code,
                                                             err.read()[:500])) from None
    return json.loads(raw) if raw else {}


def _token(url: str, user: str, password: str, project: str) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    req = urllib.request.Request(url.rstrip("/") + "/auth/tokens", method="POST",
                                 data=json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.headers["X-Subject-Token"]


def _libpq(url: str) -> str:
    """SQLAlchemy's postgresql+psycopg2:// as psycopg2's own postgresql:// URL."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _serve_forever(path: str) -> int:
    """``python -m tests.cloud.cloud PATH``: keystone and the cloud, up until TERM/INT."""
    import signal
    from tests.cloud.keystone import drop, start_keystone
    keystone = start_keystone(log=print)
    cloud = None
    try:
        cloud = start_cloud(keystone, Path(path).parent / ("cloud-" + Path(path).stem))
        cloud.describe(path)
        print("cloud up; FASTNOVA_CLOUD=%s (TERM to stop)" % path, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        if cloud is not None:
            cloud.stop()
        drop(keystone)
    return 0


if __name__ == "__main__":
    sys.exit(_serve_forever(sys.argv[1]))
