"""A simulated cell: what a nova compute would do with each cast, as timed cell updates.

Used two ways, with the same workflows:

* embedded (``fastnova serve`` with no RabbitMQ): the forwarder process feeds it the outbox and
  applies its updates to the store through cellfeed's contract and applier (the feed path);
* ``cellfeed cell-sim --amqp URL`` (cellfeed.simcell_broker): it consumes casts from RabbitMQ and
  publishes its updates to the cells' update exchange, where every API host's cellfeed takes them.

A workflow is a list of (delay in steps, change) pairs; ``step`` seconds apart.  Versions are
microseconds of wall time, above the cast's own version and above anything this cell sent for the
server before, so they sort after the command's write and after each other.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import time

import orjson

from cellfeed import contract

DELETE = "delete"
_ACTIVE = {"vm_state": "active", "task_state": None, "power_state": 1}


def _build(cast, cell):
    rec = cast["instance"]
    host = _host_for(rec["id"], cell)
    spawn = {"task_state": "spawning", "host": host, "node": host + ".local",
             "availability_zone": rec.get("availability_zone") or "nova", "host_status": "UP"}
    active = dict(_ACTIVE, launched_at=_now(), progress=0,
                  addresses=cell.addresses(rec, cast["args"].get("requested_networks")),
                  security_groups=["default"])
    return [(1, spawn), (2, active)]


_WORKFLOWS = {
    "build_and_run_instance": _build,
    "reboot_instance": lambda c, _: [
        (1, {"task_state": "reboot_started_hard" if c["args"].get("reboot_type") == "HARD"
             else "reboot_started"}), (1, dict(_ACTIVE))],
    "stop_instance": lambda c, _: [(1, {"vm_state": "stopped", "task_state": None,
                                        "power_state": 4})],
    "start_instance": lambda c, _: [(1, dict(_ACTIVE))],
    "pause_instance": lambda c, _: [(1, {"vm_state": "paused", "task_state": None,
                                         "power_state": 3})],
    "unpause_instance": lambda c, _: [(1, dict(_ACTIVE))],
    "suspend_instance": lambda c, _: [(1, {"vm_state": "suspended", "task_state": None,
                                           "power_state": 7})],
    "resume_instance": lambda c, _: [(1, dict(_ACTIVE))],
    "resize_instance": lambda c, _: [
        (1, {"task_state": "resize_migrating"}), (1, {"task_state": "resize_finish"}),
        (1, {"vm_state": "resized", "task_state": None, "flavor": c["args"]["flavor"]})],
    "confirm_resize": lambda c, _: [(1, {"vm_state": "active", "task_state": None})],
    "revert_resize": lambda c, _: [
        (1, dict(_ACTIVE, flavor=c["args"].get("old_flavor") or c["instance"]["flavor"]))],
    "rebuild_instance": lambda c, _: [(1, {"task_state": "rebuild_spawning"}),
                                      (1, dict(_ACTIVE, launched_at=_now()))],
    "snapshot_instance": lambda c, _: [(1, {"task_state": "image_uploading"}),
                                       (1, {"task_state": None})],
    "terminate_instance": lambda c, _: [(1, DELETE)],
}


EVENT = "__event__"
CALL = "__call__"


def _with_events(cast, steps, cell) -> list:
    """The workflow framed by its instance action event (os-instance-actions): started when the
    cast is taken, finished ("Success") with its last step; named as nova's compute manager
    names it (wrap_instance_event: "compute_" + the method)."""
    rid = cast.get("request_id")
    if not rid or not steps:
        return steps
    method = cast["cast"]
    name = "compute_" + ("_do_build_and_run_instance" if method == "build_and_run_instance"
                         else method)
    host = cast["instance"].get("host") or _host_for(cast["instance"]["id"], cell)
    started = {EVENT: {"request_id": rid, "event": name, "host": host}}
    finished = {EVENT: {"request_id": rid, "event": name, "host": host, "result": "Success",
                        "finish": True}}
    return [(0, started)] + steps + [(0, finished)]


def _host_for(uuid: str, cell) -> str:
    return "%s-compute-%d" % (cell.name, int(hashlib.md5(uuid.encode()).hexdigest(), 16)
                              % cell.hosts + 1)


def _now_us() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime())


def service_updates(name: str = "cell1", hosts: int = 8, zone: str = "nova") -> list[dict]:
    """The services a simulated cell reports (os-availability-zone): its compute hosts in
    ``zone``, its conductor and scheduler in nova's internal zone; all up and enabled."""
    now = _now()
    version = time.time_ns() // 1000
    services = [{"host": "%s-compute-%d" % (name, i), "binary": "nova-compute", "zone": zone}
                for i in range(1, hosts + 1)]
    services += [{"host": "%s-conductor" % name, "binary": "nova-conductor"},
                 {"host": "%s-scheduler" % name, "binary": "nova-scheduler"}]
    return [contract.service_upsert(dict(svc, up=True, disabled=False, updated_at=now),
                                    version) for svc in services]


