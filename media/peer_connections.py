"""Negotiating on an aiortc connection without leaving its setup unattended.

Setting a local or remote description makes aiortc start ICE, DTLS and the RTP
transports in a task it never awaits. When the connection is closed while that task is
between two transports (a participant leaving or being replaced just as their call
connects), the task fails with "RTCIceTransport is closed" and asyncio reports it as an
unhandled error long after the fact. Closing early is normal here, so that failure is
expected; any other failure of the setup is worth a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)

SETUP_TASK = "RTCPeerConnection.__connect"


async def negotiate(pc: RTCPeerConnection, step: Awaitable[None]) -> None:
    """Await ``step`` (``pc.setLocalDescription(…)`` or ``pc.setRemoteDescription(…)``)
    and watch the setup task it starts on ``pc``."""
    before = asyncio.all_tasks()
    await step
    for task in asyncio.all_tasks() - before:
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        named = getattr(coro, "__qualname__", None) == SETUP_TASK
        if named and frame is not None and frame.f_locals.get("self") is pc:
            task.add_done_callback(lambda done: _setup_ended(pc, done))


def _setup_ended(pc: RTCPeerConnection, task: asyncio.Task[object]) -> None:
    if task.cancelled():
        return
    failure = task.exception()
    if failure is None:
        return
    if pc.connectionState == "closed":
        logger.debug("connection closed while it was being set up (%s)", failure)
    else:
        logger.warning("connection setup failed: %s", failure)
