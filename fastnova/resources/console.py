"""POST /servers/{id}/action {"os-getConsoleOutput": {"length": N}}: the console log, asked of
the server's cell as a call (fastnova.resources.calls)."""
from __future__ import annotations

import re

import orjson

from fastnova.commands import common as cmd
from fastnova.commands.schemas import _obj, _wrap
from fastnova.commands.validation import by_minor
from fastnova.resources import calls

SCHEMA = by_minor([(0, 255, _wrap("os-getConsoleOutput", _obj({
    "length": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$",
               "minimum": -1}})))])
_CONTROL = re.compile("[\x00-\x08\x0B-\x1F]")


async def get_output(rt, txn, ctx, minor, links, rec, body):
    SCHEMA[minor].check(body)
    cmd.check_host(rec)
    length = body["os-getConsoleOutput"].get("length")
    length = None if length is None or int(length) < 0 else int(length)
    reply = await calls.call(rt, rec, "get_console_output", {"tail_length": length})
    return 200, orjson.dumps({"output": _CONTROL.sub("", reply.get("output", ""))})
