"""Bad input at the HTTP boundary: a clear 4xx naming the problem, never a 500, and
nothing written."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.names import Agency

from .fakes import Client, World, add_applications, application, error_message


@dataclass
class Officer:
    client: Client
    csrf: str
    interview_id: str


@pytest.fixture
async def officer(world: World) -> AsyncIterator[Officer]:
    await add_applications(world.store, application("NX-0001"))
    interview_id, _ = await world.invite("NX-0001")
    account = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, account)
    csrf = await world.csrf(client)
    assert (
        await client.post(f"/api/interviews/{interview_id}/take", headers={"X-CSRF-Token": csrf})
    ).status == 200
    yield Officer(client, csrf, interview_id)


def snapshot(world: World) -> list[tuple[object, ...]]:
    """Everything a decision could write (the access log aside)."""
    with sqlite3.connect(world.settings.database_path) as db:
        return [
            *db.execute("SELECT * FROM decisions"),
            *db.execute("SELECT id, status FROM applications"),
            *db.execute("SELECT * FROM application_status_history"),
            *db.execute("SELECT id, state FROM interviews"),
            *db.execute("SELECT id, available FROM officers JOIN accounts ON id = account_id"),
        ]


BAD_DECISIONS = [
    ("{not json", "not valid JSON"),
    ("[]", "Expected `object`, got `array`"),
    ('{"verdict": "approve"}', "missing required field `reason_codes`"),
    ('{"verdict": "maybe", "reason_codes": []}', "Invalid enum value 'maybe'"),
    ('{"verdict": "approve", "reason_codes": "CA-OTH"}', "Expected `array`, got `str`"),
    ('{"verdict": "approve", "reason_codes": [], "mood": "good"}', "unknown field `mood`"),
    ('{"verdict": "approve", "reason_codes": [], "notes": 5}', "Expected `str`, got `int`"),
    ('{"verdict": "deny", "reason_codes": []}', "needs at least one reason code"),
    ('{"verdict": "deny", "reason_codes": ["US-CRM"]}', "unknown CBSA reason code(s): US-CRM"),
    ('{"verdict": "deny", "reason_codes": ["CA-CRM", "CA-CRM"]}', "listed twice"),
    (json.dumps({"verdict": "approve", "reason_codes": [], "notes": "x" * 6000}), "length <= 5000"),
]


@pytest.mark.parametrize(("body", "message"), BAD_DECISIONS)
async def test_bad_decision_bodies_get_a_clear_400_and_write_nothing(
    world: World, officer: Officer, body: str, message: str
) -> None:
    before = snapshot(world)
    response = await officer.client.post(
        f"/api/interviews/{officer.interview_id}/decision",
        data=body,
        headers={"X-CSRF-Token": officer.csrf, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert message in error_message(await response.json())
    assert snapshot(world) == before


async def test_json_must_be_sent_as_json(world: World, officer: Officer) -> None:
    response = await officer.client.post(
        "/api/officer/availability",
        data="available=true",
        headers={"X-CSRF-Token": officer.csrf, "Content-Type": "text/plain"},
    )
    assert response.status == 400
    assert "Content-Type: application/json" in error_message(await response.json())


async def test_oversized_bodies_are_refused_with_413(world: World, officer: Officer) -> None:
    before = snapshot(world)
    big = json.dumps({"verdict": "approve", "reason_codes": [], "notes": "x" * 100_000})
    response = await officer.client.post(
        f"/api/interviews/{officer.interview_id}/decision",
        data=big,
        headers={"X-CSRF-Token": officer.csrf, "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert "larger than 65536 bytes" in error_message(await response.json())
    assert snapshot(world) == before


async def test_oversized_forms_are_refused_with_413(world: World) -> None:
    client = await world.client()
    csrf = await world.csrf(client)
    response = await client.post(
        "/login", data={"csrf_token": csrf, "username": "x" * 70_000, "password": "p", "code": "1"}
    )
    assert response.status == 413


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"username": "a", "password": "b"}, "missing form field(s): code"),
        ({"username": "a", "password": "b", "code": "1", "admin": "1"}, "unexpected form field"),
        ({"username": "a" * 65, "password": "b", "code": "1"}, "longer than 64 characters"),
    ],
)
async def test_bad_sign_in_forms_say_what_is_wrong(
    world: World, form: dict[str, str], message: str
) -> None:
    client = await world.client()
    csrf = await world.csrf(client)
    response = await client.post("/login", data={"csrf_token": csrf, **form})
    assert response.status == 400
    assert message in await response.text()


async def test_a_malformed_date_of_birth_is_a_400_and_not_a_try(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    client = await world.client()
    response = await world.confirm_dob(client, token, "17/05/1980")
    assert response.status == 400
    assert "YYYY-MM-DD" in await response.text()
    assert (await world.store.interviews.get(interview_id)).dob_failures == 0


async def test_bad_query_parameters_are_a_400(world: World) -> None:
    auditor = await world.add_auditor("auditor.one")
    client = await world.client()
    await world.sign_in(client, auditor)
    response = await client.get("/api/audit/interviews?page=-1")
    assert response.status == 400
    assert "page must be a whole number" in error_message(await response.json())


async def test_unknown_addresses_and_methods_answer_in_kind(world: World) -> None:
    client = await world.client()
    api = await client.get("/api/nothing-here")
    assert api.status == 404
    assert error_message(await api.json()) == "there is nothing at this address"
    page = await client.put("/login", headers={"X-CSRF-Token": await world.csrf(client)})
    assert page.status == 405
    assert "PUT is not allowed here" in await page.text()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
DECISION_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "verdict": st.sampled_from(["approve", "deny", "refer", "", "APPROVE"]) | JSON_VALUES,
        "reason_codes": st.lists(st.sampled_from(["CA-OTH", "CA-CRM", "US-ID", ""]), max_size=3)
        | JSON_VALUES,
        "notes": st.text(max_size=30) | JSON_VALUES,
        "extra": JSON_VALUES,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=DECISION_LIKE | JSON_VALUES, raw=st.binary(max_size=40))
async def test_no_body_makes_the_server_fail(
    world: World, officer: Officer, body: object, raw: bytes
) -> None:
    """Random JSON and random bytes on every JSON endpoint: always an answer below 500;
    a decision is stored only if the body was a valid one."""
    headers = {"X-CSRF-Token": officer.csrf, "Content-Type": "application/json"}
    for path in (
        f"/api/interviews/{officer.interview_id}/decision",
        "/api/officer/availability",
        f"/api/interviews/{officer.interview_id}/take",
    ):
        for data in (json.dumps(body), raw):
            response = await officer.client.post(path, data=data, headers=headers)
            assert response.status < 500, await response.text()
            if response.status >= 400:
                assert error_message(await response.json())