class SimCell:
    """Holds the scheduled steps; ``due()`` returns the contract updates whose time has come."""

    def __init__(self, name: str = "cell1", step: float = 0.2, hosts: int = 8,
                 full_first: bool = False):
        self.name = name
        self.step = step
        self.hosts = hosts
        self.full_first = full_first      # publish a server's first update as a full record
        self.heap: list = []
        self.order = itertools.count()
        self.versions: dict[str, int] = {}
        self.gone: set[str] = set()
        self.pending: dict[object, int] = {}   # token -> steps left
        self.seen: dict[str, int] = {}         # uuid -> highest cast version taken
        self.index = itertools.count(2)

    def addresses(self, rec, networks) -> dict:
        if networks == "none":
            return {}
        n = next(self.index)
        mac = "fa:16:3e:%02x:%02x:%02x" % (n >> 16 & 255, n >> 8 & 255, n & 255)
        fixed = {"addr": "10.0.%d.%d" % (n >> 8 & 255, n & 255), "version": 4,
                 "type": "fixed", "mac": mac}
        if isinstance(networks, list) and networks:
            out = {}
            for i, net in enumerate(networks):
                label = "private" if i == 0 else "net%d" % i
                addr = dict(fixed, addr=net.get("fixed_ip") or "10.%d.%d.%d"
                            % (i, n >> 8 & 255, n & 255))
                out[label] = [addr]
            return out
        return {"private": [fixed]}

    def take(self, cast: dict, token=None) -> bool:
        """Schedule a cast's workflow; False if it is a duplicate (at-least-once delivery)."""
        uuid, version = cast["id"], cast["version"]
        if cast.get("call_id"):
            return self._call(cast, token)
        if self.seen.get(uuid, 0) >= version and cast["cast"] != "terminate_instance":
            return False
        self.seen[uuid] = max(self.seen.get(uuid, 0), version)
        if uuid in self.gone:
            return False
        if cast["cast"] == "terminate_instance":
            self._cancel(uuid)
        steps = _WORKFLOWS.get(cast["cast"], lambda c, _: [])(cast, self)
        steps = _with_events(cast, steps, self)
        self.versions[uuid] = max(self.versions.get(uuid, 0), version)
        at = time.monotonic()
        self.pending[token] = len(steps)
        first = self.full_first and cast["cast"] == "build_and_run_instance"
        real = next((i for i, (_d, ch) in enumerate(steps)
                     if not (isinstance(ch, dict) and EVENT in ch)), 0)
        for i, (delay, change) in enumerate(steps):
            at += delay * self.step
            heapq.heappush(self.heap, (at, next(self.order), uuid, change, token,
                                       cast if first and i == real else None))
        return True

    def _call(self, cast, token) -> bool:
        """A call (os-getConsoleOutput): answered one step later with a ``call.reply``."""
        inst = cast["instance"]
        lines = ["[    0.000000] Linux version 6.1.0 (fastnova simulated cell %s)" % self.name,
                 "[    1.234567] Booting %s on %s" % (inst["id"], inst.get("host") or "?"),
                 "%s login: " % (inst.get("hostname") or "server")]
        tail = (cast.get("args") or {}).get("tail_length")
        if tail is not None:
            lines = lines[-tail:] if tail else []
        reply = {CALL: {"call_id": cast["call_id"], "output": "\n".join(lines) + "\n"
                        if lines else ""}}
        self.pending[token] = 1
        heapq.heappush(self.heap, (time.monotonic() + self.step, next(self.order), inst["id"],
                                   reply, token, None))
        return True

    def _cancel(self, uuid):
        kept = []
        for item in self.heap:
            if item[2] == uuid:
                self.pending[item[4]] = self.pending.get(item[4], 1) - 1
            else:
                kept.append(item)
        heapq.heapify(kept)
        self.heap = kept

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def due(self, now: float | None = None) -> tuple[list[dict], list]:
        """(contract updates now due, tokens whose workflow is complete)."""
        now = time.monotonic() if now is None else now
        updates, done = [], []
        while self.heap and self.heap[0][0] <= now:
            _, _, uuid, change, token, full = heapq.heappop(self.heap)
            updates.append(self._update(uuid, change, full))
            self.pending[token] -= 1
            if self.pending[token] <= 0:
                del self.pending[token]
                done.append(token)
        for token, left in list(self.pending.items()):
            if left <= 0:
                del self.pending[token]
                done.append(token)
        return updates, done

    def _update(self, uuid, change, full) -> dict:
        version = max(self.versions.get(uuid, 0) + 1, time.time_ns() // 1000)
        if isinstance(change, dict) and CALL in change:
            reply = dict(change[CALL])
            return contract.call_reply(reply.pop("call_id"), version, reply)
        if isinstance(change, dict) and EVENT in change:
            event = dict(change[EVENT])
            event["finish_time" if event.pop("finish", False) else "start_time"] = _now_us()
            return contract.action_event(uuid, version, event)
        self.versions[uuid] = version
        if change == DELETE:
            self.gone.add(uuid)
            return contract.server_delete(uuid, version, _now())
        fields = dict(change, updated_at=_now())
        if full is not None:
            return contract.server_upsert(dict(full["instance"], **fields, version=version))
        return contract.server_patch(uuid, version, fields)


# -- embedded: the simulated cell inside the API workers ---------------------------------------

META_LEASE = b"simcell_lease"
LEASE_SECONDS = 3.0
RECOVER_SECONDS = 30.0


class EmbeddedCell:
    """Runs a SimCell in a worker's event loop over the store's outbox (no broker configured).

    One worker at a time drives it, holding a lease in the store's meta database (pid and
    expiry), renewed while there is work; a worker that finds the lease expired or its holder
    dead takes over and replays the outbox (workflows are idempotent by version).  Its store
    writes go through the worker's group committer; updates pass cellfeed's contract and
    applier, the feed path a real cell's updates take.  An outbox entry is deleted in the same
    transaction as the last update of its workflow, so nothing is lost to a crash.
    """

    def __init__(self, rt, step: float = 0.2):
        self.rt = rt
        self.cell = SimCell(step=step)
        self.after = None
        self.wake = None
        self.task = None
        self.lease_until = 0.0
        self.next_recover = 0.0

    def poke(self):
        """A command queued a cast: make sure the loop runs."""
        import asyncio
        if self.task is None or self.task.done():
            self.wake = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.wake.set()

    async def _run(self):
        import asyncio
        idle = 0
        while idle < 50:
            await self._maybe_recover()
            moved = await self.pass_once()
            idle = 0 if moved or self.cell.heap else idle + 1
            due = self.cell.next_due()
            delay = 0.1 if due is None else max(0.002, min(0.1, due - time.monotonic()))
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _maybe_recover(self):
        """With a database: the recovery pass (fastnova.db.recover), on the lease holder, at
        start and every RECOVER_SECONDS, in a thread (it is blocking psycopg2)."""
        import asyncio
        import logging
        cfg = self.rt.cfg
        if not cfg.database or time.monotonic() < self.next_recover:
            return
        if not await self._hold_lease():
            return
        self.next_recover = time.monotonic() + RECOVER_SECONDS
        from fastnova.db.recover import recover
        try:
            fixed = await asyncio.get_running_loop().run_in_executor(
                None, recover, cfg.database, self.rt.writer, cfg.api_host, cfg.db_schema,
                cfg.recover_settle)
        except Exception:
            logging.getLogger("fastnova.simcell").exception("recovery pass failed")
            return
        if fixed:
            logging.getLogger("fastnova.simcell").warning(
                "recovery: completed %d commands whose store write was lost", fixed)
            self.wake.set()

    async def pass_once(self) -> int:
        from fastnova.outbound import outbox
        if not await self._hold_lease():
            return 0
        with self.rt.begin() as txn:
            entries = outbox.read(txn, self.rt.reader.dbs, 1000, self.after)
        done = []
        for key, raw in entries:
            if not self.cell.take(orjson.loads(raw), token=key):
                done.append(key)
            self.after = key
        updates, finished = self.cell.due()
        done += finished
        if updates or done:
            await self.rt.write(lambda b: self._apply(b, updates, done))
        return len(entries) + len(updates)

    @staticmethod
    def _apply(b, updates, done):
        from cellfeed.applier import apply_update
        from fastnova.outbound import outbox
        for update in contract.decode(contract.encode(updates)) if updates else []:
            if update["kind"] == contract.SERVER_UPSERT:
                held = b.get_record(update["id"])
                if held is not None and held.get("deleted"):
                    continue
            apply_update(b, update)
        outbox.remove(b, done)

    async def _hold_lease(self) -> bool:
        import os
        now = time.time()
        if self.lease_until - now > LEASE_SECONDS / 3:
            return True
        with self.rt.begin() as txn:
            raw = txn.get(META_LEASE, db=self.rt.reader.dbs[b"meta"])
        if raw:
            pid, until = raw.split(b":")
            if int(pid) != os.getpid() and float(until) > now and _alive(int(pid)):
                return False
            if int(pid) != os.getpid():
                self.after = None          # take over: replay the outbox from the start
                self.cell = SimCell(step=self.cell.step)
        until = now + LEASE_SECONDS
        await self.rt.write(lambda b: b.set_meta(META_LEASE, b"%d:%.3f" % (os.getpid(), until)))
        self.lease_until = until
        return True


def _alive(pid: int) -> bool:
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
