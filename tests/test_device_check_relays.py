"""The device check's relays: an invitation link gets TURN credentials before the date of
birth, one credential per slot of a few minutes however often it asks, a bounded number
of checks an hour (then 429 with the time to wait), and a link that no longer opens gets
none."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from media.address_policy import EVERY_NETWORK
from server.settings import Settings, load_settings
from server.views.device_check import (
    CHECKS_PER_HOUR,
    GRACE_SECONDS,
    SLOT_SECONDS,
    check_ice_servers,
)

from .fakes import FakeClock, World, add_applications, application, error_message

SECRET = "device-check-test-secret-0123456789abcdef"
URLS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:443?transport=tcp"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "media_peer_networks": EVERY_NETWORK,
            "media_workers": "0",
            "turn_urls": ",".join(URLS),
            "turn_secret": SECRET,
        },
    )


async def _relays(world: World, token: str) -> tuple[int, Any]:
    client = await world.client()
    response = await client.get(f"/api/invitations/{token}/relays")
    assert response.headers.get("Cache-Control") == "no-store" or response.status != 200
    return response.status, await response.json()


async def test_a_link_gets_relays_with_a_short_lived_credential_the_relay_accepts(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")

    status, body = await _relays(world, token)

    assert status == 200
    [server] = body["ice_servers"]
    assert server["urls"] == URLS
    expiry, who = server["username"].split(":")
    assert who == f"{interview_id}-check"
    lifetime = int(expiry) - world.clock().timestamp()
    assert GRACE_SECONDS <= lifetime <= SLOT_SECONDS + GRACE_SECONDS
    # coturn's use-auth-secret: the password is the HMAC-SHA1 of the username
    digest = hmac.new(SECRET.encode(), server["username"].encode(), hashlib.sha1).digest()
    assert server["credential"] == base64.b64encode(digest).decode()


async def test_a_link_asking_again_and_again_gets_at_most_one_credential_per_slot(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    seen: set[str] = set()
    for _ in range(CHECKS_PER_HOUR):  # evenly through an hour
        status, body = await _relays(world, token)
        assert status == 200
        seen.add(body["ice_servers"][0]["username"])
        world.clock.advance(3600 / CHECKS_PER_HOUR)

    assert len(seen) <= 3600 // SLOT_SECONDS + 1  # the hour may start inside a slot


async def test_a_link_checking_too_often_is_told_to_wait_and_other_links_are_not(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"), application("NX-0002"))
    _, token = await world.invite("NX-0001")
    _, other = await world.invite("NX-0002")
    client = await world.client()
    for _ in range(CHECKS_PER_HOUR):
        status, _ = await _relays(world, token)
        assert status == 200
        world.clock.advance(60)

    refused = await client.get(f"/api/invitations/{token}/relays")
    body = await refused.json()

    assert refused.status == 429
    assert "ice_servers" not in body  # no credential with the refusal
    retry = int(refused.headers["Retry-After"])
    assert 3600 - 60 * CHECKS_PER_HOUR < retry <= 3600 - 60 * (CHECKS_PER_HOUR - 1) + 1
    assert f"has run {CHECKS_PER_HOUR} times in the last hour" in error_message(body)
    assert f"try again in {-(-retry // 60)} min" in error_message(body)
    assert (await _relays(world, other))[0] == 200  # another invitation checks as before
    # once the first check of the hour is an hour old, the link may check again
    world.clock.advance(retry)
    assert (await _relays(world, token))[0] == 200


async def test_an_unknown_or_expired_link_gets_no_relays(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001", hours=1)

    status, body = await _relays(world, "x" * 43)
    assert status == 404
    assert "link is not valid" in error_message(body)

    world.clock.advance(timedelta(hours=2).total_seconds())
    status, body = await _relays(world, token)
    assert status == 410
    assert "expired" in error_message(body)


async def test_without_turn_the_check_gets_an_empty_list(tmp_path: Path) -> None:
    plain = load_settings({}, {"data_dir": str(tmp_path / "data")})

    assert check_ice_servers(plain, "iv_0123456789abcdef-check", FakeClock()()) == []
