"""One settings object, read once at start: flags, then environment, then files, then defaults.

Every option has a key: ``--foo-bar`` is ``[fastnova] foo_bar`` in a ``--config-file`` (INI as
oslo.config reads it: sections, ``key = value``, ``#``/``;`` comments, later files win) and
``FASTNOVA_FOO_BAR`` in the environment.  A nova.conf can be passed as it is: what means the same
to fastnova is read from nova's own names (``NOVA_KEYS`` below), the rest is ignored and said so
at DEBUG.  Sections fastnova hands on as they are (``[keystone_authtoken]`` for keystonemiddleware)
are given raw by ``Settings.section``.  docs/operations.md has the table of every key.

The master reads the settings once (``fastnova.cli``) and installs them (``install``); the
workers, forked after, see the same object.  Code that runs without a command line (tests, tools)
gets ``current()``: the environment over the defaults, read afresh each call, so a test's
``monkeypatch.setenv`` still works.
"""
from __future__ import annotations

import argparse
import configparser
import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from fastnova import options as _opts

LOG = logging.getLogger("fastnova.config")
SECTION = "fastnova"
ENV_PREFIX = "FASTNOVA_"
SECRET_WORDS = re.compile(r"pass|secret|token|credential|(^|_)key$", re.I)

Opt = _opts.Opt
OPTS = _opts.OPTS
BY_NAME = {o.name: o for o in OPTS}


class ConfigError(Exception):
    """A value that cannot be used (the message names where it came from)."""


# -- nova.conf names that mean the same to fastnova -------------------------------------------

def _transport_url(value: str) -> str:
    """oslo.messaging's rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost -> the first
    host as amqp:// (pika's scheme)."""
    scheme, rest = value.split("://", 1) if "://" in value else ("rabbit", value)
    hosts, slash, vhost = rest.partition("/")
    first = hosts.split(",")[0]
    return "%s://%s/%s" % ("amqps" if scheme.endswith("s") and scheme != "rabbit" else "amqp",
                           first, vhost if slash else "")


def _sqlalchemy_url(value: str) -> str:
    """nova's postgresql+psycopg2:// / mysql+pymysql:// as the plain scheme."""
    scheme, sep, rest = value.partition("://")
    return scheme.split("+")[0] + sep + rest


def _bool_debug(value: str):
    return "DEBUG" if _opts.parse_bool(value) else None


def _seconds_or_none(value: str):
    return None if float(value) <= 0 else value      # nova: 0 means "wait forever"


# (nova section, nova key) -> (fastnova key, conversion of the text or None to skip it)
NOVA_KEYS = {
    ("DEFAULT", "osapi_compute_workers"): ("workers", str),
    ("DEFAULT", "transport_url"): ("amqp", _transport_url),
    ("DEFAULT", "debug"): ("log_level", _bool_debug),
    ("DEFAULT", "instance_name_template"): ("instance_name_template", str),
    ("DEFAULT", "default_availability_zone"): ("default_availability_zone", str),
    ("DEFAULT", "service_down_time"): ("service_down_time", str),
    ("api", "max_limit"): ("max_limit", str),
    ("oslo_policy", "policy_file"): ("policy_file", str),
    ("api", "compute_link_prefix"): ("public_endpoint", str),
    ("api_database", "connection"): ("api_db", _sqlalchemy_url),
    ("wsgi", "client_socket_timeout"): ("keepalive_timeout", _seconds_or_none),
    ("healthcheck", "disable_by_file_path"): ("healthcheck_disable_file", str),
    ("healthcheck", "detailed"): ("healthcheck_detailed", str),
    ("oslo_middleware", "disable_by_file_path"): ("healthcheck_disable_file", str),
}
# Read in a special way (see _nova_values): the listen address is two keys; quotas are many.
NOVA_SPECIAL = {("DEFAULT", "osapi_compute_listen"), ("DEFAULT", "osapi_compute_listen_port")}
# Sections handed on raw (Settings.section) rather than read key by key.
RAW_SECTIONS = {"keystone_authtoken"}
# Known, deliberately not read, with the reason given at DEBUG.
NOVA_IGNORED = {
    ("database", "connection"): "nova-api reads the cells' databases from the API database's "
                                "cell_mappings, and so do import-nova and reconcile",
}


