"""Live witnesses: the C2SP tlog-witness ``add-checkpoint`` endpoint served on 127.0.0.1
(`server.witness_app`), fed the checkpoints of a real `SessionLog`, and the server's
client (`server.witnessing`). Requests are written out here from the spec's text, and
cosignature/v1 lines are checked here with the bare Ed25519 key, so the witness is held
to the specs and not to its own helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from recordings.closed_sessions import closed_sessions_origin, witness_prefix
from recordings.session_record import CHECKPOINTS, EVENTS, SessionLog, session_origin
from recordings.tlog import MerkleTree, NoteSigner, NoteVerifier, leaf_hash
from recordings.witness_protocol import CosignatureVerifier, Cosigner, cosignatures
from server import serving
from server.witness_app import WitnessConfig, create_witness_app
from server.witnessing import WitnessEndpoint, Witnessing, parse_witnesses
from tests.test_note_interop import Notecheck, notecheck, notecheck_binary

__all__ = ["notecheck", "notecheck_binary"]  # fixtures: Go's sumdb/note, built once

EM = "\u2014"
LOG_NAME = "nexus.test"
PREFIX = f"{LOG_NAME}/interview/"
SERVER = NoteSigner(LOG_NAME, Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
WITNESS_NAME = "cbsa.test/witness"
NOW = 1_790_000_000


@dataclass
class Running:
    url: str
    state: Path
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_witness(
    state: Path, port: int = 0, prefixes: tuple[str, ...] = (PREFIX,)
) -> Running:
    config = WitnessConfig(
        Cosigner(WITNESS_NAME, WITNESS_KEY),
        [NoteVerifier.parse(SERVER.verifier_key)],
        prefixes,
        state,
    )
    runner = await serving.start(create_witness_app(config, clock=lambda: NOW), "127.0.0.1", port)
    bound = runner.addresses[0][1]
    return Running(f"http://127.0.0.1:{bound}", state, runner, bound)


@pytest.fixture
async def witness(tmp_path: Path) -> AsyncIterator[Running]:
    running = await start_witness(tmp_path / "witness-state")
    yield running
    await running.stop()


def session(tmp_path: Path, interview: str, events: int, name: str | None = None) -> SessionLog:
    log = SessionLog(tmp_path / (name or interview), session_origin(LOG_NAME, interview), SERVER)
    grow(log, events)
    return log


def grow(log: SessionLog, events: int, label: str = "event") -> str:
    for i in range(events):
        log.append("note", text=f"{label} {log.size} {i}")
    log.checkpoint()
    return note_of(log, log.size)


def note_of(log: SessionLog, size: int) -> str:
    return (log.directory / CHECKPOINTS / f"{size:010d}.note").read_text("utf-8")


def tree_of(log: SessionLog) -> MerkleTree:
    lines = (log.directory / EVENTS).read_bytes().splitlines()
    return MerkleTree(leaf_hash(line) for line in lines)


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    """tlog-witness: "old <size>", one base64 hash a line, a blank line, the note."""
    hashes = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old}\n{hashes}\n{note}".encode()


async def post(url: str, body: bytes) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/add-checkpoint", data=body) as response,
    ):
        return response.status, response.content_type, await response.text()


async def add(url: str, log: SessionLog, old: int, size: int | None = None) -> tuple[int, str, str]:
    size = log.size if size is None else size
    proof = tree_of(log).consistency_proof(old, size) if 0 < old <= size else []
    return await post(url, request_body(old, proof, note_of(log, size)))


def check_cosignature(line: str, note: str, key: Ed25519PrivateKey = WITNESS_KEY) -> int:
    """tlog-cosignature: key id over name, newline, 0x04 and the key; the signature an
    8-byte big-endian time then Ed25519 over the header, the time line and the body."""
    body = note[: note.rindex("\n\n") + 1]
    dash, name, blob_b64 = line.rstrip("\n").split(" ")
    assert (dash, name) == (EM, WITNESS_NAME)
    assert line.endswith("\n") and line.count("\n") == 1
    blob = base64.b64decode(blob_b64, validate=True)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert blob[:4] == hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    assert len(blob) == 4 + 8 + 64
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
    Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)  # raises if not
    return int(timestamp)


def held(state: Path, origin: str) -> dict[str, object]:
    path = state / f"{hashlib.sha256(origin.encode()).hexdigest()}.json"
    return dict(json.loads(path.read_bytes()))


# --- the witness ------------------------------------------------------------------------


async def test_first_checkpoint_is_cosigned_with_a_cosignature_v1_that_verifies(
    tmp_path: Path, witness: Running
) -> None:
    log = session(tmp_path, "iv_1", 3)
    status, kind, answer = await add(witness.url, log, old=0)
    assert (status, kind) == (200, "text/plain")
    assert check_cosignature(answer, note_of(log, 3)) == NOW
    # and our own verifier agrees, on the note with the line added
    vkey = CosignatureVerifier.parse(Cosigner(WITNESS_NAME, WITNESS_KEY).verifier_key)
    assert cosignatures(note_of(log, 3) + answer, [vkey]) == {WITNESS_NAME: NOW}
    assert held(witness.state, session_origin(LOG_NAME, "iv_1"))["size"] == 3


async def test_go_verifies_the_live_witness_cosignature_on_the_server_checkpoint(
    tmp_path: Path, witness: Running, notecheck: Notecheck
) -> None:
    log = session(tmp_path, "iv_1", 5)
    status, _, answer = await add(witness.url, log, old=0)
    assert status == 200
    vkey = Cosigner(WITNESS_NAME, WITNESS_KEY).verifier_key
    cosigned = note_of(log, 5) + answer
    done = notecheck("open", SERVER.verifier_key, vkey, stdin=cosigned)
    assert done.stdout == f"OK {LOG_NAME} {WITNESS_NAME}\n"
    altered = cosigned.replace("\n5\n", "\n6\n", 1)
    assert notecheck("open", vkey, stdin=altered).stdout.startswith("FAIL")


async def test_two_racing_requests_cannot_roll_the_witness_back(
    tmp_path: Path, witness: Running
) -> None:
    for race in range(6):
        log = session(tmp_path, f"iv_{race}", 3)
        assert (await add(witness.url, log, old=0))[0] == 200
        grow(log, 2)
        grow(log, 4)  # checkpoints of 5 and 9, both extending 3
        small, large = await asyncio.gather(
            add(witness.url, log, old=3, size=5), add(witness.url, log, old=3, size=9)
        )
        assert sorted([small[0], large[0]]) == [200, 409], (small, large)
        winner, loser = (5, large) if small[0] == 200 else (9, small)
        assert loser[1:] == ("text/x.tlog.size", f"{winner}\n")
        assert held(witness.state, session_origin(LOG_NAME, f"iv_{race}"))["size"] == winner


async def test_a_consistent_later_checkpoint_is_cosigned(tmp_path: Path, witness: Running) -> None:
    log = session(tmp_path, "iv_1", 3)
    assert (await add(witness.url, log, old=0))[0] == 200
    grow(log, 6)
    status, _, answer = await add(witness.url, log, old=3)
    assert status == 200, answer
    assert check_cosignature(answer, note_of(log, 9)) == NOW
    assert held(witness.state, session_origin(LOG_NAME, "iv_1"))["size"] == 9
    # the same checkpoint again (a client retrying) is cosigned again, changing nothing
    assert (await add(witness.url, log, old=9))[0] == 200


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b'{"origin": "x"}', b'{"origin": 1, "size": "a", "root": "%%"}', b"[]"],
)
async def test_damaged_state_is_a_503_that_cosigns_nothing_and_keeps_the_file(
    tmp_path: Path, witness: Running, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A witness that cannot read what it last cosigned for a log cannot tell a rollback:
    it refuses, says why (its operator must restore the file), and leaves the file alone."""
    log = session(tmp_path, "iv_1", 3)
    assert (await add(witness.url, log, old=0))[0] == 200
    origin = session_origin(LOG_NAME, "iv_1")
    path = witness.state / f"{hashlib.sha256(origin.encode()).hexdigest()}.json"
    path.write_bytes(damage)
    grow(log, 2)
    status, _, answer = await add(witness.url, log, old=3)
    assert status == 503, answer
    assert "damaged" in answer
    assert "restore" in answer
    assert path.read_bytes() == damage
    assert "Traceback" not in caplog.text
    assert [r.levelname for r in caplog.records if "damaged" in r.getMessage()] == ["ERROR"]


