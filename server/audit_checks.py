"""Verifying session records off the request path.

Verification hashes every media segment: about a second per 20-minute interview here,
so a list of a few hundred sessions cannot wait for it. The audit console queues every
session when it starts (newest first) and any session it finds changed; `BackgroundChecks`
verifies them one at a time in a worker thread, so the disk is read once and the console
keeps answering meanwhile. Results land in the console's cache, which the session list
reads; a session opened before its turn is verified on the spot, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from common.errors import NexusError

log = logging.getLogger(__name__)


class BackgroundChecks:
    def __init__(self, verify: Callable[[str], object]) -> None:
        self._verify = verify
        self._queue: dict[str, None] = {}  # in order, each session once
        self._wake = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def want(self, interview_ids: Iterable[str]) -> None:
        for interview_id in interview_ids:
            self._queue.setdefault(interview_id, None)
        if self._queue:
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled: verify whatever is queued, then wait for more."""
        while True:
            await self._wake.wait()
            while self._queue:
                interview_id = next(iter(self._queue))
                try:
                    await asyncio.to_thread(self._verify, interview_id)
                except NexusError:
                    pass  # removed meanwhile: the list no longer shows it
                except Exception:  # one unreadable session must not stop the others
                    log.exception("verifying %s failed", interview_id)
                self._queue.pop(interview_id, None)
            self._wake.clear()
