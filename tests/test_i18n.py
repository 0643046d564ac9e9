"""English and French: the catalog covers every message the pages and scripts use, the
request's language is chosen as people expect, and server errors come translated."""

from __future__ import annotations

import ast
import re

import pytest
from babel.messages.pofile import read_po

from common.names import Agency
from server.i18n import Catalogs, Translator, page_language, preferred_language
from web import LOCALE

from .catalog_messages import all_messages, source_files
from .fakes import World, add_applications, application, error_message

FIELD = re.compile(r"\{[a-z_]+\}")


def french() -> Translator:
    return Catalogs(LOCALE).translator("fr")


def test_every_message_of_the_pages_has_a_french_translation() -> None:
    messages = french().messages
    missing = sorted(all_messages() - set(messages))
    assert not missing, f"add these to web/locale/fr.po: {missing}"


def test_french_translations_keep_every_field_and_no_entry_is_fuzzy_or_empty() -> None:
    with (LOCALE / "fr.po").open("rb") as handle:
        catalog = read_po(handle, locale="fr")
    for entry in catalog:
        if not entry.id:
            continue
        assert entry.string and not entry.fuzzy, entry.id
        assert sorted(FIELD.findall(str(entry.id))) == sorted(FIELD.findall(str(entry.string))), (
            entry.id
        )


def test_the_catalog_holds_no_message_that_nothing_uses() -> None:
    sources = "\n".join(path.read_text("utf-8") for path in source_files())
    python = "\n".join(p.read_text("utf-8") for p in LOCALE.parents[1].glob("*/**/*.py"))
    unused = [
        message
        for message in french().messages
        if message not in all_messages() and message not in sources and message not in python
    ]
    assert not unused, f"stale entries in web/locale/fr.po: {unused}"


def test_fields_are_filled_after_translation() -> None:
    assert french()(
        "You are number {position} in line. Estimated wait: about {minutes} min.",
        position=3,
        minutes=12,
    ) == ("Vous êtes numéro 3 dans la file. Attente estimée : environ 12 min.")
    assert Catalogs(LOCALE).translator("de")("Continue") == "Continue"  # unknown: English


def test_tagged_text_carries_its_message_id_for_switching_in_place() -> None:
    html = str(french().tagged("Consent text version {version}", version="2026-11-01"))
    assert html == (
        '<span data-t="Consent text version {version}" data-t-fields="{&#34;version&#34;: '
        '&#34;2026-11-01&#34;}">Version du texte de consentement : 2026-11-01</span>'
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        ("en-CA,fr;q=0.9", "en"),
        ("de-DE,fr;q=0.5,en;q=0.4", "fr"),
        ("de, es", "en"),
        ("fr;q=0, en", "en"),
        ("fr;q=nonsense, en;q=0.2", "en"),
    ],
)
def test_the_browser_language_is_used_until_one_is_chosen(
    header: str | None, expected: str
) -> None:
    assert preferred_language(header) == expected


@pytest.mark.parametrize(
    ("chosen", "known", "header", "expected"),
    [
        ("en", "fr", "fr", "en"),  # chosen on a page: always
        (None, "fr", "en", "fr"),  # else the application's
        (None, "en", "fr-CA", "en"),
        (None, None, "fr-CA", "fr"),  # else the browser's
        (None, None, None, "en"),
        ("xx", "fr", "en", "fr"),  # a session value that is not a language is no choice
        (7, None, "fr", "fr"),
    ],
)
def test_a_page_language_is_the_chosen_then_the_known_then_the_browsers(
    chosen: object, known: str | None, header: str | None, expected: str
) -> None:
    assert page_language(chosen, known, header) == expected


async def test_a_chosen_language_holds_for_the_session_and_survives_signing_in(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    client = await world.client()
    csrf = await world.csrf(client)
    chosen = await client.post(
        "/language",
        data={"csrf_token": csrf, "language": "fr", "next": f"/i/{token}"},
        allow_redirects=False,
    )
    assert chosen.status == 303 and chosen.headers["Location"] == f"/i/{token}"
    page = await (await client.get(f"/i/{token}")).text()
    assert '<html lang="fr">' in page and "Confirmez votre identité" in page
    await world.confirm_dob(client, token, "1980-05-17")  # a fresh session after this
    page = await (await client.get("/interview")).text()
    assert "Consentement à l" in page and "Couper le microphone" in page


async def test_language_switch_in_place_answers_the_messages(world: World) -> None:
    client = await world.client()
    csrf = {"X-CSRF-Token": await world.csrf(client)}
    switched = await client.post("/api/language", json={"language": "fr"}, headers=csrf)
    body = await switched.json()
    assert body["language"] == "fr" and body["messages"]["Continue"] == "Continuer"
    english = await client.post("/api/language", json={"language": "en"}, headers=csrf)
    assert (await english.json())["messages"] == {}
    wrong = await client.post("/api/language", json={"language": "xx"}, headers=csrf)
    assert wrong.status == 400
    assert error_message(await wrong.json()) == "choose one of these languages: en, fr"


async def test_the_language_form_never_redirects_off_site(world: World) -> None:
    client = await world.client()
    csrf = await world.csrf(client)
    off_site = (
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:x",
        "/\t/evil.example",  # yarl drops the tab: //evil.example
        "/\n/evil.example",
        " //evil.example",
    )
    for target in off_site:
        response = await client.post(
            "/language",
            data={"csrf_token": csrf, "language": "en", "next": target},
            allow_redirects=False,
        )
        assert response.headers["Location"] == "/", target
    on_site = await client.post(
        "/language",
        data={"csrf_token": csrf, "language": "en", "next": "/officer?tab=queue"},
        allow_redirects=False,
    )
    assert on_site.headers["Location"] == "/officer?tab=queue"


async def test_server_errors_reach_a_french_session_in_french(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    client = await world.client()
    csrf = {"X-CSRF-Token": await world.csrf(client)}
    await client.post("/api/language", json={"language": "fr"}, headers=csrf)
    missing = await client.get("/i/" + "x" * 43)
    assert missing.status == 404
    assert "ce lien d&#39;entrevue n&#39;est pas valide" in await missing.text()
    api = await client.get("/api/applicant/interview")
    assert error_message(await api.json()) == "ouvrez d'abord le lien de votre invitation"
    nowhere = await client.get("/api/nothing-here")
    assert error_message(await nowhere.json()) == "il n'y a rien à cette adresse"


async def test_french_officer_console_renders_the_reason_codes_in_french(world: World) -> None:
    officer = await world.add_officer("cbsa.fr", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    csrf = {"X-CSRF-Token": await world.csrf(client)}
    await client.post("/api/language", json={"language": "fr"}, headers=csrf)
    page = await (await client.get("/officer")).text()
    assert "Interdit de territoire au Canada" in page and "Console de l" in page


def test_every_refusal_of_the_interview_lifecycle_has_a_french_translation() -> None:
    """The lifecycle's refusals reach applicants and officers as they are: each needs its
    French."""
    tree = ast.parse((LOCALE.parents[1] / "server" / "lifecycle.py").read_text("utf-8"))
    refusals = {
        argument.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Refused"
        for argument in node.args
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str)
    }
    over_messages = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "_over"
    )
    over = {
        value.value
        for node in ast.walk(over_messages)
        if isinstance(node, ast.Dict)
        for value in node.values
        if isinstance(value, ast.Constant) and isinstance(value.value, str)
    }
    assert refusals, "no refusal found: the scan is broken"
    missing = sorted(m for m in refusals | over if m not in french().messages)
    assert not missing, f"lifecycle refusals without French: {missing}"
