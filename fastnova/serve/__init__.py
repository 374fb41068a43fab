"""``fastnova serve``: prepare the store (in a short-lived child), bind, run the master.

The package, in the order a request meets it: this entry, ``master`` (the pre-fork master:
sockets, signals, supervised children), ``worker`` (one worker process: its store reader, the
app, the accept loop), ``loop`` (uvloop, after fork) and ``malloc`` (the workers' heap tuning).

The master itself never opens the store: a child creates it (and fills it with demo data when
asked) and exits, so no LMDB handle is inherited across the workers' fork.

``args`` holds the decided settings (fastnova.config: flags, environment, --config-file,
defaults), so tests can still make the connection timeouts short with FASTNOVA_HEADER_TIMEOUT,
FASTNOVA_KEEPALIVE_TIMEOUT and FASTNOVA_GRACEFUL_TIMEOUT.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from types import SimpleNamespace

from fastnova.serve import metrics
from fastnova.serve.master import GRACEFUL_TIMEOUT, Master, bind

LOG = logging.getLogger("fastnova")
EX_PORT_TAKEN = 98     # EADDRINUSE's number: the listen address is taken
FEED_NICE = 10          # cellfeed's niceness above the workers' (serve --feed-nice)


def run_in_child(fn, *args) -> int:
    """Run fn(*args) in a forked child and return its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn(*args)
        except BaseException:
            logging.getLogger("fastnova").exception("store preparation failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def fill_demo(data_dir: str, count: int, seed: int = 0, embedded_cell: bool = False) -> int:
    """Create the store if needed; fill it with ``count`` demo servers if it has none.  With
    the embedded simulated cell, its services are reported (through the feed's contract and
    applier) so that availability zones list its hosts from the start."""
    from fastnova import demo
    from fastnova.store.writer import StoreWriter

    os.makedirs(data_dir, exist_ok=True)
    writer = StoreWriter.open(data_dir, sync=False)
    try:
        with writer.env.begin() as txn:
            have = txn.stat(writer.dbs[b"records"])["entries"]
        if count and have == 0:
            from fastnova.progress import Progress
            progress = Progress("demo", total=count)
            demo.fill(writer, count, seed=seed, progress=lambda done, _total: progress.update(done))
            progress.close()
        elif count:
            LOG.info("store already holds %d servers; --demo leaves it as it is", have)
        if embedded_cell:
            _report_sim_services(writer)
        writer.env.sync(True)
    finally:
        writer.close()
    return 0


_FLAVOUR_EXIT = {"mysql": 10, "postgresql": 11}


def stored_flavour(data_dir: str) -> str:
    """The database flavour import-nova recorded in the store (mysql when none is).  Read in a
    short-lived child, as the store is prepared: the master opens no LMDB environment, so the
    workers' fork inherits none (tests/functional/test_fork_clean_master.py)."""
    code = run_in_child(_read_flavour, data_dir)
    flavour = {v: k for k, v in _FLAVOUR_EXIT.items()}.get(code, "mysql")
    if code in _FLAVOUR_EXIT.values():
        LOG.info("store: answering as nova on %s (recorded by import-nova; --db-flavour "
                 "overrides)", flavour)
    return flavour


def _read_flavour(data_dir: str) -> int:
    """Child side of stored_flavour: an exit code naming the recorded flavour, 0 for none."""
    from fastnova.store import env as store_env, layout as L
    if not os.path.exists(os.path.join(store_env.store_path(data_dir), "data.mdb")):
        return 0
    env = store_env.open_env(data_dir, readonly=True)
    try:
        with env.begin() as txn:
            meta = env.open_db(L.DB_META, txn=txn, create=False)
            found = txn.get(L.META_DB_FLAVOUR, db=meta)
    finally:
        env.close()
    return _FLAVOUR_EXIT.get(found.decode() if found else "", 0)


def _report_sim_services(writer):
    from cellfeed import contract
    from cellfeed.applier import apply_update
    from fastnova.outbound.simcell_embedded import service_updates
    with writer.batch() as b:
        for update in contract.decode(contract.encode(service_updates())):
            apply_update(b, update)


def check_commands(args) -> str | None:
    """What is wrong with ``--commands`` as given, or None."""
    mode = getattr(args, "commands", "local")
    if mode == "nova":
        return ("--commands nova (fastnova taking commands and casting them to nova's own "
                "cells) is not implemented yet; use local or upstream")
    if mode == "upstream" and not getattr(args, "upstream", None):
        return "--commands upstream needs --upstream URL (the nova-api that takes commands)"
    return None


def auth_options(args):
    """(AuthtokenOptions or None, policy file or None), checked here in the master so that a
    bad configuration stops serve at once instead of failing every worker's boot."""
    from fastnova import config
    from fastnova.auth import settings
    from fastnova.auth.options import AuthtokenOptions
    from fastnova.auth.policy import Policy
    policy_file = getattr(args, "policy_file", None)
    Policy(policy_file)             # loads oslo.policy before fork; a bad file fails here
    if policy_file:
        LOG.info("policy: nova's defaults overridden by %s", policy_file)
    if args.auth != "keystone":
        LOG.warning("identity: noauth trusts the client: 'X-Auth-Token: USER:PROJECT' is "
                    "believed as given (admin when USER is 'admin'). For tests and demos only.")
        return None, policy_file
    section = settings.with_flags(config.current().section("keystone_authtoken"), args)
    authtoken = AuthtokenOptions.from_section(section)
    authtoken.log_ignored()
    LOG.info("identity: keystone at %s, token_cache_time %d s", authtoken.auth_url,
             authtoken.token_cache_time)
    return authtoken, policy_file


def serve(args) -> int:
    from fastnova.serve.glue import PortTaken, refuse_taken_port
    try:
        refuse_taken_port(*args.bind)
    except PortTaken as exc:
        LOG.error("%s", exc)
        return EX_PORT_TAKEN
    problem = check_commands(args)
    if problem:
        LOG.error("%s", problem)
        return 2
    try:
        authtoken, policy_file = auth_options(args)
    except (ValueError, OSError) as exc:
        LOG.error("configuration: %s", exc)
        return 2
    embedded_cell = (not getattr(args, "amqp", None)
                     and getattr(args, "commands", "local") == "local")
    code = run_in_child(fill_demo, args.data_dir, args.demo, 0, embedded_cell)
    if code != 0:
        LOG.error("could not prepare the store in %s", args.data_dir)
        return code
    host, port = args.bind
    listeners = bind(host, port)
    graceful = getattr(args, "graceful_timeout", None) or GRACEFUL_TIMEOUT
    options = SimpleNamespace(
        data_dir=args.data_dir, public_endpoint=args.public_endpoint,
        upstream=getattr(args, "upstream", None),
        auth=getattr(args, "auth", "noauth"), authtoken=authtoken, policy_file=policy_file,
        commands=getattr(args, "commands", "local"),
        db_flavour=getattr(args, "db_flavour", None) or stored_flavour(args.data_dir),
        server_name="%s:%d" % ("localhost" if host in ("0.0.0.0", "::") else host,
                               listeners.port),
        header_timeout=getattr(args, "header_timeout", None),
        keepalive_timeout=getattr(args, "keepalive_timeout", None),
        max_connections=getattr(args, "max_connections", None),
        graceful_timeout=graceful, access_log=getattr(args, "access_log", None),
        metrics_area=metrics.Area())
    children = command_children(args) + metrics_children(args, options)
    return Master(listeners, options, args.workers, timeout=args.timeout,
                  graceful_timeout=graceful, children=children).run()


def metrics_children(args, options) -> list:
    """The metrics process, when --metrics-bind names its address (bound here, so a taken
    port stops the start)."""
    bind_to = getattr(args, "metrics_bind", None)
    if not bind_to:
        return []
    from fastnova.serve import scrape
    sock = scrape.listen(*bind_to)
    LOG.info("metrics on http://%s:%d/metrics", bind_to[0], sock.getsockname()[1])
    return [scrape.child(sock, options.metrics_area, args.data_dir)]


def command_children(args) -> list:
    """Configure the workers' commands (plain values, before fork) and name the supervised
    processes they need when RabbitMQ is configured: the outbox forwarder and cellfeed.  With
    no broker the simulated cell runs inside the workers (fastnova.outbound.simcell_embedded.EmbeddedCell)."""
    from fastnova.outbound import forwarder
    from fastnova.commands import runtime
    database = getattr(args, "database", None)
    amqp = getattr(args, "amqp", None)
    schema = getattr(args, "db_schema", None)
    if getattr(args, "commands", "local") == "upstream":
        return front_children(args, amqp)
    cfg = runtime.configure(database=database, amqp=bool(amqp), db_schema=schema,
                            outbox_bound=getattr(args, "outbox_bound", None),
                            quotas=_quotas(getattr(args, "quota", None)),
                            sim_step=getattr(args, "sim_step", None))
    if not amqp:
        return []
    fopts = forwarder.Options(
        data_dir=args.data_dir, amqp_url=amqp, database=database, db_schema=schema,
        api_host=cfg.api_host,
        exchange=getattr(args, "cast_exchange", None) or forwarder.DEFAULT_EXCHANGE,
        queue=getattr(args, "cast_queue", None) or forwarder.DEFAULT_QUEUE)

    feed_nice = getattr(args, "feed_nice", None)
    feed_nice = FEED_NICE if feed_nice is None else feed_nice

    def feed():
        from cellfeed import service
        if feed_nice:
            # Below the workers (its applier child inherits it): on a busy host a read never
            # waits behind a feed batch, while the feed still gets a share of every core
            # (nice 10 weighs ~10% of a nice-0 worker) and batches more, so each update costs
            # less, when it falls behind.  BENCHMARKS.md: show p99 under 1,000 updates/s.
            os.nice(feed_nice)
        return service.run({"data_dir": args.data_dir, "amqp_url": amqp,
                            "exchange": getattr(args, "feed_exchange", None),
                            "queue": getattr(args, "feed_queue", None)})
    return [("forwarder", lambda: forwarder.run(fopts)), ("cellfeed", feed)]


def front_children(args, amqp) -> list:
    """Front mode: nova takes the commands (no outbox, no simulated cell); with ``--amqp`` (nova's
    broker) cellfeed follows nova's versioned notifications into the store."""
    from fastnova.commands import runtime
    runtime.configure(front=True)
    if not amqp:
        return []
    feed_nice = getattr(args, "feed_nice", None)
    feed_nice = FEED_NICE if feed_nice is None else feed_nice

    def feed():
        from cellfeed import service
        if feed_nice:
            os.nice(feed_nice)
        return service.run({
            "data_dir": args.data_dir, "amqp_url": amqp,
            "exchange": getattr(args, "feed_exchange", None) or "nova",
            "queue": getattr(args, "feed_queue", None) or "fastnova.nova." + socket.gethostname(),
            "decoder": "nova", "binding_key": "versioned_notifications.*",
            "exchange_durable": False})
    return [("cellfeed", feed)]


def _quotas(given):
    """nova's defaults with the configured ones (fastnova.options.parse_quota) over them."""
    if not given:
        return None
    from fastnova.commands.runtime import DEFAULT_QUOTAS
    return {**DEFAULT_QUOTAS, **given}
