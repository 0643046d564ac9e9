"""Firefox for the tests, through the Node drivers in tests/firefox: Debian's firefox-esr
driven over WebDriver BiDi by puppeteer-core (which never downloads a browser), since
Playwright drives only its own patched Firefox builds.

A driver script takes its parameters as one JSON argument and reports each milestone as a
line of JSON on stdout (tests/firefox/applicant.mjs lists its own); `FirefoxDriver` starts
one and reads those lines. It runs on whichever event loop awaits it: from a
`NamespaceThread` (tests/netns.py) the driver, Firefox and everything Firefox starts are
on that machine's network. All of one driver's calls must come from the same loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

FIREFOX_DIR = Path(__file__).resolve().parent / "firefox"
# The line-length limit for the driver's stdout: a JSON line carries at most a few KB.
LINE_LIMIT = 1 << 20


class DriverFailed(AssertionError):
    """The driver reported an error, or ended before the step a test waited for."""


class FirefoxDriver:
    """One run of a driver script (``applicant.mjs``, ``open_pages.mjs``) with its
    parameters; ``events`` keeps every event read so far."""

    def __init__(self, script: str, parameters: dict[str, Any]) -> None:
        self.script = FIREFOX_DIR / script
        self.parameters = parameters
        self.events: list[dict[str, Any]] = []
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None

    async def start(self) -> FirefoxDriver:
        node = shutil.which("node")
        if node is None:
            raise DriverFailed("these tests need node: `make test` installs Debian's nodejs")
        if not (FIREFOX_DIR / "node_modules" / "puppeteer-core").is_dir():
            raise DriverFailed(
                "tests/firefox/node_modules is missing: `make heavy` runs npm ci there"
            )
        self._process = await asyncio.create_subprocess_exec(
            node,
            str(self.script),
            json.dumps(self.parameters),
            cwd=FIREFOX_DIR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            # its own process group, so that close() can end it whatever it started
            start_new_session=True,
        )
        self._stderr_task = asyncio.ensure_future(self._read_stderr())
        return self

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for line in self._process.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def _failure(self, message: str) -> DriverFailed:
        tail = "\n".join(self.stderr)
        return DriverFailed(f"{self.script.name}: {message}" + (f"\n{tail}" if tail else ""))

    async def next(self, within: float) -> dict[str, Any] | None:
        """The next event (None once the script has ended); an error event raises."""
        assert self._process is not None and self._process.stdout is not None, "not started"
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), within)
        except TimeoutError:
            raise self._failure(f"no event in {within} s after {self.events[-1:]}") from None
        if not line:
            return None
        try:
            event: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            raise self._failure(f"not a JSON line: {line[:200]!r}") from None
        self.events.append(event)
        if "error" in event:
            raise self._failure(f"failed: {event}")
        return event

    async def until(self, step: str, within: float = 120) -> dict[str, Any]:
        """Read events up to the first ``step`` one and return it; the script's end or an
        error before it fails, as do ``within`` seconds with no event at all."""
        while (event := await self.next(within)) is not None:
            if event.get("step") == step:
                return event
        raise self._failure(f"ended (exit {await self._exit()}) before the step {step!r}")

    async def finish(self, within: float = 60) -> list[dict[str, Any]]:
        """Read what is left and wait for the script to end, which it must do cleanly;
        returns every event."""
        while await self.next(within) is not None:
            pass
        code = await self._exit(within)
        if code != 0:
            raise self._failure(f"exited with {code}")
        return self.events

    async def _exit(self, within: float = 30) -> int:
        assert self._process is not None
        code = await asyncio.wait_for(self._process.wait(), within)
        if self._stderr_task is not None:
            await self._stderr_task
        return code

    async def close(self) -> None:
        """End the script if it still runs: SIGTERM first, on which puppeteer closes
        Firefox; SIGKILL to its group if that takes too long. Safe twice."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
                # Firefox leads a process group of its own (puppeteer starts it detached)
                started = [event for event in self.events if event.get("step") == "started"]
                if started and started[0].get("pid"):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(started[0]["pid"], signal.SIGKILL)
        if self._stderr_task is not None:
            await self._stderr_task


@contextlib.asynccontextmanager
async def firefox(script: str, **parameters: Any) -> AsyncIterator[FirefoxDriver]:
    """A started driver (see tests/firefox/<script> for its parameters), closed on exit."""
    driver = FirefoxDriver(script, parameters)
    try:
        yield await driver.start()
    finally:
        await driver.close()
