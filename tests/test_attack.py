"""The attack suite's findings, each pinned on its own.

The attack itself (thousands of generated requests and messages against a live call) is
added to this file next."""

from __future__ import annotations

import logging

import pytest

from .fakes import World

FORM_TYPE = "application/x-www-form-urlencoded"
UNREADABLE_FORMS = {
    "bytes that are not UTF-8": (FORM_TYPE, b"csrf_token=\xff\xfe&username=\xc3"),
    "an odd number of bytes as UTF-16": (f"{FORM_TYPE}; charset=utf-16", b"abc"),
    "a charset Python does not know": (f"{FORM_TYPE}; charset=x-unknown", b"username=a"),
}


@pytest.mark.parametrize("csrf_in", ["form", "header"])
@pytest.mark.parametrize("form", UNREADABLE_FORMS.values(), ids=UNREADABLE_FORMS.keys())
async def test_a_form_that_cannot_be_decoded_is_a_400(
    world: World, caplog: pytest.LogCaptureFixture, form: tuple[str, bytes], csrf_in: str
) -> None:
    """The charset a form names, or UTF-8, must decode its body: if not, a 400 whether
    the CSRF token comes in the form (read by the middleware) or in a header (read by the
    route)."""
    content_type, body = form
    session = await world.session_of_anonymous()
    client = await world.client(session if csrf_in == "header" else None)
    if csrf_in == "form":
        client.session.cookie_jar.update_cookies({"nexus_session": session.cookie})
    response = await client.post("/login", data=body, headers={"Content-Type": content_type})
    assert response.status == 400, await response.text()
    assert "the form could not be read" in await response.text()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