async def test_a_log_cut_back_to_a_prefix_is_refused(tmp_path: Path, witness: Running) -> None:
    log = session(tmp_path, "iv_1", 3)
    assert (await add(witness.url, log, old=0))[0] == 200
    grow(log, 5)
    assert (await add(witness.url, log, old=3))[0] == 200
    # the genuine, server-signed checkpoint of size 3 offered again after 8 was seen
    status, _, answer = await add(witness.url, log, old=8, size=3)
    assert status == 400, answer
    assert "old size 8 is above the checkpoint's size 3" in answer
    status, kind, answer = await add(witness.url, log, old=3, size=3)
    assert (status, kind, answer) == (409, "text/x.tlog.size", "8\n")
    assert held(witness.state, session_origin(LOG_NAME, "iv_1"))["size"] == 8


async def test_a_forked_log_is_refused_and_kept_as_evidence(
    tmp_path: Path, witness: Running
) -> None:
    log = session(tmp_path, "iv_1", 5)
    assert (await add(witness.url, log, old=0))[0] == 200
    # the same origin and key, the first 3 events, then other events: a fork
    (tmp_path / "fork").mkdir()
    kept = (log.directory / EVENTS).read_bytes().splitlines(keepends=True)[:3]
    (tmp_path / "fork" / EVENTS).write_bytes(b"".join(kept))
    fork = SessionLog(tmp_path / "fork", session_origin(LOG_NAME, "iv_1"), SERVER)
    grow(fork, 2, label="forked")  # size 5 too, another root
    status, kind, answer = await add(witness.url, fork, old=5, size=5)
    assert (status, kind) == (409, "text/plain"), answer
    assert "another root hash" in answer
    grow(fork, 4, label="forked")  # size 9: no proof from the witness's 5 exists
    status, _, answer = await add(witness.url, fork, old=5)
    assert status == 422, answer
    assert "does not extend the checkpoint of size 5" in answer
    assert held(witness.state, session_origin(LOG_NAME, "iv_1"))["size"] == 5
    assert len(list((witness.state / "refused").iterdir())) == 2
    # the genuine log carries on
    grow(log, 1)
    assert (await add(witness.url, log, old=5))[0] == 200


