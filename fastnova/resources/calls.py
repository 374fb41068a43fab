"""Calls to a cell: a cast that waits for its answer (nova's RPC call), over the cell path.

The command puts a cast carrying ``call_id`` in the outbox (the forwarder takes it to the cell's
queue, or the embedded simulated cell takes it from the store); the cell answers with a
``call.reply`` update (cellfeed.contract), which the feed (or the embedded cell) writes to the
store as ``reply:<call_id>``; the command waits for that key, then removes it.  Used by
os-getConsoleOutput.
"""
from __future__ import annotations

import asyncio
import time
import uuid as uuidlib

import orjson

from fastnova.outbound import outbox
from fastnova.api import errors
from fastnova.resources import common as C

REPLY = b"reply:"
TIMEOUT = 30.0          # seconds; nova's rpc_response_timeout is 60


def put_reply(b, call_id: str, reply: dict) -> bool:
    b.set_meta(REPLY + call_id.encode(), orjson.dumps(dict(reply, at=time.time())))
    return True


async def call(rt, rec: dict, method: str, args: dict, timeout: float = TIMEOUT) -> dict:
    call_id = str(uuidlib.uuid4())
    cast = outbox.make_cast(method, rec, dict(args), rt.cfg.api_host)
    cast["call_id"] = call_id
    await rt.write(lambda b: outbox.append(b, cast))
    key = REPLY + call_id.encode()
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        with rt.begin() as txn:
            raw = txn.get(key, db=C.meta_db(rt))
        if raw is not None:
            break
        if time.monotonic() > deadline:
            raise errors.fault(500, "Timed out waiting for a reply to message ID %s"
                               % call_id.replace("-", ""))
        await asyncio.sleep(delay)
        delay = min(0.05, delay * 2)
    await rt.write(lambda b: C.delete(b, key))
    reply = orjson.loads(raw)
    if reply.get("error"):
        raise errors.fault(int(reply.get("code", 500)), reply["error"])
    return reply
