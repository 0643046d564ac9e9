"""Group commit of a session log, for a process whose event loop also forwards media.

An event is written to the log as it comes (one unbuffered write). Making it durable (the
fsync, then the signed checkpoint note) happens in a thread, one commit at a time, and
each commit covers every event written before it started: events that arrive while one
commit runs are covered together by the next. A flood of events costs a few commits, not
one each, and the loop never waits on the disk. Whoever must not answer before its event
is durable awaits `GroupCommit.durable`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from .errors import RecordingError
from .session_record import SessionLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiter:
    size: int  # the log size a checkpoint must reach to cover the awaited event
    done: asyncio.Future[None]


class GroupCommit:
    def __init__(self, session_log: SessionLog) -> None:
        self.log = session_log
        # What a reopened log holds already was committed by whoever wrote it, or else
        # (after a crash) is covered by this log's first commit.
        self._committed = session_log.size
        self._waiters: list[_Waiter] = []
        self._committer: asyncio.Task[None] | None = None
        self._ended = False

    @property
    def committed(self) -> int:
        """How many events a checkpoint on disk covers."""
        return self._committed

    def append(self, kind: str, **fields: Any) -> int:
        """Write an event now; a commit covering it follows soon, whether or not anyone
        awaits it. Returns its sequence number."""
        if self._ended:
            raise RecordingError("this session log has ended: no event can be added to it")
        seq = self.log.append(kind, **fields)
        self._start()
        return seq

    def end(self, **fields: Any) -> int:
        """Write the ``end`` event; the log takes no more. `close` then waits for it."""
        seq = self.append("end", **fields)
        self._ended = True
        return seq

    async def durable(self, seq: int) -> None:
        """Return once a checkpoint covering event ``seq`` (and all before it) is on disk;
        raises the commit's error if it could not be written."""
        if seq < self._committed:
            return
        waiter = _Waiter(seq + 1, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._start()
        await waiter.done

    async def close(self) -> None:
        """Wait for a commit covering every event written, then close the file. Takes no
        more events; safe twice."""
        self._ended = True
        try:
            await self.durable(self.log.size - 1)
            if self._committer is not None:
                await self._committer
        finally:
            self.log.close_file()

    def _start(self) -> None:
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit())

    async def _commit(self) -> None:
        """Commit until the checkpoints cover the log; one at a time, in a thread."""
        try:
            while self._committed < self.log.size:
                self._committed = await asyncio.to_thread(self.log.checkpoint)
                self._wake(None)
        except asyncio.CancelledError:
            for waiter in self._waiters:
                waiter.done.cancel()
            self._waiters.clear()
            raise
        except Exception as exc:
            # The events stay in the file; the next append or close tries again.
            log.exception("could not checkpoint the session log in %s", self.log.directory)
            self._wake(exc)

    def _wake(self, error: Exception | None) -> None:
        """Answer the waiters the checkpoints now cover, or, on ``error``, all of them."""
        still_waiting = []
        for waiter in self._waiters:
            if waiter.done.done():
                continue  # its caller went away
            if error is not None:
                waiter.done.set_exception(error)
            elif waiter.size <= self._committed:
                waiter.done.set_result(None)
            else:
                still_waiting.append(waiter)
        self._waiters = still_waiting