async def test_a_stale_old_size_gets_409_with_the_witness_size(
    tmp_path: Path, witness: Running
) -> None:
    log = session(tmp_path, "iv_1", 4)
    assert (await add(witness.url, log, old=0))[0] == 200
    grow(log, 3)
    status, kind, answer = await add(witness.url, log, old=0)  # a client that lost track
    assert (status, kind, answer) == (409, "text/x.tlog.size", "4\n")
    status, kind, answer = await add(witness.url, log, old=2)  # a wrong size, a valid proof
    assert (status, kind, answer) == (409, "text/x.tlog.size", "4\n")
    assert (await add(witness.url, log, old=4))[0] == 200


async def test_the_witness_remembers_every_origin_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    running = await start_witness(state)
    one, two = session(tmp_path, "iv_1", 3), session(tmp_path, "iv_2", 2)
    assert (await add(running.url, one, old=0))[0] == 200
    grow(one, 4)
    assert (await add(running.url, one, old=3))[0] == 200
    assert (await add(running.url, two, old=0))[0] == 200
    await running.stop()
    running = await start_witness(state)
    try:
        assert await add(running.url, one, old=3, size=3) == (409, "text/x.tlog.size", "7\n")
        assert await add(running.url, one, old=0) == (409, "text/x.tlog.size", "7\n")
        assert await add(running.url, two, old=0) == (409, "text/x.tlog.size", "2\n")
        grow(one, 2)
        status, _, answer = await add(running.url, one, old=7)
        assert status == 200
        check_cosignature(answer, note_of(one, 9))
    finally:
        await running.stop()
    assert {p.stat().st_mode & 0o777 for p in state.glob("*.json")} == {0o600}


