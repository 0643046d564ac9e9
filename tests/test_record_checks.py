"""The server checks its own closed records: one edited or deleted after its close is
reported on the operator's console, whatever its operator did to the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import record_checks
from server.appkeys import LIVES
from server.record_checks import CLOSED_SESSIONS_CHECK, check_now

from .audit_scene import decide_both
from .fakes import World
from .test_operator_console import figure, operator_client
from .test_session_records import record_a_call


async def closed_record(world: World) -> Path:
    session = await record_a_call(world)
    await decide_both(world, session.name)
    await world.server.app[LIVES].drain()  # closed, and listed among the closed sessions
    return session


async def test_a_closed_record_passes_its_check_and_is_read_again_only_in_turn(
    recorded: tuple[World, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _ = recorded
    session = await closed_record(world)

    first = await check_now(world.server.app)
    monkeypatch.setattr(record_checks, "RECHECKS", 0)  # nobody's turn
    again = await check_now(world.server.app)

    assert {(c.interview_id, c.ok) for c in first} == {
        (CLOSED_SESSIONS_CHECK, True),
        (session.name, True),
    }
    assert [c.interview_id for c in again] == [CLOSED_SESSIONS_CHECK]
    assert await world.store.record_checks.failed() == []


async def test_a_segment_edited_after_its_record_passed_is_caught_in_its_turn(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await closed_record(world)
    assert all(c.ok for c in await check_now(world.server.app))
    segment = next(session.glob("cbsa-*.webm.age"))
    data = bytearray(segment.read_bytes())
    data[-100] ^= 0xFF
    segment.write_bytes(bytes(data))

    await check_now(world.server.app)  # one record: its turn is every pass

    assert [c.interview_id for c in await world.store.record_checks.failed()] == [session.name]


async def test_a_segment_edited_after_the_close_is_reported_on_the_console(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await closed_record(world)
    segment = next(session.glob("cbp-*.webm.age"))
    data = bytearray(segment.read_bytes())
    data[-100] ^= 0xFF
    segment.write_bytes(bytes(data))

    await check_now(world.server.app)

    failed = await world.store.record_checks.failed()
    assert [c.interview_id for c in failed] == [session.name]
    assert any(segment.name in problem for problem in failed[0].problems), failed
    rows = await figure(await operator_client(world), "failed-records")
    assert [row["interview"] for row in rows] == [session.name]


async def test_a_record_deleted_whole_after_it_passed_is_caught_at_the_next_check(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await closed_record(world)
    await check_now(world.server.app)
    for path in sorted(session.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    session.rmdir()

    await check_now(world.server.app)

    failed = await world.store.record_checks.failed()
    assert [c.interview_id for c in failed] == [session.name]
    assert "it was deleted whole" in failed[0].problems[0]
