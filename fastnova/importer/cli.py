"""``fastnova import-nova`` and ``fastnova reconcile`` (wired into fastnova.cli)."""
from __future__ import annotations

import argparse
import logging
import sys

from fastnova.importer.mapping import Settings

LOG = logging.getLogger("fastnova.importer")


def _common(p, default_data_dir: str):
    p.add_argument("--cell-db", action="append", default=[], metavar="URL",
                   help="a cell database (repeat per cell, cell0 included); default: every "
                        "cell_mappings row of the API database")
    from fastnova.options import add_flags
    add_flags(p, p.prog.split()[-1])     # --api-db, --data-dir, nova.conf's [DEFAULT] keys, ...


def add_parsers(sub, default_data_dir: str):
    i = sub.add_parser("import-nova", help="build the store from a nova deployment's databases "
                                           "and swap it in live")
    _common(i, default_data_dir)
    i.add_argument("--skip-deleted", action="store_true",
                   help="leave soft-deleted instances out (no changes-since tombstones)")
    i.add_argument("--reload-pid", type=int, default=None, metavar="PID",
                   help="HUP this fastnova master after the swap, so workers open the new store")
    r = sub.add_parser("reconcile", help="repair drift between the store and the cell databases")
    _common(r, default_data_dir)
    r.add_argument("--interval", type=float, default=0, metavar="SECONDS",
                   help="run again every SECONDS (default: once)")


def _settings(args) -> Settings:
    return Settings(instance_name_template=args.instance_name_template,
                    default_availability_zone=args.default_availability_zone,
                    service_down_time=args.service_down_time)


def main(args: argparse.Namespace) -> int:
    from fastnova.importer.novadb import NovaDBError
    try:
        if args.command == "import-nova":
            from fastnova.importer.run import import_nova
            stats = import_nova(args.api_db, args.cell_db, args.data_dir, _settings(args),
                                with_deleted=not args.skip_deleted, reload_pid=args.reload_pid)
            print("import-nova: done: %d servers, %d flavors, %d carried over from the live "
                  "store, %d skipped, %.1fs (%.0f servers/s), peak rss %.0f MB (anonymous %.0f MB), "
                  "generation %s"
                  % (stats.servers, stats.flavors, stats.carried, stats.skipped, stats.seconds,
                     stats.rate(), stats.peak_rss_mb, stats.peak_anon_mb, stats.generation), file=sys.stderr)
            return 0
        from fastnova.importer.reconcile import reconcile
        reconcile(args.api_db, args.cell_db, args.data_dir, _settings(args),
                  interval=args.interval, out=sys.stderr)
        return 0
    except NovaDBError as exc:
        print("%s: %s" % (args.command, exc), file=sys.stderr)
        return 78
    except KeyboardInterrupt:
        return 130
