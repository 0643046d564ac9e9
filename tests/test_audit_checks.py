"""The audit console's background checks: one session at a time, each once, and one
that cannot be read does not stop the others."""

from __future__ import annotations

import asyncio
import contextlib

from common.errors import NotFound
from server.audit_checks import BackgroundChecks

from .media import wait_for


async def test_queued_sessions_are_verified_once_each_in_order_despite_failures() -> None:
    done: list[str] = []

    def verify(interview_id: str) -> None:
        if interview_id == "gone":
            raise NotFound("there is no session record {interview}", interview=interview_id)
        if interview_id == "broken":
            raise OSError("unreadable")
        done.append(interview_id)

    checks = BackgroundChecks(verify)
    checks.want(["a", "gone", "broken", "b", "a"])
    assert checks.waiting == 4
    task = asyncio.create_task(checks.run())
    try:
        await wait_for(lambda: checks.waiting == 0)
        checks.want(["c"])  # the loop waits for more, and takes it
        await wait_for(lambda: checks.waiting == 0)
        assert done == ["a", "b", "c"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
