"""`nexus-interview audit-console` starts the console as its own process on its own port,
and refuses a malformed verifier key with a clear message."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from recordings.keys import Identity, write_identity_file
from server.session_records import checkpoint_signer
from server.settings import Settings
from server.store import Store

from .fakes import nexus_interview
from .served import free_port


def start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.PIPE)


async def test_the_console_runs_as_its_own_process(settings: Settings, tmp_path: Path) -> None:
    await (await Store(settings.database_path).open()).close()  # the server made its DB
    identity = tmp_path / "audit.txt"
    write_identity_file(identity, Identity.generate())
    key = checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("nexus-interview")),
        "--data-dir", str(settings.data_dir),
        "--audit-dir", str(tmp_path / "console"),
        "--audit-port", str(port),
        "audit-console", "--identity", str(identity), "--key", key,
    ]  # fmt: skip
    console = start(command)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/login") as response:
                        assert response.status == 200
                        assert "Staff sign-in" in await response.text()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the audit console did not start")
    finally:
        console.terminate()
        console.wait(timeout=10)
    assert (tmp_path / "console" / "access-log" / "events.jsonl").exists()


async def test_a_malformed_key_is_refused_before_starting(
    settings: Settings, tmp_path: Path
) -> None:
    identity = tmp_path / "audit.txt"
    write_identity_file(identity, Identity.generate())
    done = await asyncio.to_thread(
        nexus_interview,
        "--data-dir", str(settings.data_dir),
        "audit-console", "--identity", str(identity), "--key", "not-a-key",
    )  # fmt: skip
    assert done.returncode == 1
    assert "not a note verifier key" in done.stderr
