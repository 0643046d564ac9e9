"""Lockouts hold when guesses arrive all at once, through the real server."""

from __future__ import annotations

import asyncio

import pyotp

from common.names import Agency

from .fakes import World, add_applications, application


async def test_parallel_date_of_birth_guesses_never_compare_more_than_the_limit(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    client = await world.client()
    csrf = await world.csrf(client)
    guesses = [f"1999-01-{day % 28 + 1:02d}" for day in range(200)]
    guesses[82] = "1980-05-17"  # the right one, well inside the burst

    async def guess(dob: str) -> int:
        response = await client.post(
            f"/i/{token}",
            data={"csrf_token": csrf, "date_of_birth": dob},
            allow_redirects=False,
        )
        return response.status

    statuses = await asyncio.gather(*(guess(dob) for dob in guesses))
    compared = [s for s in statuses if s in (303, 400)]
    limit = world.settings.dob_max_failures
    assert len(compared) + statuses.count(423) == len(guesses)
    assert len(compared) <= limit
    assert statuses[82] == 423  # far beyond the limit: never compared
    assert (await world.store.interviews.get(interview_id)).dob_failures == limit


async def test_parallel_wrong_passwords_lock_before_the_right_one_is_compared(
    world: World,
) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    csrf = await world.csrf(client)
    code = pyotp.TOTP(officer.totp_secret.reveal()).at(world.clock())

    async def attempt(password: str) -> int:
        form = {"csrf_token": csrf, "username": "cbsa.one", "password": password, "code": code}
        response = await client.post("/login", data=form, allow_redirects=False)
        return response.status

    wrong = [attempt(f"wrong-password-{n}") for n in range(14)]
    statuses = await asyncio.gather(*wrong)
    assert statuses.count(401) <= world.settings.login_max_failures
    right = await attempt(officer.password.reveal())
    assert right == 423
    assert (await client.get("/officer", allow_redirects=False)).status == 303


async def test_a_lock_is_not_lifted_by_the_right_password(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    for _ in range(world.settings.login_max_failures):
        await world.sign_in(client, officer, code="000000")
    for _ in range(3):
        assert (await world.sign_in(client, officer)).status == 423
    world.clock.advance(world.settings.login_lockout_seconds)
    assert (await world.sign_in(client, officer)).status == 303
