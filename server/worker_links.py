"""The control plane's end of a channel to one media worker (`WorkerLink`): requests and
their answers, the load the worker last reported, when it was last heard from.

A link is made by the channel that carries it: `media_channel` for a worker process
(here or on another machine), `local_worker` for a worker kept in this process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import TypeVar

from common.errors import NexusError
from media import protocol as p

REQUEST_SECONDS = 30.0
"""A request unanswered this long fails: the worker is stuck or gone."""

Reply = TypeVar("Reply", bound=p.Message)


class MediaUnavailable(NexusError):
    status = 503
    code = "media_unavailable"


def refused_error(refused: p.Refused) -> NexusError:
    """The worker's refusal as the error it was there, status and words kept."""
    error = NexusError(refused.message, **refused.fields)
    error.status, error.code = refused.status, refused.code
    return error


class WorkerLink:
    def __init__(
        self,
        name: str,
        send: Callable[[p.Message], None],
        cores: int = 1,
        *,
        local: bool = False,
        hang_up: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``local``: the worker runs in this process, so it cannot fall silent alone.
        ``hang_up`` closes the channel once the worker is taken for lost."""
        self.name = name
        self.cores = cores
        self.local = local
        self._send = send
        self._hang_up = hang_up
        self._clock = clock
        self.heard_at = clock()
        self.heard_wall = time.time()
        self.load: p.Load | None = None
        self.draining = False
        self.alive = True
        self._numbers = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[p.Message]] = {}

    def heard(self) -> None:
        self.heard_at, self.heard_wall = self._clock(), time.time()

    def silent_for(self) -> float:
        return 0.0 if self.local else self._clock() - self.heard_at

    def tell(self, message: p.Message) -> None:
        if not self.alive:
            raise MediaUnavailable("the media server of this call went away; reconnecting")
        self._send(message)

    async def ask(self, make: Callable[[int], p.Message], expect: type[Reply]) -> Reply:
        """Send the request ``make(number)`` and wait for its answer; a refusal is raised
        as the worker's error, a worker lost meanwhile as `MediaUnavailable`."""
        number = next(self._numbers)
        answer: asyncio.Future[p.Message] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        try:
            self.tell(make(number))
            async with asyncio.timeout(REQUEST_SECONDS):
                reply = await asyncio.shield(answer)
        except TimeoutError:
            raise MediaUnavailable("the media server did not answer; try again") from None
        finally:
            self._waiting.pop(number, None)
        if isinstance(reply, p.Refused):
            raise refused_error(reply)
        if not isinstance(reply, expect):
            raise MediaUnavailable("the media server answered out of turn; try again")
        return reply

    def answered(self, reply: p.Answered | p.Done | p.Refused) -> None:
        waiting = self._waiting.get(reply.request)
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    def lost(self) -> None:
        """The worker is gone: every request still waiting fails."""
        self.alive = False
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(
                    MediaUnavailable("the media server of this call went away; reconnecting")
                )
        self._waiting.clear()
        if self._hang_up is not None:
            self._hang_up()
