"""`records verify --witness` on records the live witnesses cosigned: two real witness
apps on 127.0.0.1 (`nexus-interview witness`'s app), fed a real `SessionLog`'s
checkpoints by the server's client (`server.witnessing`); verification takes the keys as
the witnesses print them (cosignature/v1) and insists on the final checkpoint."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.session_record import CHECKPOINTS, SessionLog, session_origin, verify_session
from recordings.tlog import NoteSigner, NoteVerifier, add_signatures, parse_note
from recordings.witness_keys import parse_witness_key
from recordings.witness_protocol import CosignatureVerifier, Cosigner
from server import serving
from server.audit_console import AuditConsole
from server.store import Store
from server.witness_app import WitnessConfig, create_witness_app
from server.witnessing import WitnessEndpoint, Witnessing

from .fakes import nexus_interview

LOG_NAME = "nexus.test"
EM = "\u2014"


@dataclass
class Agencies:
    server: NoteSigner
    witnesses: dict[str, Cosigner]  # by key name
    urls: dict[str, str]

    def endpoints(self, *names: str) -> list[WitnessEndpoint]:
        return [
            WitnessEndpoint(
                name, self.urls[name], CosignatureVerifier.parse(self.witnesses[name].verifier_key)
            )
            for name in names
        ]

    def vkey(self, name: str) -> str:
        return self.witnesses[name].verifier_key


@asynccontextmanager
async def agencies(state: Path) -> AsyncIterator[Agencies]:
    """The server's checkpoint key and both agencies' witnesses, each its own app."""
    server = NoteSigner(LOG_NAME, Ed25519PrivateKey.generate())
    witnesses = {
        n: Cosigner(n, Ed25519PrivateKey.generate()) for n in ("cbsa-witness", "cbp-witness")
    }
    runners: list[web.AppRunner] = []
    urls = {}
    try:
        for name, cosigner in witnesses.items():
            config = WitnessConfig(
                cosigner,
                [NoteVerifier.parse(server.verifier_key)],
                [f"{LOG_NAME}/interview/"],
                state / name,
            )
            runner = await serving.start(create_witness_app(config), "127.0.0.1", 0)
            runners.append(runner)
            urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield Agencies(server, witnesses, urls)
    finally:
        for runner in runners:
            await runner.cleanup()


async def witnessed(directory: Path, endpoints: list[WitnessEndpoint]) -> None:
    """Submit the record's newest checkpoint as the server does, until each answered."""
    witnessing = Witnessing(endpoints, delays=(0.05,))
    await witnessing.start()
    try:
        witnessing.submit(directory)
        await asyncio.wait_for(witnessing.settled(), 20)
        assert witnessing.unwitnessed() == {}
    finally:
        await witnessing.close()


def interview(records: Path, server: NoteSigner, name: str = "iv_witnessed") -> SessionLog:
    """A consented session under way: its events so far, checkpointed."""
    log = SessionLog(records / name, session_origin(LOG_NAME, name), server)
    log.append("consent", seat="applicant")
    log.append("join", seat="cbsa")
    log.checkpoint()
    return log


def close(log: SessionLog) -> None:
    """The call's end, then the interview's close (both agencies decided), checkpointed."""
    log.append("end", by="cbsa")
    log.append("close")
    log.checkpoint()
    log.close_file()


async def verify(
    directory: Path, server: NoteSigner, *witnesses: str
) -> subprocess.CompletedProcess[str]:
    flags = [part for key in witnesses for part in ("--witness", key)]
    return await asyncio.to_thread(
        nexus_interview, "records", "verify", str(directory), "--key", server.verifier_key, *flags
    )


def final_note(log: SessionLog) -> Path:
    return log.directory / CHECKPOINTS / f"{log.size:010d}.note"


async def test_a_record_both_live_witnesses_cosigned_verifies_with_their_keys(
    tmp_path: Path,
) -> None:
    async with agencies(tmp_path / "witnesses") as parties:
        log = interview(tmp_path / "records", parties.server)
        await witnessed(log.directory, parties.endpoints("cbsa-witness", "cbp-witness"))
        close(log)
        await witnessed(log.directory, parties.endpoints("cbsa-witness", "cbp-witness"))
    done = await verify(
        log.directory, parties.server, parties.vkey("cbsa-witness"), parties.vkey("cbp-witness")
    )
    assert done.returncode == 0, done.stderr
    assert "final checkpoint cosigned by: cbsa-witness, cbp-witness" in done.stdout
    assert "VERIFIED" in done.stdout