@dataclass
class _Source:
    value: object
    where: str


class Settings:
    """The effective configuration: ``settings.bind``, ``settings.get("bind")``,
    ``settings.source("bind")``, ``settings.section("keystone_authtoken")``."""

    def __init__(self, values: dict, sources: dict, sections: dict, files=()):
        self._values = values
        self._sources = sources
        self._sections = sections
        self.files = tuple(files)

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name, default=None):
        return self._values.get(name, default)

    def source(self, name) -> str:
        return self._sources.get(name, "default")

    def section(self, name: str) -> dict[str, str]:
        """A section's raw values from the files (later files win), e.g. keystone_authtoken."""
        return dict(self._sections.get(name, {}))

    def sections(self) -> list[str]:
        return sorted(self._sections)

    def replace(self, **values) -> "Settings":
        """A copy with some values set (as if given as flags): for tests and tools."""
        out = Settings(dict(self._values), dict(self._sources), self._sections, self.files)
        for name, value in values.items():
            out._values[name] = value
            out._sources[name] = "set"
        return out

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, shown value, source) for every key, secrets masked."""
        rows = []
        for opt in OPTS:
            rows.append(("[%s] %s" % (SECTION, opt.name), mask(opt, self._values[opt.name]),
                         self.source(opt.name)))
        for name in sorted(RAW_SECTIONS & set(self._sections)):
            for key, value in sorted(self._sections[name].items()):
                shown = "****" if SECRET_WORDS.search(key) else _mask_url(value)
                rows.append(("[%s] %s" % (name, key), shown, "file (handed on as is)"))
        return rows


def mask(opt: Opt, value) -> str:
    if value is None:
        return "(none)"
    text = opt.show(value)
    if opt.secret:
        return _mask_url(text) if "://" in text else "****"
    return text


def _mask_url(text: str) -> str:
    """A URL's password as ****: postgresql://nova:****@db/nova."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.password:
        return text
    netloc = parts.netloc.replace(":" + parts.password + "@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# -- reading ------------------------------------------------------------------------------------

def read_files(paths) -> dict[str, dict[str, str]]:
    """Every section of the files, later files winning key by key ([DEFAULT] is a section like
    the others, as oslo.config treats it: its values do not leak into the other sections)."""
    merged: dict[str, dict[str, str]] = {}
    for path in paths:
        parser = configparser.ConfigParser(interpolation=None, strict=False,
                                           default_section="\x00none", comment_prefixes=("#", ";"),
                                           inline_comment_prefixes=None)
        parser.optionxform = str
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f, source=path)
        except OSError as exc:
            raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror)) from None
        except configparser.Error as exc:
            raise ConfigError("config file %s: %s" % (path, exc)) from None
        for section in parser.sections():
            target = merged.setdefault(section, {})
            for key, value in parser.items(section, raw=True):
                target[key] = (value, path)
    return merged


def _file_values(files: dict) -> dict[str, _Source]:
    """fastnova keys from the files: [fastnova] first, then nova.conf's names."""
    out: dict[str, _Source] = {}
    for (section, key), (name, convert) in NOVA_KEYS.items():
        item = files.get(section, {}).get(key)
        if item is None or name in out:
            continue
        converted = convert(item[0])
        if converted is not None:
            out[name] = _Source(converted, "%s [%s] %s" % (item[1], section, key))
    _nova_listen(files, out)
    _nova_quotas(files, out)
    for key, (value, path) in files.get(SECTION, {}).items():
        if key not in BY_NAME:
            raise ConfigError("%s: [%s] %s is not a fastnova option" % (path, SECTION, key))
        out[key] = _Source(value, "%s [%s] %s" % (path, SECTION, key))
    _say_ignored(files)
    return out


def _nova_listen(files, out):
    host = files.get("DEFAULT", {}).get("osapi_compute_listen")
    port = files.get("DEFAULT", {}).get("osapi_compute_listen_port")
    if host is None and port is None:
        return
    text = "%s:%s" % (host[0] if host else "0.0.0.0", port[0] if port else "8774")
    if ":" in text.rsplit(":", 1)[0]:
        text = "[%s]:%s" % tuple(text.rsplit(":", 1))
    where = (host or port)[1]
    out["bind"] = _Source(text, "%s [DEFAULT] osapi_compute_listen(_port)" % where)


