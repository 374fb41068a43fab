"""``fastnova`` command line: serve, demo (fill a store), import-nova, reconcile, db, config.

Options are described once, in fastnova/options.py; fastnova/config.py reads them from the flags,
the environment and ``--config-file`` (docs/operations.md).
"""
from __future__ import annotations

import argparse
import logging
import sys

from fastnova import config, options
from fastnova.auth import settings as auth_settings

LOG = logging.getLogger("fastnova")
LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"


def default_data_dir() -> str:
    """The data dir when nothing names one ($FASTNOVA_DATA_DIR is read by fastnova.config)."""
    return config.current().data_dir


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("fastnova")
    except Exception:  # not installed as a distribution (a bare checkout on sys.path)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastnova", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version="fastnova " + _version(),
                   help="print fastnova's version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("serve", help="run the API (master + forked workers)",
                       description="Run the API: a master and forked workers.")
    options.add_flags(s, "serve")
    auth_settings.add_flags(s)
    d = sub.add_parser("demo", help="fill a store with N demo servers and exit",
                       description="Fill a store with N deterministic demo servers and exit.")
    d.add_argument("count", type=int, help="how many demo servers")
    d.add_argument("--seed", type=int, default=0, help="demo data seed (default: 0)")
    options.add_flags(d, "demo")
    from fastnova.importer.cli import add_parsers as add_import_parsers
    add_import_parsers(sub, None)
    db = sub.add_parser("db", help="the PostgreSQL API database",
                        description="fastnova's PostgreSQL database.")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    sync = dbsub.add_parser("sync", help="create or migrate the API database schema",
                            description="Create or migrate the database schema.")
    sync.add_argument("--database", default=None, metavar="URL",
                      help="postgresql:// database (default: the configured one)")
    sync.add_argument("--db-schema", default=None, metavar="NAME",
                      help="PostgreSQL schema (default: public)")
    sync.add_argument("--config-file", action="append", default=[], metavar="PATH",
                      help="an INI file of options (repeatable)")
    c = sub.add_parser("config", help="print the effective configuration and where each "
                                      "value came from (secrets masked)",
                       description="Print the effective configuration: every key, its value "
                                   "(secrets masked) and where it came from.")
    options.add_flags(c, "serve")
    return p


def settings_for(args) -> config.Settings:
    """The settings of this run, with the command's flags set back on ``args`` as decided."""
    settings = config.install(config.load(args))
    command = "serve" if args.command == "config" else args.command
    for opt in options.OPTS:
        if command in opt.commands or args.command == "serve":
            setattr(args, opt.name, settings.get(opt.name))
    return settings


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        # Before the environment changes: setproctitle can only take over the argv area while
        # the environment's strings still sit right after it.
        from fastnova.serve.glue import set_title
        set_title("master")
    try:
        settings = settings_for(args)
    except config.ConfigError as exc:
        print("fastnova %s: %s" % (args.command, exc), file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    if settings.files:
        LOG.info("configuration read from %s", ", ".join(settings.files))
    if args.command == "config":
        config.print_effective(settings, sys.stdout)
        return 0
    if args.command == "serve":
        from fastnova.serve import serve
        return serve(args)
    if args.command == "demo":
        from fastnova.serve import fill_demo
        return fill_demo(args.data_dir, args.count, args.seed)
    if args.command in ("import-nova", "reconcile"):
        if not args.api_db:
            print("fastnova %s: nova's API database is needed: --api-db URL, or "
                  "[api_database] connection in a --config-file" % args.command, file=sys.stderr)
            return 2
        from fastnova.importer.cli import main as import_main
        return import_main(args)
    if args.command == "db":
        from fastnova.db.schema import sync
        database = args.database or settings.database
        if not database:
            print("fastnova db sync: --database URL (or [fastnova] database) is needed",
                  file=sys.stderr)
            return 2
        return sync(database, schema=args.db_schema or settings.db_schema)
    return 2


if __name__ == "__main__":
    sys.exit(main())
