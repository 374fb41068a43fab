"""/servers/{id}/ips and /servers/{id}/ips/{network}: the server's addresses by network label.

Read from the server's record (the cell reports addresses with it); unlike the server document,
nova shows them while the server builds, fixed addresses before floating ones, without the
OS-EXT-IPS extensions.
"""
from __future__ import annotations

import orjson

from fastnova.api import errors
from fastnova.commands import common as cmd
from fastnova.resources import common as C


def _networks(app, ctx, uuid) -> dict:
    with app.reader.begin() as txn:
        rec = cmd.load(_Rt(app), txn, ctx, uuid)
    out = {}
    for label, addrs in (rec.get("addresses") or {}).items():
        ordered = sorted(addrs, key=lambda a: a.get("type") == "floating")
        out[label] = [{"version": a.get("version"), "addr": a.get("addr")} for a in ordered]
    return out


class _Rt:
    """What commands.common.load needs of a runtime: the reader (reads need no writer)."""

    __slots__ = ("reader",)

    def __init__(self, app):
        self.reader = app.reader


async def index(app, req, ctx, minor, args, links):
    C.reject_unknown(C.query(req), (), minor, since=102)
    return 200, orjson.dumps({"addresses": _networks(app, ctx, args[0])})


async def show(app, req, ctx, minor, args, links):
    C.reject_unknown(C.query(req), (), minor, since=102)
    networks = _networks(app, ctx, args[0])
    if args[1] not in networks:
        raise errors.not_found("Instance is not a member of specified network")
    return 200, orjson.dumps({args[1]: networks[args[1]]})