async def test_a_witness_that_never_cosigned_leaves_the_record_incomplete_naming_it(
    tmp_path: Path,
) -> None:
    async with agencies(tmp_path / "witnesses") as parties:
        log = interview(tmp_path / "records", parties.server)
        close(log)
        await witnessed(log.directory, parties.endpoints("cbsa-witness"))  # CBP's never asked
    keys = (parties.vkey("cbsa-witness"), parties.vkey("cbp-witness"))
    done = await verify(log.directory, parties.server, *keys)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "FAILED: incomplete: the final checkpoint (4 events, ending at the interview's close) "
        "is not yet cosigned by cbp-witness"
    ]
    result = verify_session(
        log.directory,
        [NoteVerifier.parse(parties.server.verifier_key)],
        witnesses=[parse_witness_key(key) for key in keys],
    )
    assert (result.ok, result.failed, result.complete) == (False, False, False)
    assert result.witnessed_by == ["cbsa-witness"]
    # without witness keys nobody outside the server vouches for it: never complete
    plain = await verify(log.directory, parties.server)
    assert plain.returncode == 3 and "VERIFIED" not in plain.stdout
    assert plain.stderr.splitlines() == [
        "FAILED: incomplete: nobody outside the server vouches for the record's length (it "
        "could have been cut back to an earlier checkpoint): no witness key was given; pass "
        "each agency's witness key (--witness)"
    ]


async def test_a_cosignature_of_an_earlier_checkpoint_only_leaves_the_record_incomplete(
    tmp_path: Path,
) -> None:
    async with agencies(tmp_path / "witnesses") as parties:
        log = interview(tmp_path / "records", parties.server)
        await witnessed(log.directory, parties.endpoints("cbsa-witness", "cbp-witness"))
        log.append("decision", by="cbsa")
        close(log)  # the witnesses are not told of the end
    done = await verify(
        log.directory, parties.server, parties.vkey("cbsa-witness"), parties.vkey("cbp-witness")
    )
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        f"FAILED: incomplete: the final checkpoint (5 events, ending at the interview's "
        f"close) is not yet cosigned by {name}"
        for name in ("cbsa-witness", "cbp-witness")
    ]
    assert "cosigned by" not in done.stdout


async def test_a_forged_or_moved_cosignature_on_the_final_checkpoint_is_refused(
    tmp_path: Path,
) -> None:
    async with agencies(tmp_path / "witnesses") as parties:
        log = interview(tmp_path / "records", parties.server)
        await witnessed(log.directory, parties.endpoints("cbsa-witness", "cbp-witness"))
        earlier = final_note(log).read_text()
        close(log)
        await witnessed(log.directory, parties.endpoints("cbsa-witness"))
    keys = (parties.vkey("cbsa-witness"), parties.vkey("cbp-witness"))
    final = final_note(log)
    genuine = final.read_bytes()
    cbp = CosignatureVerifier.parse(parties.vkey("cbp-witness"))
    forged = base64.b64encode(cbp.key_id + (1_790_000_000).to_bytes(8, "big") + os.urandom(64))
    moved = next(s.line for s in parse_note(earlier)[1] if s.name == "cbp-witness")
    for line in (f"{EM} cbp-witness {forged.decode()}\n", moved):
        final.write_bytes(genuine + line.encode())
        done = await verify(log.directory, parties.server, *keys)
        assert done.returncode == 3
        assert done.stderr.splitlines() == [
            f"FAILED: checkpoint {final.name}: the cosignature by cbp-witness does not match "
            "the checkpoint"
        ]


async def test_an_older_ed25519_witness_line_and_a_live_cosignature_both_count(
    tmp_path: Path,
) -> None:
    async with agencies(tmp_path / "witnesses") as parties:
        log = interview(tmp_path / "records", parties.server)
        close(log)
        await witnessed(log.directory, parties.endpoints("cbsa-witness"))
    older = NoteSigner("cbp-witness", Ed25519PrivateKey.generate())
    final = final_note(log)
    final.write_text(add_signatures(final.read_bytes(), [older]))
    done = await verify(
        log.directory, parties.server, parties.vkey("cbsa-witness"), older.verifier_key
    )
    assert done.returncode == 0, done.stderr
    assert "final checkpoint cosigned by: cbsa-witness, cbp-witness" in done.stdout


async def test_a_key_that_is_no_witness_key_is_refused_with_a_message(tmp_path: Path) -> None:
    server = NoteSigner(LOG_NAME, Ed25519PrivateKey.generate())
    log = interview(tmp_path / "records", server)
    close(log)
    done = await verify(log.directory, server, "cbsa-witness+00000000+AAAA")
    assert done.returncode == 1
    assert "not a witness verifier key" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_audit_console_holds_a_record_incomplete_until_both_witnesses_cosigned(
    tmp_path: Path,
) -> None:
    async with agencies(tmp_path / "witnesses") as parties:
        log = interview(tmp_path / "records", parties.server, "iv_0123456789abcdef")
        close(log)
        console = AuditConsole(
            tmp_path / "records",
            [],
            [NoteVerifier.parse(parties.server.verifier_key)],
            Store(tmp_path / "store.db"),  # never opened: verification reads no store
            [parse_witness_key(parties.vkey(n)) for n in ("cbsa-witness", "cbp-witness")],
        )
        await witnessed(log.directory, parties.endpoints("cbsa-witness"))
        waiting = console.verification(log.directory.name)
        assert console.status(waiting) == "incomplete"
        assert waiting.problems == [
            "incomplete: the final checkpoint (4 events, ending at the interview's close) is "
            "not yet cosigned by cbp-witness"
        ]
        await witnessed(log.directory, parties.endpoints("cbp-witness"))
        done = console.verification(log.directory.name)
        assert console.status(done) == "verified"
        assert done.witnessed_by == ["cbsa-witness", "cbp-witness"]