def _nova_quotas(files, out):
    """nova's [quota] instances = 10, cores = 20, ... as fastnova's quota key."""
    from fastnova.options import QUOTA_NAMES
    section = files.get("quota", {})
    known = {k: v for k, v in section.items() if k in QUOTA_NAMES}
    if known:
        text = ",".join("%s=%s" % (k, v[0]) for k, v in sorted(known.items()))
        out["quota"] = _Source(text, "%s [quota]" % next(iter(known.values()))[1])


def _say_ignored(files):
    used = set(NOVA_KEYS) | NOVA_SPECIAL
    for section, items in files.items():
        if section == SECTION or section in RAW_SECTIONS:
            continue
        for key in items:
            if (section, key) in used or (section == "quota" and key in _opts.QUOTA_NAMES):
                continue
            reason = NOVA_IGNORED.get((section, key), "no fastnova meaning")
            LOG.debug("config: [%s] %s ignored: %s", section, key, reason)


def _env_values(environ) -> dict[str, _Source]:
    out = {}
    for opt in OPTS:
        value = environ.get(opt.env)
        if value not in (None, ""):
            out[opt.name] = _Source(value, "env " + opt.env)
    return out


def _flag_values(args) -> dict[str, _Source]:
    out = {}
    if args is None:
        return out
    for opt in OPTS:
        value = getattr(args, opt.name, None)
        if value is not None and opt.flag:
            out[opt.name] = _Source(value, "--" + opt.flag)
    return out


def load(args=None, environ=None, files=None) -> Settings:
    """The settings for this run: flags (an argparse namespace), environment, files, defaults."""
    environ = os.environ if environ is None else environ
    if files is None:
        files = list(getattr(args, "config_file", None) or [])
    raw = read_files(files)
    layers = [_flag_values(args), _env_values(environ), _file_values(raw)]
    values, sources = {}, {}
    for opt in OPTS:
        for layer in layers:
            if opt.name in layer:
                src = layer[opt.name]
                values[opt.name] = _parse(opt, src)
                sources[opt.name] = src.where
                break
        else:
            values[opt.name] = opt.default_value()
            sources[opt.name] = "default"
    sections = {name: {k: v for k, (v, _p) in items.items()} for name, items in raw.items()}
    return Settings(values, sources, sections, files)


def _parse(opt: Opt, src: _Source):
    if not isinstance(src.value, str):
        return src.value                     # a flag argparse already converted
    try:
        return opt.parse(src.value)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigError("%s: bad value %r for %s: %s" % (src.where, src.value, opt.name,
                                                           exc)) from None


# -- the process's settings -----------------------------------------------------------------------

_INSTALLED: Settings | None = None


def install(settings: Settings) -> Settings:
    """Make these the process's settings (before fork: the workers inherit them).  The process
    switches are also put in the environment, so the subprocesses fastnova starts (cellfeed's
    applier) decide them the same way."""
    global _INSTALLED
    _INSTALLED = settings
    for opt in OPTS:
        value = opt.show(settings.get(opt.name))
        if opt.export and settings.source(opt.name) != "default" and \
                os.environ.get(opt.env) != value:
            os.environ[opt.env] = value
    return settings


def current() -> Settings:
    """The installed settings, or (no command line: tests, tools) the environment over the
    defaults, read now."""
    if _INSTALLED is not None:
        return _INSTALLED
    return load(None, files=())


def uninstall():
    global _INSTALLED
    _INSTALLED = None


def print_effective(settings: Settings, out) -> None:
    """``fastnova config``: every key, its value (secrets masked) and where it came from."""
    rows = settings.describe()
    width = max(len(k) for k, _v, _s in rows)
    vwidth = min(48, max(len(v) for _k, v, _s in rows))
    for key, value, source in rows:
        out.write("%-*s = %-*s  # %s\n" % (width, key, vwidth, value, source))
