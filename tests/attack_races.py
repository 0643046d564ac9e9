"""The races the attack runs among its inputs: guesses that reach a link or an account all
at once, two officers taking one interview at once, and a keeper that goes on trying the
right secrets of what was locked for as long as the attack lasts.

Each returns what it saw; the test judges it once the attack is over."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field

import pyotp

from common.names import Agency

from .attack_inputs import TOKEN_D
from .attack_scene import DOBS, Scene
from .fakes import Client

BURST = 100
RIGHT_AT = 60  # the right secret, well inside the burst


@dataclass
class Burst:
    statuses: list[int]

    def compared(self, *meaning_compared: int) -> int:
        return sum(self.statuses.count(status) for status in meaning_compared)

    @property
    def right(self) -> int:
        return self.statuses[RIGHT_AT]


@dataclass
class Keeper:
    """The right secrets of the locked account and link, tried again and again."""

    account: Counter[int] = field(default_factory=Counter)
    link: Counter[int] = field(default_factory=Counter)


async def _anonymous(scene: Scene) -> tuple[Client, str]:
    session = scene.sessions["anonymous"]
    return await scene.world.client(session), session.csrf


async def dob_burst(scene: Scene, token: str, right: str) -> Burst:
    """BURST dates of birth posted at once to one link; the right one at RIGHT_AT."""
    client, csrf = await _anonymous(scene)
    guesses = [f"1999-01-{n % 28 + 1:02d}" for n in range(BURST)]
    guesses[RIGHT_AT] = right

    async def guess(dob: str) -> int:
        form = {"csrf_token": csrf, "date_of_birth": dob}
        response = await client.post(f"/i/{token}", data=form, allow_redirects=False)
        return response.status

    return Burst(list(await asyncio.gather(*(guess(dob) for dob in guesses))))


async def _sign_in(client: Client, csrf: str, scene: Scene, password: str) -> int:
    account = scene.locked
    code = pyotp.TOTP(account.totp_secret.reveal()).at(scene.world.clock())
    form = {"csrf_token": csrf, "username": account.username, "password": password, "code": code}
    response = await client.post("/login", data=form, allow_redirects=False)
    return response.status


async def password_burst(scene: Scene) -> Burst:
    """BURST sign-ins at once to the account to lock, with the right one-time code; the
    right password at RIGHT_AT."""
    client, csrf = await _anonymous(scene)
    passwords = [f"wrong-password-{n}" for n in range(BURST)]
    passwords[RIGHT_AT] = scene.locked.password.reveal()
    return Burst(list(await asyncio.gather(*(_sign_in(client, csrf, scene, p) for p in passwords))))


async def keep_trying(scene: Scene, stop: asyncio.Event, keeper: Keeper) -> None:
    """The locked account's right password and code, and the locked link's right date of
    birth, every quarter second until ``stop``."""
    client, csrf = await _anonymous(scene)
    token = scene.tokens[TOKEN_D]
    while not stop.is_set():
        keeper.account[await _sign_in(client, csrf, scene, scene.locked.password.reveal())] += 1
        response = await client.post(
            f"/i/{token}",
            data={"csrf_token": csrf, "date_of_birth": DOBS["D"]},
            allow_redirects=False,
        )
        keeper.link[response.status] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


TAKERS = {"unassigned_officer": "cbsa.free", "second_unassigned": "cbsa.free2"}


async def take_race(scene: Scene, interview_id: str) -> dict[str, list[int]]:
    """Two CBSA officers each try five times at once to take the same waiting interview;
    the statuses each got, by username."""
    takers = {}
    for role, name in TAKERS.items():
        takers[name] = await scene.world.client(scene.sessions[role])

    async def take(name: str) -> tuple[str, int]:
        response = await takers[name].post(f"/api/interviews/{interview_id}/take")
        return name, response.status

    tries = [take(role) for role in takers for _ in range(5)]
    statuses: dict[str, list[int]] = {role: [] for role in takers}
    for role, status in await asyncio.gather(*tries):
        statuses[role].append(status)
    return statuses


async def cbsa_officer_of(scene: Scene, interview_id: str) -> str | None:
    """The username of the CBSA officer the store seats in the interview."""
    seated = (await scene.world.store.interviews.get(interview_id)).officer_for(Agency.CBSA)
    for name in TAKERS.values():
        account = await scene.world.store.accounts.by_username(name)
        if account is not None and account.id == seated:
            return name
    return None
