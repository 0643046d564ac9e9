"""The operators' log brought to the agencies' witnesses, as each session record is: an
operator holds the log's signing key on this host and could rewrite the log and sign it
again, but not the witnesses' memory of what they cosigned, so a rewritten or cut-back
log is refused as a fork and `operations verify --witness-key` fails on it.

The server submits its own appends at once. The CLI appends from another process: every
`WATCH_SECONDS` the server looks whether the log grew (one ``stat``) and submits it if
so. `Witnessing` does the rest: retries, consistency proofs, cosignatures on the notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from recordings.errors import RecordingError
from recordings.session_record import EVENTS

from .appkeys import OPERATIONS, WITNESSING
from .witnessing import Witnessing

log = logging.getLogger(__name__)
WATCH_SECONDS = 15.0


async def witness_operations(app: web.Application) -> AsyncIterator[None]:
    """Between the witnessing's start and its close (`_store_ctx` holds it): every append
    of this process at once, the CLI's at the next look."""
    operations, witnessing = app[OPERATIONS], app[WITNESSING]
    log.info("operators' log %s signed by %s", operations.origin, operations.verifier_key)
    if witnessing is None:
        yield
        return
    loop = asyncio.get_running_loop()

    def submit() -> None:
        _submit(witnessing, operations.directory)

    def appended() -> None:  # from whichever thread appended
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(submit)

    stop_listening = operations.listen(appended)
    watching = asyncio.create_task(_watch(operations.directory, submit), name="operations-watch")
    yield
    stop_listening()
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching


def _submit(witnessing: Witnessing, directory: Path) -> None:
    with contextlib.suppress(RecordingError):  # closing: taken again at the next start
        witnessing.submit(directory)


async def _watch(directory: Path, submit: Callable[[], None]) -> None:
    """Submits at start (what a stop left unwitnessed, or the CLI wrote meanwhile), then
    whenever the log's events file changed since the last look."""
    seen: tuple[int, int] | None = None
    while True:
        try:
            found = await asyncio.to_thread(os.stat, directory / EVENTS)
            now = (found.st_size, found.st_mtime_ns)
        except OSError:  # none yet (or unreadable: the next look tries again)
            now = (0, 0)
        if now != seen and now != (0, 0):
            submit()
        seen = now
        await asyncio.sleep(WATCH_SECONDS)