async def test_an_unknown_origin_is_404_and_an_unknown_key_403(
    tmp_path: Path, witness: Running
) -> None:
    other_origin = SessionLog(tmp_path / "x", "elsewhere.test/interview/iv_1", SERVER)
    grow(other_origin, 2)
    status, _, answer = await add(witness.url, other_origin, old=0)
    assert status == 404 and "elsewhere.test/interview/iv_1" in answer
    bare_prefix = SessionLog(tmp_path / "y", PREFIX, SERVER)
    grow(bare_prefix, 1)
    assert (await add(witness.url, bare_prefix, old=0))[0] == 404
    impostor = NoteSigner(LOG_NAME, Ed25519PrivateKey.from_private_bytes(bytes([8]) * 32))
    forged = SessionLog(tmp_path / "z", session_origin(LOG_NAME, "iv_1"), impostor)
    grow(forged, 2)
    status, _, answer = await add(witness.url, forged, old=0)
    assert status == 403 and "no signature by a trusted key" in answer
    # the server's name and key id over an altered checkpoint: a bad signature
    genuine = session(tmp_path, "iv_1", 2)
    note = note_of(genuine, 2)
    lines = note.split("\n")
    lines[1] = "3"
    status, _, answer = await post(witness.url, request_body(0, [], "\n".join(lines)))
    assert status == 403 and "does not match" in answer
    assert not list(witness.state.glob("*.json"))


async def test_a_witness_takes_every_origin_under_each_of_its_prefixes(tmp_path: Path) -> None:
    running = await start_witness(tmp_path / "state", prefixes=(PREFIX, f"{LOG_NAME}/closed"))
    try:
        closed = SessionLog(tmp_path / "closed", f"{LOG_NAME}/closed", SERVER)
        grow(closed, 1)
        assert (await add(running.url, closed, old=0))[0] == 404  # a prefix is not an origin
        closed = SessionLog(tmp_path / "closed2", f"{LOG_NAME}/closed-sessions", SERVER)
        grow(closed, 2)
        assert (await add(running.url, closed, old=0))[0] == 200
        assert (await add(running.url, session(tmp_path, "iv_1", 1), old=0))[0] == 200
        other = SessionLog(tmp_path / "other", f"{LOG_NAME}/clos", SERVER)
        grow(other, 1)
        assert (await add(running.url, other, old=0))[0] == 404
    finally:
        await running.stop()


async def test_a_witness_of_the_server_takes_its_interviews_and_closed_sessions_only(
    tmp_path: Path,
) -> None:
    running = await start_witness(tmp_path / "state", prefixes=(witness_prefix(LOG_NAME),))
    try:
        closed = SessionLog(tmp_path / "closed", closed_sessions_origin(LOG_NAME), SERVER)
        grow(closed, 2)
        assert (await add(running.url, closed, old=0))[0] == 200
        assert (await add(running.url, session(tmp_path, "iv_1", 1), old=0))[0] == 200
        for n, origin in enumerate(
            ("elsewhere.test/closed-sessions", f"{LOG_NAME}.evil/closed-sessions", LOG_NAME)
        ):
            other = SessionLog(tmp_path / f"other{n}", origin, SERVER)
            grow(other, 1)
            status, _, answer = await add(running.url, other, old=0)
            assert status == 404 and f"knows no log {origin!r}" in answer
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"old 0\n", "a blank line, then a checkpoint"),
        (b"old 01\n\nx\n", "no leading zeros"),
        (b"new 0\n\nx\n", "'old <size>'"),
        (b"old 0\nnot base64!\n\nx\n", "line 2 is not a base64 SHA-256 hash"),
        (b"old 1\n" + b"AAAA\n" + b"\n", "line 2 is not a base64 SHA-256 hash"),
        (b"old 1\n" + b"A" * 43 + b"=\n" * 64 + b"\n", "at most 63 lines"),
        (b"\xff\xfe", "not UTF-8"),
        (b"old 0\n\nnexus.test/interview/a\n1\n", "signed note"),
    ],
)
async def test_a_malformed_request_is_400_with_the_reason(
    witness: Running, body: bytes, words: str
) -> None:
    status, _, answer = await post(witness.url, body)
    assert status == 400
    assert words in answer


# --- the server's client ----------------------------------------------------------------


def endpoint(running_url: str, key: Ed25519PrivateKey = WITNESS_KEY) -> WitnessEndpoint:
    vkey = Cosigner(WITNESS_NAME, key).verifier_key
    return parse_witnesses(f"CBSA={running_url}={vkey}")[0]


