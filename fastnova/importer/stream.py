"""One pass over a whole nova deployment: every table sorted by instance uuid, merge-joined.

Per cell, the instances stream drives and each child table's stream (extra, info cache,
metadata, system metadata, tags, latest fault, volume BDMs) is advanced to the same uuid; the
cells and the API database's build requests are then merged by uuid (heapq.merge) and the API
database's request specs and server group members joined in the same way.  Memory holds one
ITERSIZE page per cursor and one bundle, whatever the number of servers.
"""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

from fastnova.importer import novadb as Q
from fastnova.importer.mapping import Bundle, Context, Settings, host_status

LOG = logging.getLogger("fastnova.importer")


class Joined:
    """A (uuid, rows) stream sorted by uuid, read forward by ascending uuids."""

    __slots__ = ("_it", "_head")

    def __init__(self, grouped):
        self._it = iter(grouped)
        self._head = next(self._it, None)

    def take(self, uuid: str) -> list:
        head = self._head
        while head is not None and head[0] < uuid:
            head = next(self._it, None)     # rows of a uuid with no instance: nova ignores them
        if head is not None and head[0] == uuid:
            self._head = next(self._it, None)
            return head[1]
        self._head = head
        return []


@dataclass
class Source:
    """Where to read: the API database and the cells (URL per cell id)."""
    api_url: str
    cell_urls: dict          # cell id (or ordinal) -> URL
    with_deleted: bool = True


def discover_cells(api_url: str) -> dict:
    """The cells nova's API database knows (cell_mappings), cell0 included."""
    with Q.NovaDB(api_url) as api:
        return {row["id"]: row["database_connection"] for row in api.rows(Q.CELLS)}


def load_context(source: Source, settings: Settings, dbs: dict) -> Context:
    """Small lookups read whole: aggregate zones (API db) and compute services (each cell)."""
    ctx = Context(settings=settings)
    for row in dbs["api"].rows(Q.HOST_AZ):
        ctx.host_az.setdefault(row["host"], row["value"])
    for cell, db in dbs["cells"].items():
        for row in db.rows(Q.COMPUTE_SERVICES):
            ctx.services.setdefault((cell, row["host"]),
                                    host_status(row, ctx.now, settings.service_down_time))
    return ctx


def count_servers(dbs: dict, with_deleted: bool) -> int:
    """About how many servers ``bundles`` yields (the progress bar's total): instances and
    build requests; a build request whose instance reached a cell is counted twice."""
    total = 0
    for db in dbs["cells"].values():
        total += db.rows(Q.COUNT_INSTANCES, {"with_deleted": with_deleted})[0]["n"]
    return total + dbs["api"].rows(Q.COUNT_BUILD_REQUESTS)[0]["n"]


def cell_bundles(cell, db: Q.NovaDB, with_deleted: bool):
    """Bundles of one cell's instances, in uuid order."""
    children = {
        "extra": Joined(db.grouped(Q.EXTRA)),
        "info_cache": Joined(db.grouped(Q.INFO_CACHE)),
        "metadata": Joined(db.grouped(Q.METADATA)),
        "sysmeta": Joined(db.grouped(Q.SYSMETA)),
        "tags": Joined(db.grouped(Q.TAGS)),
        "fault": Joined(db.grouped(Q.FAULTS)),
        "bdms": Joined(db.grouped(Q.BDMS)),
    }
    for row in db.stream(Q.INSTANCES, {"with_deleted": with_deleted}):
        uuid = row["uuid"]
        extra = children["extra"].take(uuid)
        info = children["info_cache"].take(uuid)
        fault = children["fault"].take(uuid)
        yield Bundle(
            uuid=uuid, cell=cell, instance=row,
            extra=extra[0] if extra else None,
            info_cache=info[0] if info else None,
            metadata=children["metadata"].take(uuid),
            sysmeta=children["sysmeta"].take(uuid),
            tags=[r["tag"] for r in children["tags"].take(uuid)],
            fault=fault[0] if fault else None,
            bdms=children["bdms"].take(uuid))


def build_request_bundles(api: Q.NovaDB):
    for row in api.stream(Q.BUILD_REQUESTS):
        yield Bundle(uuid=row["instance_uuid"], build_request=row)


def _pick(candidates: list) -> Bundle:
    """One bundle per uuid: a cell's instance beats a build request (nova deletes the build
    request once the instance is in a cell); of two cells, the latest saved row."""
    inst = [b for b in candidates if b.instance is not None]
    if not inst:
        return candidates[0]
    return max(inst, key=lambda b: (b.instance.get("updated_at") or b.instance["created_at"]))


def bundles(dbs: dict, with_deleted: bool = True):
    """Every server of the deployment, in uuid order, with its API-database rows joined."""
    api = dbs["api"]
    streams = [cell_bundles(cell, db, with_deleted) for cell, db in dbs["cells"].items()]
    streams.append(build_request_bundles(api))
    specs = Joined(api.grouped(Q.REQUEST_SPECS))
    groups = Joined(api.grouped(Q.GROUP_MEMBERS))
    pending: list = []
    for b in heapq.merge(*streams, key=lambda x: x.uuid):
        if pending and pending[0].uuid != b.uuid:
            yield _finish(_pick(pending), specs, groups)
            pending = []
        pending.append(b)
    if pending:
        yield _finish(_pick(pending), specs, groups)


def _finish(b: Bundle, specs: Joined, groups: Joined) -> Bundle:
    spec = specs.take(b.uuid)
    b.request_spec = spec[0] if spec else None
    b.groups = [r["group_uuid"] for r in groups.take(b.uuid)]
    return b


def open_all(source: Source) -> dict:
    """Connect to the API database and every cell (each in its own snapshot)."""
    dbs = {"api": Q.NovaDB(source.api_url), "cells": {}}
    try:
        for cell, url in source.cell_urls.items():
            dbs["cells"][cell] = Q.NovaDB(url)
    except Exception:
        close_all(dbs)
        raise
    return dbs


def close_all(dbs: dict):
    for db in [dbs["api"], *dbs["cells"].values()]:
        try:
            db.close()
        except Exception:  # closing after a failure must not hide it
            LOG.exception("import: error closing %s", Q.redact(db.url))
