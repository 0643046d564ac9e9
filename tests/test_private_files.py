"""What the server writes under its data directory is its user's alone: after a recorded
interview (media, decisions, a still, a witness's cosignature) every file there is 0600
and every directory 0700, whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from recordings.private_files import private_directory, replace_privately
from recordings.tlog import NoteVerifier
from recordings.witness import cosign_session, generate_witness
from server.appkeys import RECORDS

from .audit_scene import capture_still, decide_both
from .fakes import World
from .test_session_records import record_a_call


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask: without care, files come out 0644 and directories 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
async def test_a_recorded_interview_leaves_only_private_files_and_directories(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, _ = recorded
    session = await record_a_call(world, during=capture_still)  # a still
    await decide_both(world, session.name)  # two decisions' sealed notes
    server_key = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    witness = generate_witness(tmp_path / "witness" / "cbsa-witness.key", "cbsa-witness")
    await world.server.app[RECORDS].close_all()  # the final checkpoint of the decisions
    await asyncio.to_thread(cosign_session, session, [server_key], witness)
    data_dir = world.settings.data_dir
    found = [data_dir, *data_dir.rglob("*")]
    assert any(path.name.endswith(".webm.age") for path in found)
    assert any(path.name.startswith("still-") for path in found)
    assert any(path.name.startswith("notes-") for path in found)
    not_private = {
        str(path.relative_to(tmp_path)): oct(mode(path))
        for path in found
        if mode(path) != (0o700 if path.is_dir() else 0o600)
    }
    assert not_private == {}


@pytest.mark.usefixtures("permissive_umask")
def test_a_private_directory_is_made_with_its_parents_and_leaves_existing_ones_alone(
    tmp_path: Path,
) -> None:
    existing = tmp_path / "operator-chose-this"
    existing.mkdir(mode=0o755)
    made = private_directory(existing / "records" / "iv_1")
    assert made.is_dir()
    assert mode(existing) == 0o755
    assert mode(existing / "records") == mode(made) == 0o700
    assert private_directory(made) == made  # there already: nothing to do


@pytest.mark.usefixtures("permissive_umask")
def test_a_file_replaced_privately_is_private_and_whole(tmp_path: Path) -> None:
    path = tmp_path / "0000000003.note"
    path.write_text("an older note")
    replace_privately(path, b"the new note")
    assert path.read_bytes() == b"the new note" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