async def wait_settled(witnessing: Witnessing) -> None:
    await asyncio.wait_for(witnessing.settled(), 10)


async def test_the_client_cosigns_each_newest_checkpoint_on_disk(
    tmp_path: Path, witness: Running
) -> None:
    log = session(tmp_path, "iv_1", 3)
    witnessing = Witnessing([endpoint(witness.url)], delays=[0.05])
    await witnessing.start()
    try:
        witnessing.submit(log.directory)
        await wait_settled(witnessing)
        grow(log, 4)
        witnessing.submit(log.directory)
        await wait_settled(witnessing)
    finally:
        await witnessing.close()
    vkey = endpoint(witness.url).key
    assert cosignatures(note_of(log, 3), [vkey]) == {WITNESS_NAME: NOW}
    assert cosignatures(note_of(log, 7), [vkey]) == {WITNESS_NAME: NOW}
    check_cosignature(note_of(log, 7).splitlines(keepends=True)[-1], note_of(log, 7))
    assert witnessing.unwitnessed() == {}


async def test_the_client_retries_a_witness_that_is_down_and_catches_it_up(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = session(tmp_path, "iv_1", 3)
    witnessing = Witnessing([endpoint(f"http://127.0.0.1:{port}")], delays=[0.1])
    await witnessing.start()
    running = None
    try:
        witnessing.submit(log.directory)
        await asyncio.sleep(0.3)
        assert list(witnessing.unwitnessed()) == [log.directory]
        assert witnessing.unwitnessed()[log.directory]["CBSA"] != "not yet submitted"
        grow(log, 5)  # the interview goes on meanwhile
        witnessing.submit(log.directory)
        running = await start_witness(tmp_path / "state", port)
        await wait_settled(witnessing)
    finally:
        await witnessing.close()
        if running:
            await running.stop()
    vkey = endpoint("http://x").key
    assert cosignatures(note_of(log, 8), [vkey]) == {WITNESS_NAME: NOW}
    assert held(tmp_path / "state", session_origin(LOG_NAME, "iv_1"))["size"] == 8


async def test_the_client_will_not_carry_a_log_cut_back_below_what_a_witness_saw(
    tmp_path: Path, witness: Running
) -> None:
    log = session(tmp_path, "iv_1", 3)
    grow(log, 4)
    assert (await add(witness.url, log, old=0))[0] == 200  # the witness saw 7
    os.unlink(log.directory / CHECKPOINTS / f"{7:010d}.note")  # cut back to 3
    witnessing = Witnessing([endpoint(witness.url)], delays=[60])
    await witnessing.start()
    try:
        witnessing.submit(log.directory)
        for _ in range(100):
            await asyncio.sleep(0.05)
            problem = witnessing.unwitnessed()[log.directory]["CBSA"]
            if problem != "not yet submitted":
                break
    finally:
        await witnessing.close()
    assert "has cosigned 7 events" in problem and "the log was cut back" in problem
    assert cosignatures(note_of(log, 3), [endpoint(witness.url).key]) == {}


# --- the command ------------------------------------------------------------------------


async def test_nexus_interview_witness_runs_as_its_own_process(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "server.cli", "witness",
        "--key", str(tmp_path / "cbp.key"), "--new-key", "cbp.test/witness",
        "--log-key", SERVER.verifier_key, "--origin-prefix", PREFIX,
        "--state", str(tmp_path / "state"), "--listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    env = {**os.environ, "NEXUS_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)  # noqa: ASYNC220
    try:
        assert process.stdout is not None
        first = await asyncio.to_thread(process.stdout.readline)
        vkey = first.removeprefix("witness ").strip()
        await asyncio.to_thread(process.stdout.readline)  # about to listen
        key = CosignatureVerifier.parse(vkey)
        log = session(tmp_path, "iv_1", 2)
        for _ in range(100):
            try:
                status, _, answer = await add(f"http://127.0.0.1:{port}", log, old=0)
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        assert status == 200
        assert list(cosignatures(note_of(log, 2) + answer, [key])) == ["cbp.test/witness"]
    finally:
        process.terminate()
        process.wait(10)
    assert (tmp_path / "cbp.key").stat().st_mode & 0o777 == 0o600
