"""``fastnova`` command line: serve, demo (fill a store), and the options table in README.md."""
from __future__ import annotations

import argparse
import logging
import os
import sys

LOG = logging.getLogger("fastnova")


def default_data_dir() -> str:
    """$FASTNOVA_DATA_DIR, else /var/lib/fastnova for root, else $XDG_DATA_HOME/fastnova."""
    env = os.environ.get("FASTNOVA_DATA_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/fastnova"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "fastnova")


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]") or "0.0.0.0", int(port)


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("workers must be at least 1")
    return n


def _feed_nice(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 19:
        # Negative would put the feed above the readers (and needs privileges a non-root
        # operator lacks: the feed would fail at every start).
        raise argparse.ArgumentTypeError("feed niceness must be 0 to 19")
    return n


from fastnova.auth import settings as auth_settings  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastnova", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the API (master + forked workers)")
    s.add_argument("--bind", type=_bind, default=("0.0.0.0", 8774), metavar="HOST:PORT",
                   help="listen address (default 0.0.0.0:8774, nova-api's port)")
    s.add_argument("--workers", type=_workers, default=_workers("auto"), metavar="N|auto",
                   help="worker processes (default: one per core)")
    s.add_argument("--data-dir", default=default_data_dir(),
                   help="store directory (default: %(default)s)")
    s.add_argument("--demo", type=int, default=0, metavar="N",
                   help="fill an empty store with N deterministic demo servers")
    s.add_argument("--auth", choices=["noauth", "keystone"], default="noauth",
                   help="identity scheme: keystone validates tokens as keystonemiddleware "
                        "does ([keystone_authtoken], docs/auth.md); noauth trusts "
                        "'X-Auth-Token: USER:PROJECT' (tests and demos only)")
    s.add_argument("--config-file", action="append", default=[], metavar="PATH",
                   help="INI file (a nova.conf works): [keystone_authtoken], [oslo_policy]")
    auth_settings.add_flags(s)
    s.add_argument("--public-endpoint", default=None, metavar="URL",
                   help="base of the links in documents (default: the client's Host)")
    s.add_argument("--db-flavour", choices=["mysql", "postgresql"], default="mysql",
                   help="answer name/regex filters and sorts as a nova on this database would: "
                        "mysql (case-insensitive REGEXP, NULLs first) or postgresql")
    s.add_argument("--upstream", default=None, metavar="URL",
                   help="nova-api to forward everything fastnova does not serve itself to "
                        "(default: answer those with nova's 501 fault)")
    s.add_argument("--timeout", type=float, default=30.0,
                   help="seconds without a heartbeat before a worker is replaced")
    s.add_argument("--graceful-timeout", type=float, default=None, metavar="S",
                   help="TERM/HUP: seconds workers may take to drain (default 30, or "
                        "$FASTNOVA_GRACEFUL_TIMEOUT)")
    s.add_argument("--header-timeout", type=float, default=None, metavar="S",
                   help="a request must be complete S seconds after it starts: else 408 "
                        "(default 30, or $FASTNOVA_HEADER_TIMEOUT)")
    s.add_argument("--keepalive-timeout", type=float, default=None, metavar="S",
                   help="idle keep-alive connections close after S seconds (default 75, or "
                        "$FASTNOVA_KEEPALIVE_TIMEOUT)")
    s.add_argument("--log-level", default="INFO")
    _add_command_options(s)
    d = sub.add_parser("demo", help="fill a store with N demo servers and exit")
    d.add_argument("count", type=int)
    d.add_argument("--data-dir", default=default_data_dir())
    d.add_argument("--seed", type=int, default=0)
    from fastnova.importer.cli import add_parsers as add_import_parsers
    add_import_parsers(sub, default_data_dir())
    db = sub.add_parser("db", help="the PostgreSQL API database")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    sync = dbsub.add_parser("sync", help="create or migrate the API database schema")
    sync.add_argument("--database", required=True, metavar="URL")
    sync.add_argument("--db-schema", default=None, help="PostgreSQL schema (default: public)")
    return p


def _add_command_options(s):
    """Options of the commands (fastnova.commands, docs/commands.md)."""
    s.add_argument("--database", default=None, metavar="URL",
                   help="postgresql:// API database (default: none; the store is the record)")
    s.add_argument("--db-schema", default=None, help=argparse.SUPPRESS)
    s.add_argument("--amqp", default=None, metavar="URL",
                   help="RabbitMQ for casts and cell updates (default: none; a simulated cell "
                        "runs in-process)")
    s.add_argument("--outbox-bound", type=int, default=None, metavar="N",
                   help="casts waiting before commands answer 503 (default 100000)")
    s.add_argument("--quota", default=None, metavar="RES=N,...",
                   help="default quotas, e.g. instances=10,cores=20,ram=51200")
    s.add_argument("--cast-exchange", default=None, help="exchange the casts go to")
    s.add_argument("--cast-queue", default=None, help="the cell's durable cast queue")
    s.add_argument("--feed-exchange", default=None, help="the cells' update exchange")
    s.add_argument("--feed-queue", default=None, help="this host's update queue")
    s.add_argument("--feed-nice", type=_feed_nice, default=None, metavar="N",
                   help="CPU niceness of cellfeed above the workers' (default 10: readers "
                        "come first, the feed batches more when it falls behind; 0: equal)")
    s.add_argument("--sim-step", type=float, default=None, metavar="SECONDS",
                   help="embedded simulated cell: seconds per workflow step (default 0.2)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "INFO"),
                        format="%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        from fastnova.serve import serve
        return serve(args)
    if args.command == "demo":
        from fastnova.serve import fill_demo
        return fill_demo(args.data_dir, args.count, args.seed)
    if args.command in ("import-nova", "reconcile"):
        from fastnova.importer.cli import main as import_main
        return import_main(args)
    if args.command == "db":
        from fastnova.db.schema import sync
        return sync(args.database, schema=args.db_schema)
    return 2


if __name__ == "__main__":
    sys.exit(main())
