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
    s.add_argument("--auth", choices=["noauth"], default="noauth",
                   help="identity scheme; noauth trusts 'X-Auth-Token: USER:PROJECT'")
    s.add_argument("--public-endpoint", default=None, metavar="URL",
                   help="base of the links in documents (default: the client's Host)")
    s.add_argument("--upstream", default=None, metavar="URL",
                   help="nova-api to forward everything fastnova does not serve itself to "
                        "(default: answer those with nova's 501 fault)")
    s.add_argument("--timeout", type=float, default=30.0,
                   help="seconds without a heartbeat before a worker is replaced")
    s.add_argument("--log-level", default="INFO")
    d = sub.add_parser("demo", help="fill a store with N demo servers and exit")
    d.add_argument("count", type=int)
    d.add_argument("--data-dir", default=default_data_dir())
    d.add_argument("--seed", type=int, default=0)
    from fastnova.importer.cli import add_parsers as add_import_parsers
    add_import_parsers(sub, default_data_dir())
    return p


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
    return 2


if __name__ == "__main__":
    sys.exit(main())
