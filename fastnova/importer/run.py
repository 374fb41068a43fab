"""``fastnova import-nova``: a nova deployment's databases -> a new store, swapped in live.

Reads the API database (build requests, request specs, server groups, aggregates' zones,
flavors) and every cell (instances and what nova-api joins to them) in one streaming pass
(fastnova.importer.stream), maps each server (fastnova.importer.mapping), writes the records in
batches into a store built beside the live one, and swaps it in (fastnova.importer.swap).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import resource
import time
import uuid as uuidlib
from dataclasses import dataclass, field

from fastnova.importer import mapping as M
from fastnova.importer import novadb as Q
from fastnova.importer import resources as R
from fastnova.importer import stream as S
from fastnova.importer import swap
from fastnova.importer.versions import db_version
from fastnova.progress import Progress
from fastnova.store import layout as L
from fastnova.store.writer import StoreWriter

LOG = logging.getLogger("fastnova.importer")

BATCH = 2000
# cellfeed.applier.META_FLAVOR_VERSION: the feed's per-flavor version, set with each flavor.
META_FLAVOR_VERSION = b"feed_flavor_version:"


@dataclass
class ImportStats:
    servers: int = 0
    deleted: int = 0
    build_requests: int = 0
    skipped: int = 0
    flavors: int = 0
    resources: dict = field(default_factory=dict)   # issue 20's tables, by name
    carried: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_anon_mb: float = 0.0
    generation: str = ""
    errors: list = field(default_factory=list)

    def rate(self) -> float:
        return self.servers / self.seconds if self.seconds else 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_split_mb() -> tuple[float, float]:
    """(anonymous, file-backed) resident MB.  RSS alone misleads here: the LMDB file being
    written is mmap'd, so its pages count as resident (page cache the kernel can drop), and
    that grows with the store; the importer's own memory is the anonymous part."""
    anon = filed = 0.0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) / 1024.0
                elif line.startswith("RssFile:"):
                    filed = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return anon, filed


def resolve_cells(api_url: str, cell_urls) -> dict:
    """--cell-db URLs in order (ids 1..n), or every cell_mappings row of the API database."""
    if cell_urls:
        return {n: url for n, url in enumerate(cell_urls, 1)}
    return S.discover_cells(api_url)


def tick(progress: Progress, stats: ImportStats):
    """Progress with the importer's own memory (anonymous RSS) beside it."""
    anon, _filed = rss_split_mb()
    stats.peak_anon_mb = max(stats.peak_anon_mb, anon)
    progress.update(stats.servers, "rss anon %.0f MB" % anon)


def write_flavors(api: Q.NovaDB, nb) -> int:
    specs: dict = {}
    for row in api.stream(Q.FLAVOR_SPECS):
        specs.setdefault(row["flavor_id"], {})[row["key"]] = row["value"]
    projects: dict = {}
    for row in api.stream(Q.FLAVOR_PROJECTS):
        projects.setdefault(row["flavor_id"], []).append(row["project_id"])
    count = 0
    for row in api.stream(Q.FLAVORS):
        frec = M.api_flavor(row, specs.get(row["id"], {}), projects.get(row["id"], []))
        nb.put_flavor(frec)
        version = db_version(row.get("updated_at"), row.get("created_at"))
        nb.set_meta(META_FLAVOR_VERSION + frec["id"].encode(), b"%d" % version)
        count += 1
    return count


def write_servers(dbs: dict, ctx: M.Context, new: StoreWriter, stats: ImportStats,
                  progress: Progress, with_deleted: bool, batch: int = BATCH) -> int:
    """Stream every server into ``new``; returns the highest seq written."""
    max_seq, pending = 0, []
    for bundle in S.bundles(dbs, with_deleted):
        try:
            rec = M.server_record(bundle, ctx)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            stats.skipped += 1
            LOG.warning("import: server %s skipped: %r", bundle.uuid, exc)
            continue
        if rec is None:
            stats.skipped += 1
            continue
        pending.append(rec)
        stats.servers += 1
        stats.deleted += bool(rec.get("deleted"))
        stats.build_requests += bundle.instance is None
        max_seq = max(max_seq, rec["seq"])
        if len(pending) >= batch:
            _flush(new, pending)
            pending = []
            tick(progress, stats)
    _flush(new, pending)
    return max_seq


def _flush(new: StoreWriter, records: list):
    if not records:
        return
    with new.batch() as nb:
        for rec in records:
            nb.upsert_server(rec)


def import_nova(api_url: str, cell_urls, data_dir: str, settings: M.Settings | None = None,
                with_deleted: bool = True, reload_pid: int | None = None,
                out=None, batch: int = BATCH) -> ImportStats:
    settings = settings or M.Settings()
    stats, progress = ImportStats(), Progress("import-nova", out=out)
    started_at = _dt.datetime.utcnow().isoformat()
    os.makedirs(data_dir, exist_ok=True)
    source = S.Source(api_url, resolve_cells(api_url, cell_urls), with_deleted)
    staging = swap.fresh_staging(data_dir)
    new = StoreWriter.open(staging, sync=False)
    try:
        dbs = S.open_all(source)
        try:
            ctx = S.load_context(source, settings, dbs)
            progress.set_total(S.count_servers(dbs, with_deleted))
            with new.batch() as nb:
                stats.flavors = write_flavors(dbs["api"], nb)
                stats.resources = R.write_api_resources(dbs["api"], nb)
                for cell_db in dbs["cells"].values():
                    stats.resources["services"] = stats.resources.get("services", 0) + \
                        R.write_services(cell_db, nb, ctx)
            for cell_db in dbs["cells"].values():
                stats.resources["instance_actions"] = stats.resources.get(
                    "instance_actions", 0) + R.write_actions(cell_db, new)
            max_seq = write_servers(dbs, ctx, new, stats, progress, with_deleted, batch)
        finally:
            S.close_all(dbs)
        with new.batch() as nb:
            nb.set_meta(L.META_SEQ, b"%d" % max_seq)
        stats.generation = uuidlib.uuid4().hex
        result = swap.swap_in(data_dir, new, started_at, stats.generation)
        stats.carried = result["carried"]
    except BaseException:
        new.close()
        raise
    stats.seconds = time.monotonic() - progress.start
    stats.peak_rss_mb = peak_rss_mb()
    tick(progress, stats)
    progress.close()
    swap.reload_workers(reload_pid)
    return stats
