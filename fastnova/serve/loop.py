"""The one door to uvloop: every process that runs an event loop gets it here, after fork."""
from __future__ import annotations

import asyncio

import uvloop


def new_loop() -> asyncio.AbstractEventLoop:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop
