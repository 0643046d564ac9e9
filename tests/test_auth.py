"""Credentials as units: passwords, TOTP steps, throttling, secrets that never print."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest

from common.errors import BadRequest, Forbidden, TooManyRequests
from common.names import Agency
from common.secret import Secret
from server.auth import (
    LoginThrottle,
    Principal,
    new_invitation_token,
    token_hash,
    totp_step,
    totp_uri,
)
from server.types import AccountId, InterviewId, Role

from .fakes import FakeClock, fast_passwords


def test_passwords_are_argon2id_and_verify() -> None:
    passwords = fast_passwords()
    stored = passwords.hash(Secret("correct horse battery"))
    assert stored.startswith("$argon2id$")
    assert passwords.verify(Secret(stored), Secret("correct horse battery"))
    assert not passwords.verify(Secret(stored), Secret("correct horse battery!"))
    assert not passwords.verify(Secret("not a hash"), Secret("x"))


def test_short_passwords_are_refused() -> None:
    with pytest.raises(BadRequest, match="at least 12 characters"):
        fast_passwords().hash(Secret("short"))


def test_totp_accepts_the_current_and_adjacent_steps_only(clock: FakeClock) -> None:
    secret = Secret(pyotp.random_base32())
    totp = pyotp.TOTP(secret.reveal())
    step = totp.timecode(clock())
    assert totp_step(secret, totp.at(clock()), clock()) == step
    assert totp_step(secret, totp.at(clock() - timedelta(seconds=30)), clock()) == step - 1
    assert totp_step(secret, totp.at(clock() + timedelta(seconds=30)), clock()) == step + 1
    assert totp_step(secret, totp.at(clock() - timedelta(seconds=90)), clock()) is None
    assert totp_step(secret, "abcdef", clock()) is None
    assert totp_uri(secret, "jane").startswith("otpauth://totp/NEXUS%20interview:jane?secret=")


def test_throttle_allows_the_quota_then_says_when_to_retry(clock: FakeClock) -> None:
    throttle = LoginThrottle(3, clock)
    for _ in range(3):
        throttle.check("10.0.0.1")
    with pytest.raises(TooManyRequests) as caught:
        throttle.check("10.0.0.1")
    assert 1 <= caught.value.retry_after <= 61
    throttle.check("10.0.0.2")  # other addresses are not affected
    clock.advance(61)
    throttle.check("10.0.0.1")


def test_invitation_tokens_carry_256_bits_and_only_their_hash_is_kept() -> None:
    token = new_invitation_token().reveal()
    assert len(token) == 43  # 32 bytes in base64url
    assert len(token_hash(token)) == 32
    assert token_hash(token) != token.encode()


def test_secrets_never_show_in_repr_or_str() -> None:
    secret = Secret("hunter2-hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{[secret]}"


def test_a_principal_guards_its_role() -> None:
    officer = Principal(Role.OFFICER, AccountId(3), Agency.CBP)
    assert officer.officer_seat() == (3, Agency.CBP)
    with pytest.raises(Forbidden):
        officer.own_interview()
    applicant = Principal(Role.APPLICANT, interview_id=InterviewId("iv_1"))
    assert applicant.own_interview() == "iv_1"
    with pytest.raises(Forbidden):
        applicant.officer_seat()
