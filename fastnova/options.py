"""Every fastnova option: its key, flag, environment variable, default, type and help.

One table, read by the command line (``add_flags``), the settings loader (fastnova.config) and
the documentation (docs/operations.md lists the same rows).  A flag is ``--<name with dashes>``,
a key ``[fastnova] <name>``, an environment variable ``FASTNOVA_<NAME>``.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Callable

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
QUOTA_NAMES = ("instances", "cores", "ram", "metadata_items", "key_pairs", "server_groups",
               "server_group_members", "injected_files", "injected_file_content_bytes",
               "floating_ips", "security_groups", "security_group_rules")


def default_data_dir() -> str:
    """/var/lib/fastnova for root, else $XDG_DATA_HOME/fastnova (FASTNOVA_DATA_DIR is read with
    the other variables, by fastnova.config)."""
    if os.geteuid() == 0:
        return "/var/lib/fastnova"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "fastnova")


# -- value types (each takes the text of a flag, variable or key) --------------------------------

def parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]") or "0.0.0.0", int(port)


def show_bind(value) -> str:
    host, port = value
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def parse_workers(text) -> int:
    if str(text).strip().lower() == "auto":
        return os.cpu_count() or 1
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("workers must be at least 1")
    return n


def parse_feed_nice(text) -> int:
    n = int(text)
    if not 0 <= n <= 19:
        # Negative would put the feed above the readers (and needs privileges a non-root
        # operator lacks: the feed would fail at every start).
        raise argparse.ArgumentTypeError("feed niceness must be 0 to 19")
    return n


def parse_log_level(text: str) -> str:
    level = str(text).strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError("log level must be one of %s (any case)"
                                         % ", ".join(LOG_LEVELS).lower())
    return level


def parse_bool(text) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % text)


def parse_positive_int(text) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return n


def parse_quota(text: str) -> dict:
    out = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in QUOTA_NAMES:
            raise argparse.ArgumentTypeError("expected RES=N,... with RES one of %s"
                                             % ", ".join(QUOTA_NAMES))
        out[name] = int(value)
    return out


def _choice(*values) -> Callable[[str], str]:
    def parse(text):
        value = str(text).strip().lower()
        if value not in values:
            raise argparse.ArgumentTypeError("expected one of %s" % ", ".join(values))
        return value
    return parse


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Opt:
    name: str
    default: object
    help: str
    parse: Callable = str
    commands: tuple = ("serve",)        # the commands with this flag; () = key/variable only
    metavar: str | None = None
    secret: bool = False
    export: bool = False                # a process switch: put in subprocesses' environment
    render: Callable | None = None      # value -> text (for `fastnova config` and the env)

    @property
    def flag(self) -> str | None:
        return self.name.replace("_", "-") if self.commands else None

    @property
    def env(self) -> str:
        return "FASTNOVA_" + self.name.upper()

    def default_value(self):
        value = self.default() if callable(self.default) else self.default
        return self.parse(value) if isinstance(value, str) and self.parse is not str else value

    def show(self, value) -> str:
        if value is None:
            return ""
        if self.render is not None:
            return self.render(value)
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, dict):
            return ",".join("%s=%s" % kv for kv in sorted(value.items()))
        return str(value)


S, IMPORT = ("serve",), ("import-nova", "reconcile")
OPTS: tuple[Opt, ...] = (
    # -- serving
    Opt("bind", "0.0.0.0:8774", "listen address (nova-api's port)", parse_bind,
        metavar="HOST:PORT", render=show_bind),
    Opt("workers", "auto", "worker processes, each with one event loop (auto: one per core)",
        parse_workers, metavar="N|auto"),
    Opt("data_dir", default_data_dir, "where the store, the feed journal and the outbox live",
        commands=("serve", "demo", "import-nova", "reconcile"), metavar="DIR"),
    Opt("demo", 0, "fill an empty store with N deterministic demo servers", int, metavar="N"),
    Opt("auth", "noauth", "identity scheme: keystone validates tokens as keystonemiddleware "
        "does ([keystone_authtoken], docs/auth.md); noauth trusts 'X-Auth-Token: USER:PROJECT' "
        "(tests and demos only)", _choice("noauth", "keystone"), metavar="noauth|keystone"),
    Opt("policy_file", None, "an oslo.policy policy.yaml overriding nova's default rules "
        "(nova's [oslo_policy] policy_file); reloaded when it changes", metavar="PATH"),
    Opt("public_endpoint", None, "base of the links in documents (nova's [api] "
        "compute_link_prefix; default: the client's Host)", metavar="URL"),
    Opt("db_flavour", "mysql", "answer name/regex filters and sorts as a nova on this database "
        "would: mysql (case-insensitive REGEXP, NULLs first) or postgresql",
        _choice("mysql", "postgresql"), metavar="mysql|postgresql"),
    Opt("upstream", None, "nova-api to forward what fastnova does not serve itself to "
        "(default: nova's 501 fault)", metavar="URL"),
    Opt("commands", "local", "where POST/PUT/PATCH/DELETE and server actions go: local "
        "(fastnova takes them), upstream (the --upstream nova-api takes them and the store "
        "shows what it accepted: docs/deploy.md), nova (not implemented yet)",
        _choice("local", "upstream", "nova"), metavar="local|upstream|nova"),
    Opt("max_limit", 1000, "most items a page holds (nova's [api] max_limit)", int, metavar="N"),
    Opt("timeout", 30.0, "seconds without a heartbeat before a worker is replaced", float,
        metavar="S"),
    Opt("graceful_timeout", 30.0, "TERM/HUP: seconds workers may take to drain", float,
        metavar="S"),
    Opt("header_timeout", None, "a request must be complete S seconds after it starts, else "
        "408 (default 30)", float, metavar="S"),
    Opt("keepalive_timeout", None, "idle keep-alive connections close after S seconds "
        "(default 75)", float, metavar="S"),
    Opt("max_connections", None, "open connections per worker; at N it stops accepting until "
        "one closes, and new clients wait in the backlog (default: the descriptor limit, "
        "ulimit -n, less an eighth)", int, metavar="N"),
    Opt("log_level", "INFO", "debug, info, warning, error or critical (any case)",
        parse_log_level, commands=("serve", "demo", "import-nova", "reconcile", "config"),
        metavar="LEVEL"),
    # -- operations: logs, health, metrics
    Opt("access_log", None, "write one line per request to this file ('-': standard error; "
        "default: none)", metavar="PATH"),
    Opt("metrics_bind", None, "serve Prometheus metrics on this address of its own "
        "(default: none)", parse_bind, metavar="HOST:PORT", render=show_bind),
    Opt("healthcheck_disable_file", None, "while this file exists /healthcheck answers 503 "
        "DISABLED BY FILE (oslo.middleware's disable_by_file_path)", metavar="PATH"),
    Opt("healthcheck_detailed", False, "show the detailed /healthcheck JSON to everyone who "
        "asks for it, not only to admins", parse_bool, commands=()),
    Opt("health_feed_lag", 60.0, "/healthcheck fails when the feed is further behind than "
        "this many seconds", float, metavar="S"),
    Opt("health_outbox_depth", 10000, "/healthcheck fails when more casts than this wait in "
        "the outbox", int, metavar="N"),
    # -- commands (docs/commands.md)
    Opt("database", None, "postgresql:// database of fastnova's commands (default: none; the "
        "store is the record)", metavar="URL", secret=True),
    Opt("db_schema", None, "PostgreSQL schema of that database (default: public)",
        metavar="NAME"),
    Opt("amqp", None, "RabbitMQ for casts and cell updates (nova's [DEFAULT] transport_url; "
        "default: none, a simulated cell runs in-process)", metavar="URL", secret=True),
    Opt("outbox_bound", None, "casts waiting before commands answer 503 (default 100000)",
        int, metavar="N"),
    Opt("quota", None, "default quotas, e.g. instances=10,cores=20,ram=51200 (nova's [quota])",
        parse_quota, metavar="RES=N,..."),
    Opt("cast_exchange", None, "exchange the casts go to", metavar="NAME"),
    Opt("cast_queue", None, "the cell's durable cast queue", metavar="NAME"),
    Opt("feed_exchange", None, "the cells' update exchange", metavar="NAME"),
    Opt("feed_queue", None, "this host's update queue", metavar="NAME"),
    Opt("feed_nice", None, "CPU niceness of cellfeed above the workers' (default 10: readers "
        "come first; 0: equal)", parse_feed_nice, metavar="N"),
    Opt("sim_step", None, "embedded simulated cell: seconds per workflow step (default 0.2)",
        float, metavar="S"),
    # -- import-nova and reconcile (docs/import.md)
    Opt("api_db", None, "nova's API database (nova.conf [api_database] connection)",
        commands=IMPORT, metavar="URL", secret=True),
    Opt("instance_name_template", "instance-%08x", "nova.conf [DEFAULT] "
        "instance_name_template", commands=IMPORT, metavar="TEMPLATE"),
    Opt("default_availability_zone", "nova", "nova.conf [DEFAULT] default_availability_zone",
        commands=IMPORT, metavar="AZ"),
    Opt("service_down_time", 60, "nova.conf [DEFAULT] service_down_time", int,
        commands=IMPORT, metavar="S"),
    # -- process switches (keys and variables only)
    Opt("pure", False, "use the pure-Python twins instead of the compiled hot path",
        parse_bool, commands=(), export=True),
    Opt("require_ext", False, "a missing or broken compiled build is an error, not a silent "
        "slowdown", parse_bool, commands=(), export=True),
    Opt("mapped_reads", True, "the show fast path reads blobs in place from LMDB's mapped "
        "pages (0: through py-lmdb)", parse_bool, commands=(), export=True),
    Opt("hugepages", True, "ask for huge pages on the store's mapping (0 for stores much "
        "larger than RAM)", parse_bool, commands=(), export=True),
    Opt("edge_io", True, "serve connections through the edge-triggered epoll set (0: uvloop's "
        "transports)", parse_bool, commands=(), export=True),
    Opt("recover_settle", 5.0, "seconds a pending command may be in flight before recovery "
        "takes it over", float, commands=(), export=True),
)


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The command's flags, each defaulting to None (unset: the environment, the files or the
    default decide; fastnova.config)."""
    for opt in OPTS:
        if command not in opt.commands:
            continue
        shown = opt.default() if callable(opt.default) else opt.default
        help_text = opt.help if shown is None or "default" in opt.help else \
            "%s (default: %s)" % (opt.help, opt.show(shown) if not isinstance(shown, str)
                                  else shown)
        parser.add_argument("--" + opt.flag, dest=opt.name, type=opt.parse, default=None,
                            metavar=opt.metavar, help=help_text.replace("%", "%%"))
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="an INI file of options ([fastnova] keys, or a nova.conf as it "
                             "is); repeat for more, later files win")
