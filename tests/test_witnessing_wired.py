"""The interview server takes each record's checkpoints to the agencies' witnesses as the
interview goes: two real witness apps on 127.0.0.1 (`nexus-interview witness`'s app), a
real interview through the server; once it closes, its final checkpoint carries both
agencies' cosignature/v1, and so does the newest checkpoint of the server-wide log of
closed sessions, which lists it. A witness that was down is caught up at the next start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.names import RoomId, Seat
from recordings.closed_sessions import check_record, read_closed_sessions, witness_prefix
from recordings.tlog import Checkpoint, NoteVerifier, parse_note
from recordings.witness_protocol import CosignatureVerifier, Cosigner, cosignatures
from server import serving
from server.app import create_app
from server.appkeys import LIVES, RECORDS, WITNESSING
from server.operations_log import OperationsLog
from server.session_records import checkpoint_signer
from server.settings import Settings
from server.witness_app import WitnessConfig, create_witness_app
from server.witnessing import newest_checkpoint

from .calls import applicant_in_call
from .fakes import FakeClock, World, fast_passwords

AGENCIES = ("CBSA", "CBP")
KEY = "checkpoint-signing.pem"


def cosigners() -> dict[str, Cosigner]:
    return {
        a: Cosigner(f"{a.lower()}.test/witness", Ed25519PrivateKey.generate()) for a in AGENCIES
    }


def unreachable(keys: dict[str, Cosigner]) -> str:
    """Witnesses configured where nothing listens (port 1): down."""
    return ",".join(f"{a}=http://127.0.0.1:1={c.verifier_key}" for a, c in keys.items())


@asynccontextmanager
async def witnesses(
    settings: Settings, state: Path, keys: dict[str, Cosigner]
) -> AsyncIterator[dict[str, str]]:
    """Both agencies' witnesses, trusting this server's checkpoint key for its logs and
    its operators' log key, as docs/deploy.md has them started; yields each one's
    ``name=url=key`` entry."""
    server_key = checkpoint_signer(settings.data_dir / "checkpoint-signing.pem")
    log_name = urlsplit(settings.public_url).netloc
    operations_key = NoteVerifier.parse(OperationsLog(settings.data_dir, log_name).verifier_key)
    prefix = witness_prefix(log_name)
    runners: list[web.AppRunner] = []
    entries = {}
    try:
        for agency in AGENCIES:
            cosigner = keys[agency]
            config = WitnessConfig(
                cosigner,
                [NoteVerifier.parse(server_key.verifier_key), operations_key],
                [prefix],
                state / agency,
            )
            runner = await serving.start(create_witness_app(config), "127.0.0.1", 0)
            runners.append(runner)
            port = runner.addresses[0][1]
            entries[agency] = f"{agency}=http://127.0.0.1:{port}={cosigner.verifier_key}"
        yield entries
    finally:
        for runner in runners:
            await runner.cleanup()


@asynccontextmanager
async def server(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    test_server = TestServer(create_app(settings, clock, fast_passwords()), host="127.0.0.1")
    await test_server.start_server()
    world = World(test_server, settings, clock, fast_passwords())
    try:
        yield world
    finally:
        for client in world.clients:
            await client.close()
        await test_server.close()


def verifiers(keys: dict[str, Cosigner]) -> list[CosignatureVerifier]:
    return [CosignatureVerifier.parse(cosigner.verifier_key) for cosigner in keys.values()]


async def test_a_closed_interviews_final_checkpoint_and_the_closed_sessions_log_are_cosigned(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    keys = cosigners()
    async with witnesses(settings, tmp_path / "witnesses", keys) as entries:
        configured = settings.replace(witnesses=",".join(entries.values()))
        async with server(configured, clock) as world:
            async with applicant_in_call(world) as call:
                await call.end(by=Seat.CBSA)
                for client, code in ((call.cbsa, "CA-OTH"), (call.cbp, "US-OTH")):
                    decided = await client.post(
                        f"/api/interviews/{call.interview_id}/decision",
                        json={"verdict": "refer", "reason_codes": [code]},
                    )
                    assert decided.status == 201, await decided.text()
            app = world.server.app
            await app[LIVES].drain()
            witnessing = app[WITNESSING]
            assert witnessing is not None
            await witnessing.settled()
            record = app[RECORDS].directory / RoomId(call.interview_id)
    journal = [line for line in (record / "events.jsonl").read_bytes().splitlines() if line]
    final = newest_checkpoint(record)
    assert final is not None and int(final.stem) == len(journal)  # covers the close
    signed = cosignatures(final.read_bytes(), verifiers(keys))
    assert set(signed) == {"cbsa.test/witness", "cbp.test/witness"}
    # the server-wide log of closed sessions lists it once, with that final checkpoint,
    # and both agencies cosigned its newest checkpoint
    server_keys = [NoteVerifier.parse(checkpoint_signer(settings.data_dir / KEY).verifier_key)]
    closed = read_closed_sessions(record.parent, server_keys, verifiers(keys))
    assert closed.problems == [] and closed.size == 1
    assert set(closed.witnessed_by) == {"cbsa.test/witness", "cbp.test/witness"}
    entry = closed.entries[call.interview_id]
    final_checkpoint = Checkpoint.parse(parse_note(final.read_text())[0])
    assert (entry.origin, entry.size, entry.root) == (
        final_checkpoint.origin,
        len(journal),
        final_checkpoint.root,
    )
    assert check_record(closed, record, server_keys) == []


async def test_a_witness_that_was_down_is_caught_up_at_the_next_start(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    keys = cosigners()
    async with server(settings.replace(witnesses=unreachable(keys)), clock) as world:
        async with applicant_in_call(world) as call:
            await call.end(by=Seat.CBSA)  # the interview goes on without its witnesses
        await world.server.app[LIVES].drain()
        witnessing = world.server.app[WITNESSING]
        assert witnessing is not None
        record = world.server.app[RECORDS].directory / RoomId(call.interview_id)
        assert record in witnessing.unwitnessed()  # the console can say what waits
    final = newest_checkpoint(record)
    assert final is not None
    assert cosignatures(final.read_bytes(), verifiers(keys)) == {}
    async with witnesses(settings, tmp_path / "witnesses", keys) as entries:
        configured = settings.replace(witnesses=",".join(entries.values()))
        async with server(configured, clock) as world:  # the next start
            witnessing = world.server.app[WITNESSING]
            assert witnessing is not None
            await witnessing.settled()
    signed = cosignatures(final.read_bytes(), verifiers(keys))
    assert set(signed) == {"cbsa.test/witness", "cbp.test/witness"}
