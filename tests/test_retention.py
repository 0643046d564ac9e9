"""Retention: a record past every agency's period, under no legal hold, is
crypto-shredded by the server's sweep (or `records retention`), and the operators' log,
the store and the record's own log say so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.names import Agency
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server.appkeys import OPERATIONS, RECORDS
from server.operations_log import KEYS_IN_USE, Operation
from server.retention import RetentionPolicy, run_retention

from .audit_scene import decide_both
from .fakes import World, nexus_interview
from .test_session_records import export_cli, record_a_call

YEAR = timedelta(days=366)


async def decided_record(world: World) -> Path:
    session = await record_a_call(world)
    await decide_both(world, session.name)
    return session


def shreds_and_holds(world: World) -> list[Operation]:
    """The operators' log less the server's own note of the keys it started with."""
    return [o for o in world.server.app[OPERATIONS].operations() if o.action != KEYS_IN_USE]


async def sweep(world: World, years: tuple[int, int] = (5, 5)) -> list[str]:
    app = world.server.app
    policy = RetentionPolicy({Agency.CBSA: years[0], Agency.CBP: years[1]})
    expired = await run_retention(world.store, app[RECORDS], app[OPERATIONS], policy, world.clock())
    assert all(not item.problem for item in expired), expired
    return [item.interview_id for item in expired]


async def test_a_record_past_retention_is_shredded_and_every_log_says_so(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> None:
    world, keys = recorded
    session = await decided_record(world)
    world.clock.advance((5 * YEAR).total_seconds())

    assert await sweep(world) == [session.name]

    server_key = world.server.app[RECORDS].signer.verifier_key
    export = await export_cli(session, keys["cbsa"], tmp_path / "out", "--key", server_key)
    assert export.returncode == 1 and "none of the given identities" in export.stderr
    result = await asyncio.to_thread(verify_session, session, [NoteVerifier.parse(server_key)])
    # every segment and both agencies' decision notes: nothing is left to open
    assert not result.failed and result.segments >= 3
    assert sorted(result.shredded_files) == sorted(p.name for p in session.glob("*.age"))
    assert {"notes-cbsa.txt.age", "notes-cbp.txt.age"} <= set(result.shredded_files)
    operations = shreds_and_holds(world)
    assert [(o.actor, o.action, o.target, o.outcome) for o in operations] == [
        ("retention", "records shred", session.name, "done")
    ]
    assert world.server.app[OPERATIONS].check().complete
    # a second sweep finds nothing left to do
    assert await sweep(world) == []


async def test_a_record_is_kept_until_the_longest_agency_period_has_passed(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await decided_record(world)
    world.clock.advance((6 * YEAR).total_seconds())

    assert await sweep(world, years=(5, 7)) == []  # CBP keeps it seven years
    world.clock.advance(YEAR.total_seconds())
    assert await sweep(world, years=(5, 7)) == [session.name]


async def test_a_legal_hold_keeps_a_record_past_retention_until_it_is_lifted(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    session = await decided_record(world)
    data = ("--data-dir", str(world.settings.data_dir))
    held = await asyncio.to_thread(
        nexus_interview, *data, "records", "hold", session.name, "--reason", "Case 2031-17"
    )
    assert held.returncode == 0, held.stderr
    again = await asyncio.to_thread(
        nexus_interview, *data, "records", "hold", session.name, "--reason", "other"
    )
    assert again.returncode == 0 and "already under a legal hold" in again.stdout
    world.clock.advance((10 * YEAR).total_seconds())

    assert await sweep(world) == []
    refused = await asyncio.to_thread(nexus_interview, *data, "records", "shred", session.name)
    assert refused.returncode == 1 and "under a legal hold" in refused.stderr

    released = await asyncio.to_thread(nexus_interview, *data, "records", "release", session.name)
    assert released.returncode == 0, released.stderr
    assert await sweep(world) == [session.name]
    actions = [(o.action, o.outcome) for o in shreds_and_holds(world)]
    assert actions == [
        ("records hold", "done"),
        ("records hold", "done"),
        ("records shred", "refused"),
        ("records release", "done"),
        ("records shred", "done"),
    ]
    holds = await world.store.retention.holds()
    assert holds == []


async def test_a_hold_needs_an_interview_that_exists_and_a_reason(world: World) -> None:
    data = ("--data-dir", str(world.settings.data_dir))

    unknown = await asyncio.to_thread(
        nexus_interview, *data, "records", "hold", "iv_0000000000000000", "--reason", "x"
    )
    blank = await asyncio.to_thread(
        nexus_interview, *data, "records", "hold", "iv_0000000000000000", "--reason", "  "
    )

    assert unknown.returncode == 1 and "there is no interview iv_0000000000000000" in unknown.stderr
    assert blank.returncode == 1 and "needs a reason" in blank.stderr
    assert "Traceback" not in unknown.stderr + blank.stderr


def test_a_record_begun_on_29_february_expires_on_28_february() -> None:
    policy = RetentionPolicy({Agency.CBSA: 5, Agency.CBP: 3})

    expiry = policy.expires(datetime(2028, 2, 29, 12, tzinfo=UTC))

    assert expiry == datetime(2033, 2, 28, 12, tzinfo=UTC)


async def test_a_hold_placed_while_the_sweep_runs_keeps_the_record(
    recorded: tuple[World, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _ = recorded
    session = await decided_record(world)
    world.clock.advance((10 * YEAR).total_seconds())
    retention = world.store.retention
    listed = retention.began_before

    async def then_held(moment: datetime) -> list[tuple[str, datetime]]:
        expired = await listed(moment)  # the sweep has its list; an operator holds one
        await retention.hold(session.name, "Case 2031-17", "cli:op@host")
        return expired

    monkeypatch.setattr(retention, "began_before", then_held)

    assert await sweep(world) == []
    monkeypatch.undo()
    assert [h.interview_id for h in await retention.holds()] == [session.name]
    server_key = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    result = await asyncio.to_thread(verify_session, session, [server_key])
    assert result.shredded == 0
