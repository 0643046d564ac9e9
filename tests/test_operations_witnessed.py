"""The operators' log goes to the agencies' witnesses like a session record: a real
witness app on 127.0.0.1 trusting the operators' log key, a real server, the real CLI
in another process. What the CLI appends is cosigned within the server's watch period;
a log rewritten and re-signed after it was witnessed (what an operator holding the
signing key can do) is refused by the witness as a fork, and `operations verify
--witness-key` fails on it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.closed_sessions import witness_prefix
from recordings.session_record import EVENTS
from recordings.tlog import NoteVerifier
from recordings.witness_protocol import CosignatureVerifier, Cosigner, cosignatures
from server import operations_witnessing, serving
from server.app import create_app
from server.appkeys import OPERATIONS, WITNESSING
from server.operations_log import OperationsLog
from server.session_records import checkpoint_signer
from server.settings import Settings
from server.witness_app import WitnessConfig, create_witness_app
from server.witnessing import newest_checkpoint

from .fakes import FakeClock, fast_passwords, nexus_interview
from .served import free_port
from .test_operations_log import add_officer

WATCH = 0.2
CBSA = Cosigner("cbsa.test/witness", Ed25519PrivateKey.generate())


@pytest.fixture(autouse=True)
def quick_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server looks for the CLI's appends every 15 s; the tests cannot wait that long."""
    monkeypatch.setattr(operations_witnessing, "WATCH_SECONDS", WATCH)


def log_of(settings: Settings) -> OperationsLog:
    return OperationsLog(settings.data_dir, urlsplit(settings.public_url).netloc)


@asynccontextmanager
async def cbsa_witness(settings: Settings, state: Path) -> AsyncIterator[str]:
    """CBSA's witness, told the operators' log key; yields its ``name=url=key`` entry."""
    operations_key = NoteVerifier.parse(log_of(settings).verifier_key)
    prefix = witness_prefix(urlsplit(settings.public_url).netloc)
    config = WitnessConfig(CBSA, [operations_key], [prefix], state)
    runner = await serving.start(create_witness_app(config), "127.0.0.1", 0)
    try:
        yield f"CBSA=http://127.0.0.1:{runner.addresses[0][1]}={CBSA.verifier_key}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_server(settings: Settings, clock: FakeClock) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings, clock, fast_passwords()), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def cosigned(directory: Path) -> bool:
    newest = newest_checkpoint(directory)
    verifier = CosignatureVerifier.parse(CBSA.verifier_key)
    return newest is not None and CBSA.name in cosignatures(newest.read_bytes(), [verifier])


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> float:
    """Waits until ``condition()`` holds; returns how long it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "not within the time given"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def verify(settings: Settings, *args: str) -> tuple[int, str]:
    done = nexus_interview(
        *("--data-dir", str(settings.data_dir), "operations", "verify"),
        *("--witness-key", CBSA.verifier_key, *args),
    )
    return done.returncode, done.stdout + done.stderr


async def test_a_cli_action_while_the_server_runs_is_cosigned_within_the_watch_period(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    log = log_of(settings)
    async with cbsa_witness(settings, tmp_path / "witness") as entry:
        configured = settings.replace(witnesses=entry)
        async with running_server(configured, clock):
            await until(lambda: cosigned(log.directory))  # the server's own start, at once
            assert await asyncio.to_thread(add_officer, settings.data_dir, "jane.doe") == 0
            took = await until(lambda: cosigned(log.directory))
            assert took < WATCH * 10
            newest = newest_checkpoint(log.directory)
            assert newest is not None and int(newest.stem) == len(log.operations())
            assert log.operations()[-1].action == "officers add"

    code, said = await asyncio.to_thread(verify, settings)
    assert code == 0, said
    assert "VERIFIED" in said and "cbsa.test/witness" in said


async def test_a_server_action_is_submitted_as_soon_as_it_is_logged(
    settings: Settings, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(operations_witnessing, "WATCH_SECONDS", 3600.0)  # no help from the watch
    log = log_of(settings)
    async with cbsa_witness(settings, tmp_path / "witness") as entry:
        configured = settings.replace(witnesses=entry)
        async with running_server(configured, clock) as server:
            await until(lambda: cosigned(log.directory))
            operations = server.app[OPERATIONS]
            await asyncio.to_thread(operations.record, "operator:op1", "schedule", "7 days")
            assert not cosigned(log.directory)
            await until(lambda: cosigned(log.directory), seconds=2.0)


def rewrite(log: OperationsLog, old: str, new: str) -> None:
    """What an operator holding the signing key can do: edit an entry and sign the log
    again, from the first entry, with the same key."""
    events = [json.loads(line) for line in (log.directory / EVENTS).read_bytes().splitlines()]
    shutil.rmtree(log.directory)
    again = OperationsLog(log.directory.parent, log.origin.removesuffix("/operations"))
    for event in events:
        fields = {k: v for k, v in event.items() if k not in ("seq", "kind", "at")}
        if fields.get("target") == old:
            fields["target"] = new
        again.record(**fields)


async def test_a_log_rewritten_after_it_was_witnessed_is_refused_as_a_fork(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    log = log_of(settings)
    async with cbsa_witness(settings, tmp_path / "witness") as entry:
        configured = settings.replace(witnesses=entry)
        async with running_server(configured, clock):
            assert await asyncio.to_thread(add_officer, settings.data_dir, "jane.doe") == 0
            await until(lambda: cosigned(log.directory))
        code, said = await asyncio.to_thread(verify, settings)
        assert code == 0, said

        rewrite(log, "jane.doe", "someone.else")
        assert log.check().complete  # signed with the right key: only a witness can tell

        async with running_server(configured, clock) as server:  # the next submission
            witnessing = server.app[WITNESSING]
            assert witnessing is not None
            await until(lambda: log.directory in witnessing.unwitnessed())
            await until(lambda: "409" in witnessing.unwitnessed()[log.directory]["CBSA"])
            assert "another root" in witnessing.unwitnessed()[log.directory]["CBSA"]
        assert not cosigned(log.directory)
        assert list((tmp_path / "witness" / "refused").iterdir())  # the witness kept it

    code, said = await asyncio.to_thread(verify, settings)
    assert code != 0
    assert "FAILED" in said and "cosign" in said


def test_serve_prints_the_keys_the_witnesses_are_told(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    command = Path(sys.executable).with_name("nexus-interview")
    flags = ("--data-dir", str(data), "--port", str(port), "--public-url", f"http://x.test:{port}")
    server = subprocess.Popen([str(command), "serve", *flags], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGINT)
        printed, _ = server.communicate(timeout=20)

    operations_key = OperationsLog(data, f"x.test:{port}").verifier_key
    checkpoint_key = checkpoint_signer(data / "checkpoint-signing.pem").verifier_key
    assert f"checkpoint key: {checkpoint_key}\n" in printed
    assert f"operators' log key: {operations_key}\n" in printed
