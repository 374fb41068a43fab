"""A real keystone 30 for the tests: PostgreSQL, fernet keys, served by gunicorn on loopback.

One keystone per test session (the ``keystone`` fixture is session-scoped).  Everything it
writes lives in a temp dir and in a PostgreSQL database named uniquely for the session, so
parallel sessions never collide and nothing goes to /etc.  A keystone that will not start
raises (the tests fail loudly; they are never skipped).

    def test_x(keystone):
        pid = keystone.create_project("alpha")
        uid = keystone.create_user("alice", "secret", project_id=pid, role="member")
        token = keystone.token("alice", "secret", project_id=pid)
        keystone.register_service("compute", "nova", "http://127.0.0.1:8774/v2.1")

Setup follows keystone's install guide: ``db_sync``, ``fernet_setup`` and ``credential_setup``
into the temp dir (``[fernet_receipts]`` points at the same key repository: its default is
/etc/keystone/fernet-keys), then ``bootstrap`` (admin user/project, the admin, member and reader
roles, region RegionOne, identity endpoints).  ``[cache] enabled = False``: with more than one
gunicorn thread or process an in-process cache would give each its own view.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.cloud.venv import openstack_bin

PG_DSN = "host=127.0.0.1 port=5432 user=root dbname=test"
ADMIN_PASSWORD = "keystone-admin-secret"
REGION = "RegionOne"
START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg(sql: str) -> None:
    import psycopg2
    conn = psycopg2.connect(PG_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


class KeystoneError(RuntimeError):
    pass


class Keystone:
    """One keystone: its database, key repositories, config dir and gunicorn process."""

    def __init__(self, bin_dir: Path, root: str, database: str, port: int, overrides=None):
        self.bin = Path(bin_dir)
        self.root = root
        self.database = database
        self.port = port
        self.url = "http://127.0.0.1:%d/v3" % port
        self.overrides = overrides or {}
        self.conf_dir = os.path.join(root, "conf-%d" % port)
        self.log_path = os.path.join(root, "keystone-%d.log" % port)
        self.proc = None
        self._admin_token = None
        self._roles = {}

    # -- life cycle ------------------------------------------------------------------------

    def write_config(self) -> None:
        os.makedirs(self.conf_dir, exist_ok=True)
        keys = os.path.join(self.root, "fernet-keys")
        sections = {
            "DEFAULT": {"log_file": self.log_path, "use_stderr": "False"},
            "database": {"connection": "postgresql+psycopg2://root@127.0.0.1:5432/%s"
                                       % self.database,
                         "max_pool_size": "2", "max_overflow": "5"},
            "token": {"provider": "fernet", "expiration": "3600"},
            "fernet_tokens": {"key_repository": keys},
            "fernet_receipts": {"key_repository": keys},
            "credential": {"key_repository": os.path.join(self.root, "credential-keys")},
            "cache": {"enabled": "False"},
        }
        for (section, key), value in self.overrides.items():
            sections.setdefault(section, {})[key] = str(value)
        with open(os.path.join(self.conf_dir, "keystone.conf"), "w") as f:
            for section, opts in sections.items():
                f.write("[%s]\n" % section)
                f.writelines("%s = %s\n" % kv for kv in opts.items())
                f.write("\n")

    def _env(self) -> dict:
        env = dict(os.environ)
        env["OS_KEYSTONE_CONFIG_DIR"] = self.conf_dir
        env.pop("PYTHONPATH", None)
        return env

    def manage(self, *args: str) -> str:
        cmd = [str(self.bin / "keystone-manage"), "--config-dir", self.conf_dir, *args]
        proc = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise KeystoneError("keystone-manage %s failed (%d):\n%s\n%s" % (
                " ".join(args), proc.returncode, proc.stderr[-3000:], self.log_tail()))
        return proc.stdout

    def setup(self, log=print) -> None:
        """Database, keys and bootstrap (the first keystone of a session only)."""
        started = time.monotonic()
        for name in ("fernet-keys", "credential-keys"):
            os.makedirs(os.path.join(self.root, name), mode=0o700, exist_ok=True)
        self.manage("db_sync")
        user = ["--keystone-user", _me(), "--keystone-group", _my_group()]
        self.manage("fernet_setup", *user)
        self.manage("credential_setup", *user)
        self.manage("bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                    "--bootstrap-region-id", REGION,
                    "--bootstrap-admin-url", self.url, "--bootstrap-internal-url", self.url,
                    "--bootstrap-public-url", self.url)
        log("keystone: db_sync, keys and bootstrap took %.1f s" % (time.monotonic() - started))

    def start(self) -> float:
        """Start gunicorn and wait until keystone answers; the seconds it took."""
        started = time.monotonic()
        self.write_config()
        # keystone's WSGI module hands sys.argv to oslo.config, which rejects gunicorn's own
        # arguments: a two-line shim clears them before keystone is imported.
        with open(os.path.join(self.root, "keystone_shim.py"), "w") as f:
            f.write("import sys\nsys.argv = sys.argv[:1]\n"
                    "from keystone.wsgi.api import application  # noqa\n")
        log = open(self.log_path + ".gunicorn", "ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "gunicorn"), "--bind", "127.0.0.1:%d" % self.port,
             "--workers", "1", "--threads", "4", "--worker-class", "gthread",
             "--no-control-socket", "--timeout", "120", "--chdir", self.root,
             # gunicorn closes idle keep-alive connections after 2 s by default; a client's
             # request racing that close is resent, which a counting relay would see twice
             "--keep-alive", "75",
             "keystone_shim:application"],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise KeystoneError("keystone (gunicorn) exited with %s:\n%s"
                                    % (self.proc.returncode, self.log_tail()))
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        self.stop()
        raise KeystoneError("keystone did not answer on %s within %.0f s:\n%s"
                            % (self.url, START_TIMEOUT, self.log_tail()))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> float:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        out = []
        for path in (self.log_path, self.log_path + ".gunicorn"):
            try:
                out.append(Path(path).read_text(errors="replace")[-n:])
            except OSError:
                pass
        return "\n".join(out)

    def sibling(self, **overrides) -> "Keystone":
        """Another keystone on the same database and keys (so it issues tokens this one
        accepts), with config overrides, e.g. ``sibling(token__expiration=5)``: tokens that
        expire within seconds, without touching the session's keystone.  Caller stops it."""
        opts = {tuple(k.split("__", 1)): v for k, v in overrides.items()}
        other = Keystone(self.bin, self.root, self.database, free_port(), opts)
        other.start()
        return other

    # -- REST helpers ----------------------------------------------------------------------

    def request(self, method: str, path: str, body=None, token: str | None = None,
                headers: dict | None = None):
        """(status, headers, parsed body or None) of one call to this keystone."""
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not False:
            hdrs["X-Auth-Token"] = token or self.admin_token()
        hdrs.update(headers or {})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status, rh = resp.read(), resp.status, resp.headers
        except urllib.error.HTTPError as err:
            raw, status, rh = err.read(), err.code, err.headers
        return status, rh, (json.loads(raw) if raw.strip() else None)

    def _ok(self, method, path, body=None, expect=(200, 201, 204), **kw):
        status, headers, doc = self.request(method, path, body, **kw)
        if status not in expect:
            raise KeystoneError("%s %s -> %d %s" % (method, path, status, doc))
        return doc

    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.token("admin", ADMIN_PASSWORD, project_name="admin")
        return self._admin_token

    def auth(self, username: str, password: str, project_id: str | None = None,
             project_name: str | None = None, system: bool = False,
             domain: str = "Default"):
        """(token, token document) for a password authentication; unscoped when no scope."""
        ident = {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"name": domain}, "password": password}}}
        auth = {"identity": ident}
        if project_id:
            auth["scope"] = {"project": {"id": project_id}}
        elif project_name:
            auth["scope"] = {"project": {"name": project_name, "domain": {"name": domain}}}
        elif system:
            auth["scope"] = {"system": {"all": True}}
        status, headers, doc = self.request("POST", "/auth/tokens", {"auth": auth},
                                            token=False)
        if status != 201:
            raise KeystoneError("authentication of %s failed: %d %s" % (username, status, doc))
        return headers["X-Subject-Token"], doc["token"]

    def token(self, username: str, password: str, **scope) -> str:
        return self.auth(username, password, **scope)[0]

    def token_from(self, token: str, project_id: str) -> str:
        """A new token for the same user from an existing one (keystone's ``token`` method):
        no password hashing, so thousands of distinct tokens are cheap to make."""
        body = {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                         "scope": {"project": {"id": project_id}}}}
        status, headers, doc = self.request("POST", "/auth/tokens", body, token=False)
        if status != 201:
            raise KeystoneError("token authentication failed: %d %s" % (status, doc))
        return headers["X-Subject-Token"]

    def revoke(self, token: str) -> None:
        self._ok("DELETE", "/auth/tokens", headers={"X-Subject-Token": token})

    def validate(self, token: str) -> int:
        """keystone's own answer for a token (200 valid, 404 not)."""
        return self.request("GET", "/auth/tokens", headers={"X-Subject-Token": token})[0]

    def role_id(self, name: str) -> str:
        if name not in self._roles:
            doc = self._ok("GET", "/roles?name=%s" % name)
            if doc["roles"]:
                self._roles[name] = doc["roles"][0]["id"]
            else:
                self._roles[name] = self._ok("POST", "/roles",
                                             {"role": {"name": name}})["role"]["id"]
        return self._roles[name]

    def create_project(self, name: str | None = None, domain_id: str = "default") -> str:
        name = name or "p-" + uuid.uuid4().hex[:10]
        doc = self._ok("POST", "/projects", {"project": {"name": name, "domain_id": domain_id}})
        return doc["project"]["id"]

    def create_user(self, name: str | None = None, password: str = "secret",
                    project_id: str | None = None, role: str | None = None,
                    domain_id: str = "default") -> str:
        """A user; with ``project_id`` and ``role``, also that role on that project."""
        name = name or "u-" + uuid.uuid4().hex[:10]
        user = {"name": name, "password": password, "domain_id": domain_id}
        if project_id:
            user["default_project_id"] = project_id
        uid = self._ok("POST", "/users", {"user": user})["user"]["id"]
        if project_id and role:
            self.assign(uid, role, project_id=project_id)
        return uid

    def assign(self, user_id: str, role: str, project_id: str | None = None,
               system: bool = False) -> None:
        """Grant ``role`` (admin, member, reader, or any name: created if missing)."""
        rid = self.role_id(role)
        target = "/system" if system else "/projects/%s" % project_id
        self._ok("PUT", "%s/users/%s/roles/%s" % (target, user_id, rid))

    def unassign(self, user_id: str, role: str, project_id: str) -> None:
        self._ok("DELETE", "/projects/%s/users/%s/roles/%s"
                 % (project_id, user_id, self.role_id(role)))

    def register_service(self, service_type: str, name: str, url: str,
                         region: str = REGION) -> str:
        """A service in the catalogue with public, internal and admin endpoints at ``url``, in
        ``region`` (made when it is new: a region of its own keeps a second compute service
        apart from the session cloud's nova, which clients would otherwise pick)."""
        if region != REGION:
            self._ok("POST", "/regions", {"region": {"id": region}}, expect=(201, 409))
        sid = self._ok("POST", "/services", {"service": {"type": service_type, "name": name,
                                                         "enabled": True}})["service"]["id"]
        for iface in ("public", "internal", "admin"):
            self._ok("POST", "/endpoints", {"endpoint": {
                "service_id": sid, "interface": iface, "url": url, "region_id": region,
                "enabled": True}})
        return sid

    def service_user(self, name: str, password: str) -> str:
        """A service user (nova, placement, glance, fastnova) with admin and service roles
        in the ``service`` project, as the install guides make them."""
        project = self._project_id("service")
        uid = self.create_user(name, password, project_id=project, role="admin")
        self.assign(uid, "service", project_id=project)
        return uid

    def _project_id(self, name: str) -> str:
        doc = self._ok("GET", "/projects?name=%s" % name)
        return doc["projects"][0]["id"] if doc["projects"] else self.create_project(name)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, however it dies, so a
    killed session leaves no keystone behind."""
    import ctypes
    import signal
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _drop_orphans() -> None:
    """Databases of earlier sessions whose process is gone (killed before their clean-up)."""
    import psycopg2
    conn = psycopg2.connect(PG_DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ks\\_%'")
            names = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    for name in names:
        parts = name.split("_")
        if len(parts) == 3 and parts[1].isdigit() and not os.path.exists("/proc/" + parts[1]):
            _pg("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def _me() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def _my_group() -> str:
    import grp
    return grp.getgrgid(os.getgid()).gr_name


def start_keystone(log=print) -> Keystone:
    """Build (or reuse) the OpenStack venv, create the database and start keystone."""
    started = time.monotonic()
    bin_dir = openstack_bin(log=log)
    root = tempfile.mkdtemp(prefix="fastnova-keystone-")
    database = "ks_%d_%s" % (os.getpid(), uuid.uuid4().hex[:8])
    _drop_orphans()
    _pg("CREATE DATABASE %s" % database)
    ks = Keystone(bin_dir, root, database, free_port())
    try:
        ks.write_config()
        ks.setup(log)
        ks.start()
    except BaseException:
        ks.stop()
        drop(ks)
        raise
    log("keystone: %s ready in %.1f s (database %s)" % (ks.url, time.monotonic() - started,
                                                        database))
    return ks


def drop(ks: Keystone) -> None:
    ks.stop()
    try:
        _pg("DROP DATABASE IF EXISTS %s WITH (FORCE)" % ks.database)
    finally:
        shutil.rmtree(ks.root, ignore_errors=True)


@pytest.fixture(scope="session")
def keystone():
    """The session's keystone (started on first use, dropped at the end)."""
    def log(msg):
        print(msg, flush=True)
        import sys
        sys.__stderr__.write(msg + "\n")
    ks = start_keystone(log=log)
    try:
        yield ks
    finally:
        drop(ks)
