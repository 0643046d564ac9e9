"""The media worker processes `serve` runs on this machine: started once the workers'
listener is up, started again when one dies, stopped with the server.

Each runs ``python -m media.worker_process --local``: a process of its own, importing
nothing of the control plane, handed the channel's secret in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from common.secret import Secret
from media.worker_process import SECRET_ENV

log = logging.getLogger(__name__)

RESTART_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Pauses before starting a worker again, growing while it keeps dying at once."""
STABLE_SECONDS = 30.0
"""A worker that ran this long before dying is restarted after the shortest pause."""
STOP_SECONDS = 10.0


class WorkerProcesses:
    def __init__(
        self,
        count: int,
        control_url: str,
        secret: Secret[str],
        event_loop: str = "uvloop",
        log_level: str = "INFO",
        log_format: str = "text",
    ) -> None:
        self._count = count
        self._url = control_url
        self._secret = secret
        self._event_loop = event_loop
        self._log_level = log_level
        self._log_format = log_format
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> dict[str, int]:
        """Each running worker's process id, by name."""
        return {name: process.pid for name, process in self._processes.items()}

    def start(self) -> None:
        for number in range(1, self._count + 1):
            self._keepers.append(asyncio.ensure_future(self._keep(f"local-{number}")))

    async def _keep(self, name: str) -> None:
        failures = 0
        while not self._stopping:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "media.worker_process",
                "--control",
                self._url,
                "--name",
                name,
                "--local",
                "--event-loop",
                self._event_loop,
                "--log-level",
                self._log_level,
                "--log-format",
                self._log_format,
                env={**os.environ, SECRET_ENV: self._secret.reveal()},
                stdin=asyncio.subprocess.DEVNULL,
                # Out of the terminal's process group: a Ctrl-C reaches the server alone,
                # which ends the calls and then stops its workers in order.
                start_new_session=True,
            )
            self._processes[name] = process
            started = asyncio.get_running_loop().time()
            code = await process.wait()
            del self._processes[name]
            if self._stopping:
                return
            ran = asyncio.get_running_loop().time() - started
            failures = 0 if ran >= STABLE_SECONDS else failures + 1
            pause = RESTART_SECONDS[min(failures, len(RESTART_SECONDS) - 1)]
            log.error("media worker %s exited (%s); starting it again in %.1f s", name, code, pause)
            await asyncio.sleep(pause)

    async def stop(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after `STOP_SECONDS`); safe twice."""
        self._stopping = True
        for process in list(self._processes.values()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in list(self._processes.values()):
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers.clear()
