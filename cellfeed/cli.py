"""``cellfeed run`` (the consumer) and ``cellfeed publish`` (send updates, with confirms)."""
from __future__ import annotations

import argparse
import logging
import sys

import orjson

from cellfeed import service
from cellfeed.consumer import Tuning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cellfeed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub.add_parser("run", help="consume cell updates into the store"))
    _add_publish(sub.add_parser("publish", help="publish cell updates (JSON lines)"))
    _add_cellsim(sub.add_parser("cell-sim", help="a simulated cell: consume casts, publish "
                                                 "updates"))
    return parser


def _add_cellsim(p):
    _add_common(p)
    p.add_argument("--cast-exchange", default="fastnova.cell-casts")
    p.add_argument("--cast-queue", default="fastnova.cell-casts.cell1")
    p.add_argument("--step", type=float, default=0.2, help="seconds per workflow step")
    p.add_argument("--name", default="cell1")
    p.add_argument("--log-level", default="INFO")


def _add_common(p):
    p.add_argument("--amqp", default=service.DEFAULT_URL, help="AMQP URL (default %(default)s)")
    p.add_argument("--exchange", default=service.DEFAULT_EXCHANGE,
                   help="the cells' update exchange (default %(default)s)")


def _add_run(p):
    _add_common(p)
    p.add_argument("--data-dir", required=True, help="the API host's data dir (store, journal)")
    p.add_argument("--queue", default=None,
                   help="this host's durable queue (default fastnova.feed.<hostname>)")
    p.add_argument("--prefetch", type=int, default=Tuning.prefetch)
    p.add_argument("--batch-size", type=int, default=Tuning.batch_size,
                   help="a group this large is written at once while the disk is idle "
                        "(default %(default)s)")
    p.add_argument("--batch-interval", type=float, default=Tuning.batch_interval,
                   help="seconds a group waits for more deliveries while the disk is idle; "
                        "0: the end of the current read (default %(default)s)")
    p.add_argument("--decoder", choices=["", "nova"], default=None,
                   help="message format: '' (fastnova's contract v1, docs/cellfeed.md) or "
                        "'nova' (nova's versioned notifications in the oslo.messaging envelope)")
    p.add_argument("--binding-key", default=None,
                   help="queue binding on the exchange (default '#'; nova: "
                        "'versioned_notifications.*')")
    p.add_argument("--no-exchange-durable", dest="exchange_durable", action="store_const",
                   const=False, default=None,
                   help="declare the exchange non-durable, as nova does unless "
                        "amqp_durable_queues is set (RabbitMQ refuses a mismatched declare)")
    p.add_argument("--segment-bytes", type=int, default=None,
                   help="journal segment size before rotation (default 64 MiB)")
    p.add_argument("--apply-interval", type=float, default=None,
                   help="seconds between store commits under a light load, at least "
                        "(default %s)" % service.Options.apply_interval)
    p.add_argument("--render-cache", type=int, default=None,
                   help="recently written servers whose rendering a patch reuses "
                        "(default 20000, ~10 KB each; 0: none)")
    p.add_argument("--log-level", default="INFO")


def _add_publish(p):
    _add_common(p)
    p.add_argument("files", nargs="*", default=["-"],
                   help="files of updates, one JSON update (or array) a line; - is stdin")
    p.add_argument("--per-message", type=int, default=1,
                   help="updates batched into one message (default %(default)s)")
    p.add_argument("--declare-queue", default=None,
                   help="create this host queue first, so nothing is dropped before it runs")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        logging.basicConfig(level=args.log_level.upper(),
                            format="%(asctime)s %(process)d %(levelname)s %(message)s")
        # pika narrates every connection step at INFO; cellfeed logs what matters itself.
        logging.getLogger("pika").setLevel(logging.WARNING)
        return service.run(args)
    if args.command == "cell-sim":
        from cellfeed import simcell_broker
        logging.basicConfig(level=args.log_level.upper(),
                            format="%(asctime)s %(process)d %(levelname)s %(message)s")
        logging.getLogger("pika").setLevel(logging.WARNING)
        return simcell_broker.run(args.amqp, args.exchange, args.cast_exchange, args.cast_queue,
                           args.step, args.name)
    return _publish(args)


def _publish(args) -> int:
    from cellfeed.publish import PublishError, Publisher, chunks
    updates = list(_read_updates(args.files))
    try:
        with Publisher(args.amqp, args.exchange) as pub:
            if args.declare_queue:
                pub.declare_queue(args.declare_queue)
            for chunk in chunks(updates, args.per_message):
                pub.send(chunk if args.per_message > 1 else chunk[0])
    except PublishError as exc:
        print("cellfeed publish: %s" % exc, file=sys.stderr)
        return 1
    print("published %d updates" % len(updates), file=sys.stderr)
    return 0


def _read_updates(files):
    for name in files:
        stream = sys.stdin.buffer if name == "-" else open(name, "rb")
        with stream:
            for line in stream:
                if line.strip():
                    doc = orjson.loads(line)
                    yield from (doc if isinstance(doc, list) else [doc])


if __name__ == "__main__":
    sys.exit(main())
