"""An officer's decision in the making (verdict, reason codes, notes) is kept server-side
while they type, given back to that officer alone, never logged, and deleted once their
agency's decision is recorded; decisions come back to the browser naming the officer,
not their database id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.logs import QUIET_LIBRARIES, configure_logging
from common.names import Agency

from .calls import applicant_in_call, taken_interview
from .fakes import Client, World, error_message

NOTES = "Passport photo page looks re-laminated; ask about it."
DRAFT: dict[str, object] = {"verdict": "refer", "reason_codes": ["CA-DOC"], "notes": NOTES}


async def drafts_kept(world: World) -> list[tuple[object, ...]]:
    async with world.store.database.transaction() as db:
        rows = await db.execute_fetchall("SELECT * FROM decision_drafts")
    return [tuple(row) for row in rows]


async def shown(client: Client, interview_id: str) -> dict[str, object]:
    response = await client.get(f"/api/interviews/{interview_id}")
    assert response.status == 200, await response.text()
    body: dict[str, object] = await response.json()
    return body


async def test_an_officers_draft_is_kept_and_given_back_to_that_officer_alone(
    world: World,
) -> None:
    interview_id, cbsa, cbp = await taken_interview(world)
    saved = await cbsa.put(f"/api/interviews/{interview_id}/draft", json=DRAFT)
    assert saved.status == 200, await saved.text()
    assert (await shown(cbsa, interview_id))["draft"] == DRAFT

    changed = {**DRAFT, "notes": NOTES + " Then the address history."}
    assert (await cbsa.put(f"/api/interviews/{interview_id}/draft", json=changed)).status == 200
    assert (await shown(cbsa, interview_id))["draft"] == changed

    assert (await shown(cbp, interview_id))["draft"] is None
    auditor = await world.client()
    await world.sign_in(auditor, await world.add_auditor("auditor.one"))
    assert "draft" not in json.dumps(await shown(auditor, interview_id))


async def test_an_empty_form_is_a_draft_too(world: World) -> None:
    interview_id, cbsa, _ = await taken_interview(world)
    empty: dict[str, object] = {"verdict": None, "reason_codes": [], "notes": ""}
    assert (await cbsa.put(f"/api/interviews/{interview_id}/draft", json=empty)).status == 200
    assert (await shown(cbsa, interview_id))["draft"] == empty


async def test_an_officer_of_another_interview_can_keep_no_draft_in_it(world: World) -> None:
    interview_id, _, _ = await taken_interview(world)
    other = await world.client()
    await world.sign_in(other, await world.add_officer("cbsa.other", Agency.CBSA))
    other.session.headers["X-CSRF-Token"] = await world.csrf(other)
    refused = await other.put(f"/api/interviews/{interview_id}/draft", json=DRAFT)
    assert refused.status == 403
    assert await drafts_kept(world) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**DRAFT, "reason_codes": ["US-DOC"]}, "unknown CBSA reason code(s): US-DOC"),
        ({**DRAFT, "verdict": "maybe"}, "invalid request body"),
        ({**DRAFT, "notes": "x" * 5001}, "invalid request body"),
        ({**DRAFT, "mood": "tired"}, "invalid request body"),
    ],
)
async def test_a_draft_that_could_never_become_a_decision_is_refused_plainly(
    world: World, body: dict[str, object], message: str
) -> None:
    interview_id, cbsa, _ = await taken_interview(world)
    refused = await cbsa.put(f"/api/interviews/{interview_id}/draft", json=body)
    assert refused.status == 400
    assert message in error_message(await refused.json())
    assert (await shown(cbsa, interview_id))["draft"] is None


async def test_the_draft_goes_once_the_decision_is_recorded_and_none_is_kept_after(
    world: World,
) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa = call.interview_id, call.cbsa
        assert (await cbsa.put(f"/api/interviews/{interview_id}/draft", json=DRAFT)).status == 200
        decided = await cbsa.post(f"/api/interviews/{interview_id}/decision", json=DRAFT)
    assert decided.status == 201, await decided.text()
    assert await drafts_kept(world) == []
    assert (await shown(cbsa, interview_id))["draft"] is None

    late = await cbsa.put(f"/api/interviews/{interview_id}/draft", json=DRAFT)
    assert late.status == 409
    assert "already decided" in error_message(await late.json())
    assert (await shown(cbsa, interview_id))["draft"] is None


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The log as `nexus-interview --log-level DEBUG` sets it up, captured; restored after."""
    libraries = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG")
    yield caplog
    for name, level in libraries.items():
        logging.getLogger(name).setLevel(level)


async def test_a_draft_is_never_logged_nor_written_to_the_record(
    recorded: tuple[World, dict[str, Path]], server_log: pytest.LogCaptureFixture
) -> None:
    world, _ = recorded
    async with applicant_in_call(world) as call:
        interview_id, cbsa = call.interview_id, call.cbsa
        secret_notes = "Draft only: applicant mentioned a 2019 refusal at Lacolle."
        draft = {**DRAFT, "notes": secret_notes}
        assert (await cbsa.put(f"/api/interviews/{interview_id}/draft", json=draft)).status == 200
        await shown(cbsa, interview_id)
        final = {**DRAFT, "notes": "Refer for secondary."}
        decision = f"/api/interviews/{interview_id}/decision"
        assert (await cbsa.post(decision, json=final)).status == 201

    assert "draft" in server_log.text  # the requests themselves were logged
    assert "Lacolle" not in server_log.text
    for entry in await world.store.access_log.entries():
        assert "Lacolle" not in repr(entry)
    record = world.settings.data_dir / "records" / interview_id
    for path in record.rglob("*"):
        if path.is_file():
            assert b"Lacolle" not in path.read_bytes(), path


async def test_decisions_name_the_officer_and_carry_no_database_id(world: World) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa, cbp = call.interview_id, call.cbsa, call.cbp
        decided = await cbsa.post(f"/api/interviews/{interview_id}/decision", json=DRAFT)
    own = (await decided.json())["decisions"]["CBSA"]
    assert "officer_id" not in own
    assert own["decided_by"] == "Cbsa.One"

    # blind: CBP sees nothing of it yet; CBSA sees all of its own, after a reload too
    assert (await shown(cbp, interview_id))["decisions"] == {}
    again = (await shown(cbsa, interview_id))["decisions"]
    assert again == {"CBSA": own}
    assert own["notes"] == NOTES and own["reason_codes"] == ["CA-DOC"]

    approve = {"verdict": "approve", "reason_codes": [], "notes": ""}
    both = await (await cbp.post(f"/api/interviews/{interview_id}/decision", json=approve)).json()
    assert both["both_decided"] is True
    for decision in both["decisions"].values():
        assert "officer_id" not in decision
    assert both["decisions"]["CBP"]["decided_by"] == "Cbp.One"
