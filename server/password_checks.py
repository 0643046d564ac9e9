"""Password checks off the event loop: one low-priority thread, a bounded queue.

argon2id is deliberately slow and memory-hard. Run on the event loop that forwards media, a
burst of anonymous sign-in attempts would freeze every room; run on as many threads as
there are attempts, it would take every core. So every check goes through one worker
thread (argon2-cffi releases the GIL while it hashes), niced below the media, and at most
``max_pending`` checks may wait or run at once: beyond that the caller is told when to
retry instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from common.errors import TooManyRequests
from common.secret import Secret

from .auth import Passwords

LOW_PRIORITY = 10  # nice value of the hashing thread: media threads keep the CPU first
RETRY_AFTER_SECONDS = 2
R = TypeVar("R")


@dataclass(frozen=True)
class PasswordCheck:
    matches: bool
    rehashed: str | None = None
    """A new hash with today's parameters, when the password matched an older one."""


def _lower_this_thread() -> None:
    # On Linux a thread's nice value is its own (setpriority on its thread id), and the
    # threads libargon2 starts for older, multi-lane hashes inherit it.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)


class PasswordChecks:
    """Verifies passwords in a bounded, low-priority worker; `close()` stops it."""

    def __init__(self, passwords: Passwords, max_pending: int = 8) -> None:
        self._passwords = passwords
        self._max_pending = max_pending
        self._pending = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="password-checks", initializer=_lower_this_thread
        )
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    async def check(self, password_hash: Secret[str], password: Secret[str]) -> PasswordCheck:
        """Whether ``password`` matches; TooManyRequests when too many checks are waiting."""
        return await self._run(self._check, password_hash, password)

    async def check_nothing(self, password: Secret[str]) -> None:
        """Spend the time and place in the queue of a real check, so that an unknown or
        locked account cannot be told from a wrong password."""
        await self._run(self._passwords.verify_nothing, password)

    def _check(self, password_hash: Secret[str], password: Secret[str]) -> PasswordCheck:
        if not self._passwords.verify(password_hash, password):
            return PasswordCheck(matches=False)
        if self._passwords.needs_rehash(password_hash):
            return PasswordCheck(matches=True, rehashed=self._passwords.hash(password))
        return PasswordCheck(matches=True)

    async def _run(self, work: Callable[..., R], *args: object) -> R:
        if self._closed:
            raise RuntimeError("password checks are closed")
        if self._pending >= self._max_pending:
            raise TooManyRequests(
                "too many sign-ins are being checked right now; try again in a few seconds",
                RETRY_AFTER_SECONDS,
            )
        loop = asyncio.get_running_loop()
        job = self._executor.submit(work, *args)
        self._pending += 1
        # A place is freed when the thread is done with it, not when a caller stops
        # waiting: a cancelled request must not let more work in than one thread can do.
        job.add_done_callback(lambda _: self._release_from_thread(loop))
        return await asyncio.wrap_future(job)

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed first: nothing to free
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self._pending -= 1

    def close(self) -> None:
        """Safe to call twice; a check already running finishes in its thread."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
