"""Real recorded interviews, each damaged once: verification names that one fault, once,
in words that say what was done (never its consequences as faults of their own); export
refuses a record that does not verify unless forced, and then marks every file; shred
keeps the record's origin and verify says what was shredded."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import av

from recordings.session_record import CHECKPOINTS, EVENTS, canonical, verify_session
from recordings.tlog import NoteVerifier
from server.appkeys import RECORDS

from .audit_scene import decide_both
from .fakes import World, nexus_interview
from .test_session_records import export_cli, record_a_call


def server_key(world: World) -> str:
    return world.server.app[RECORDS].signer.verifier_key


def problems(world: World, session: Path) -> list[str]:
    return verify_session(session, [NoteVerifier.parse(server_key(world))]).problems


def lines(session: Path) -> list[bytes]:
    return (session / EVENTS).read_bytes().splitlines()


def write_lines(session: Path, kept: list[bytes]) -> None:
    (session / EVENTS).write_bytes(b"".join(line + b"\n" for line in kept))


def signed_sizes(session: Path) -> set[int]:
    return {int(note.stem) for note in (session / CHECKPOINTS).glob("*.note")}


async def test_an_event_rewritten_by_a_json_tool_is_one_problem_naming_it(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    events = lines(session)
    at = next(n for n, line in enumerate(events) if b'"kind":"consent"' in line)
    edited = {**json.loads(events[at]), "language": "fr"}
    events[at] = json.dumps(edited).encode()  # spaces after separators: not canonical
    write_lines(session, events)

    assert problems(world, session) == [
        f"event {at} (consent) was altered: it is not in the canonical JSON the server "
        "writes (sorted keys, no spaces)"
    ]


async def test_an_event_edited_in_canonical_form_is_one_problem_naming_it(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    events = lines(session)
    sizes = signed_sizes(session)
    # an event a checkpoint signs on its own (the ones before it signed by the previous)
    at = next(n for n in range(1, len(events)) if n in sizes and n + 1 in sizes)
    event = json.loads(events[at])
    events[at] = canonical({**event, "at": "2027-01-01T00:00:00.000+00:00"})
    write_lines(session, events)

    assert problems(world, session) == [
        f"event {at} ({event['kind']}{' ' + event['file'] if 'file' in event else ''}) was "
        f"altered: it is not the event checkpoint {at + 1} signed"
    ]


async def test_a_removed_segment_is_named_missing_and_nothing_else(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    await decide_both(world, session.name)  # closed: nothing is missing but the segment
    (session / "cbp-00001.webm.age").unlink()

    assert problems(world, session) == ["segment cbp-00001.webm.age is missing"]


async def test_two_swapped_segments_are_one_problem_naming_both(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    await decide_both(world, session.name)  # closed: nothing is missing but the swap
    cbsa, cbp = session / "cbsa-00001.webm.age", session / "cbp-00001.webm.age"
    held = cbsa.read_bytes()
    cbsa.write_bytes(cbp.read_bytes())
    cbp.write_bytes(held)

    assert problems(world, session) == [
        "segments cbp-00001.webm.age and cbsa-00001.webm.age were swapped: each holds what "
        "the log lists for the other"
    ]


async def test_a_log_torn_by_a_crash_is_one_incomplete_problem(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    events = lines(session)
    last = len(events) - 1
    for size in signed_sizes(session) - set(range(last + 1)):  # never signed: the crash
        (session / CHECKPOINTS / f"{size:010d}.note").unlink()
    (session / EVENTS).write_bytes(b"".join(line + b"\n" for line in events[:last]) + b'{"at":')

    assert problems(world, session) == [
        f"incomplete: the log ends in a half-written event {last}, cut off as by a crash; "
        f"last good checkpoint covers {max(signed_sizes(session))} of {last} events"
    ]


async def test_signed_events_cut_from_the_log_are_one_problem_naming_them(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    events = lines(session)
    first_segment = next(n for n, line in enumerate(events) if b'"kind":"segment"' in line)
    write_lines(session, events[:first_segment])

    assert problems(world, session) == [
        f"the log was cut short: checkpoint {len(events)} signs {len(events)} events, events "
        f"{first_segment}-{len(events) - 1} are missing; no event left lists "
        "applicant-00001.webm.age, cbp-00001.webm.age, cbsa-00001.webm.age"
    ]


def comment(path: Path) -> str:
    with av.open(str(path)) as container:
        return str(container.metadata.get("COMMENT", ""))


async def export_with_key(
    world: World, session: Path, identity: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return await export_cli(session, identity, out, "--key", server_key(world), *extra)


async def test_export_of_a_clean_record_is_unmarked(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    done = await export_with_key(world, session, keys["audit"], tmp_path / "out")

    assert done.returncode == 0, done.stderr
    assert "FAILED" not in done.stderr and "UNVERIFIED" not in done.stdout
    exported = sorted((tmp_path / "out").glob("*.webm"))
    assert [path.name for path in exported] == ["applicant.webm", "cbp.webm", "cbsa.webm"]
    for path in exported:
        assert f"{path}: 1 segments" in done.stdout
        assert comment(path) == ""


async def test_export_refuses_a_record_with_a_replaced_segment_unless_forced(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    shutil.copy(session / "cbsa-00001.webm.age", session / "cbp-00001.webm.age")

    refused = await export_with_key(world, session, keys["audit"], tmp_path / "refused")
    assert refused.returncode == 3, refused.stderr
    assert (
        "FAILED: segment cbp-00001.webm.age was replaced by a copy of cbsa-00001.webm.age"
        in refused.stderr
    )
    assert "not exported" in refused.stderr
    assert not list((tmp_path / "refused").glob("*.webm"))

    out = tmp_path / "forced"
    forced = await export_with_key(world, session, keys["audit"], out, "--force")
    assert forced.returncode == 0, forced.stderr
    files = [line for line in forced.stdout.splitlines() if ".webm:" in line]
    assert len(files) == 3 and all("UNVERIFIED" in line for line in files), forced.stdout
    for seat in ("applicant", "cbsa", "cbp"):
        assert comment(out / f"{seat}.webm").startswith("UNVERIFIED: "), seat


async def test_export_refuses_a_segment_with_bytes_appended_and_never_calls_it_a_crash(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    with (session / "applicant-00001.webm.age").open("ab") as segment:
        segment.write(b"\0" * 5000)

    refused = await export_with_key(world, session, keys["cbsa"], tmp_path / "refused")
    assert refused.returncode == 3
    assert "FAILED: segment applicant-00001.webm.age does not match its hash" in refused.stderr
    forced = await export_with_key(world, session, keys["cbsa"], tmp_path / "forced", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "crash" not in forced.stdout
    assert "applicant-00001.webm.age does not decrypt to its end" in forced.stdout


async def test_shred_keeps_the_records_origin_and_verify_names_what_was_shredded(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await record_a_call(world)
    data_dir = str(world.settings.data_dir)
    shredded = await asyncio.to_thread(
        nexus_interview,
        "--data-dir",
        data_dir,
        "records",
        "shred",
        session.name,
        env={"NEXUS_PUBLIC_URL": "https://elsewhere.example"},
    )
    assert shredded.returncode == 0, shredded.stderr
    notes = (session / CHECKPOINTS).glob("*.note")
    assert {note.read_text().split("\n", 1)[0] for note in notes} == {
        f"127.0.0.1:8080/interview/{session.name}"
    }

    verified = await asyncio.to_thread(
        nexus_interview, "records", "verify", str(session), "--key", server_key(world)
    )
    # the call ended but the interview never closed: incomplete, and nothing failed
    assert verified.returncode == 3
    assert verified.stderr.startswith("FAILED: incomplete: the interview has not closed")
    assert len(verified.stderr.splitlines()) == 1
    assert (
        "SHREDDED (retention period expired): the key material of applicant-00001.webm.age, "
        "cbp-00001.webm.age, cbsa-00001.webm.age was destroyed" in verified.stdout
    )
