"""Agencies' witness keys: each agency cosigns a complete, verified session's final
checkpoint with a key the interview server never holds (cosignature/v1, the same kind
of line a live witness gives), and `records verify --witness` insists on it."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.errors import KeyFileError
from recordings.tlog import NoteSigner
from recordings.witness import generate_witness, read_cosigner, signer_key
from recordings.witness_protocol import CosignatureVerifier, cosignatures
from server.appkeys import RECORDS

from .audit_scene import decide_both
from .fakes import World, nexus_interview
from .test_session_records import record_a_call


async def cosign(
    session: Path, key_file: Path, server_key: str
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        nexus_interview,
        "records",
        "cosign",
        str(session),
        "--witness-key",
        str(key_file),
        "--key",
        server_key,
    )


async def verify(
    session: Path, server_key: str, *witnesses: str
) -> subprocess.CompletedProcess[str]:
    flags = [part for key in witnesses for part in ("--witness", key)]
    return await asyncio.to_thread(
        nexus_interview, "records", "verify", str(session), "--key", server_key, *flags
    )


def test_a_witness_key_file_round_trips_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "cbsa-witness.key"
    signer = generate_witness(path, "cbsa-witness")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+cbsa-witness+")
    again = read_cosigner(path)
    assert again.verifier_key == signer.verifier_key
    CosignatureVerifier.parse(signer.verifier_key)  # a cosignature/v1 key for others
    assert "PRIVATE" not in repr(again)


@pytest.mark.parametrize(
    "text",
    ["", "AGE-SECRET-KEY-1XYZ", "PRIVATE+KEY+name+00000000+notbase64!", "PRIVATE+KEY+x+y"],
)
def test_a_malformed_witness_key_file_is_refused_clearly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match="witness key"):
        read_cosigner(path)


def test_an_older_ed25519_witness_key_file_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "old.key"
    key = Ed25519PrivateKey.generate()
    path.write_text(signer_key(NoteSigner("cbsa-witness", key), key).reveal() + "\n")
    with pytest.raises(KeyFileError, match="cosigns no more: make a cosignature/v1 key"):
        read_cosigner(path)


async def test_both_agencies_cosign_and_verify_insists_on_their_signatures(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    await decide_both(world, session.name)  # the interview closes: only then is it cosigned
    server_key = world.server.app[RECORDS].signer.verifier_key
    data_dir = str(world.settings.data_dir)
    witness_keys = {}
    for agency in ("cbsa", "cbp"):
        key_file = tmp_path / "agency" / f"{agency}-witness.key"
        made = await asyncio.to_thread(
            nexus_interview,
            "--data-dir",
            data_dir,
            "keys",
            "witness",
            "--for",
            agency,
            "--out",
            str(key_file),
        )
        assert made.returncode == 0, made.stderr
        witness_keys[agency] = made.stdout.strip().rsplit(" ", 1)[1]
        signed = await cosign(session, key_file, server_key)
        assert signed.returncode == 0, signed.stderr
        assert f"co-signed by {agency}-witness" in signed.stdout

    final = sorted((session / "checkpoints").glob("*.note"))[-1]
    keys = [CosignatureVerifier.parse(key) for key in witness_keys.values()]
    assert set(cosignatures(final.read_bytes(), keys)) == {"cbsa-witness", "cbp-witness"}
    verified = await verify(session, server_key, witness_keys["cbsa"], witness_keys["cbp"])
    assert verified.returncode == 0, verified.stderr
    assert "cosigned by: cbsa-witness, cbp-witness" in verified.stdout

    stranger = generate_witness(tmp_path / "other.key", "other-witness")
    missing = await verify(session, server_key, stranger.verifier_key)
    assert missing.returncode == 3
    assert "not yet cosigned by other-witness" in missing.stderr


async def test_a_witness_refuses_to_cosign_a_tampered_session(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    events = session / "events.jsonl"
    events.write_text(events.read_text().replace('"kind":"consent"', '"kind":"consent2"'))
    key_file = tmp_path / "cbsa.key"
    generate_witness(key_file, "cbsa-witness")
    before = {p.name: p.read_bytes() for p in (session / "checkpoints").iterdir()}
    refused = await cosign(session, key_file, world.server.app[RECORDS].signer.verifier_key)
    assert refused.returncode == 1
    assert "not co-signing a session that does not verify" in refused.stderr
    assert {p.name: p.read_bytes() for p in (session / "checkpoints").iterdir()} == before


async def test_witness_keys_are_never_written_into_the_server_data_dir(world: World) -> None:
    inside = world.settings.data_dir / "cbsa-witness.key"
    refused = await asyncio.to_thread(
        nexus_interview,
        "--data-dir",
        str(world.settings.data_dir),
        "keys",
        "witness",
        "--for",
        "cbsa",
        "--out",
        str(inside),
    )
    assert refused.returncode == 1 and "must never hold a private key" in refused.stderr
    assert not inside.exists()
