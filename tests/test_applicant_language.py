"""The applicant's pages speak the application's language until the applicant picks one on
the page; an application of no known language follows the browser's Accept-Language."""

from __future__ import annotations

from signalling import messages as m

from .calls import Seated
from .fakes import Client, World, add_applications, application

ENGLISH_BROWSER = {"Accept-Language": "en-CA,en;q=0.9"}
FRENCH_BROWSER = {"Accept-Language": "fr-CA,fr;q=0.9"}
CHECK_IN_FR = "Confirmez votre identité"
CHECK_IN_EN = "Confirm your identity"


async def invited(world: World, language: str | None) -> str:
    await add_applications(world.store, application("NX-0001", language=language))
    return (await world.invite("NX-0001"))[1]


async def page(client: Client, path: str, headers: dict[str, str]) -> tuple[str, str]:
    response = await client.get(path, headers=headers)
    text = await response.text()
    return (
        "fr" if '<html lang="fr">' in text else "en" if '<html lang="en">' in text else "?"
    ), text


async def test_a_french_application_gets_the_french_check_in_page_in_an_english_browser(
    world: World,
) -> None:
    token = await invited(world, "fr")
    client = await world.client()
    language, text = await page(client, f"/i/{token}", ENGLISH_BROWSER)
    assert language == "fr" and CHECK_IN_FR in text
    language, _ = await page(client, f"/i/{token}/appointment", ENGLISH_BROWSER)
    assert language == "fr"
    confirmed = await world.confirm_dob(client, token, "1980-05-17")
    assert confirmed.status == 303
    language, text = await page(client, "/interview", ENGLISH_BROWSER)
    assert language == "fr" and "Consentement à l" in text


async def test_choosing_english_on_the_page_wins_over_the_application_language(
    world: World,
) -> None:
    token = await invited(world, "fr")
    client = await world.client()
    csrf = await world.csrf(client)
    chosen = await client.post(
        "/language",
        data={"csrf_token": csrf, "language": "en", "next": f"/i/{token}"},
        headers=FRENCH_BROWSER,
        allow_redirects=False,
    )
    assert chosen.status == 303
    language, text = await page(client, f"/i/{token}", FRENCH_BROWSER)
    assert language == "en" and CHECK_IN_EN in text
    await world.confirm_dob(client, token, "1980-05-17")  # the choice survives signing in
    assert (await page(client, "/interview", FRENCH_BROWSER))[0] == "en"
    switched = await client.post(
        "/api/language", json={"language": "fr"}, headers={"X-CSRF-Token": await world.csrf(client)}
    )
    assert switched.status == 200
    assert (await page(client, "/interview", ENGLISH_BROWSER))[0] == "fr"


async def test_an_english_application_gets_english_pages_in_a_french_browser(
    world: World,
) -> None:
    token = await invited(world, "en")
    client = await world.client()
    language, text = await page(client, f"/i/{token}", FRENCH_BROWSER)
    assert language == "en" and CHECK_IN_EN in text


async def test_a_refusal_on_the_link_is_in_the_application_language(world: World) -> None:
    token = await invited(world, "fr")
    world.clock.advance(9 * 3600)  # past the window: the link has expired
    client = await world.client()
    response = await client.get(f"/i/{token}", headers=ENGLISH_BROWSER)
    assert response.status == 410
    text = await response.text()
    assert '<html lang="fr">' in text and "ce lien d&#39;entrevue a expiré" in text


async def test_the_applicants_call_socket_answers_in_the_application_language(
    world: World,
) -> None:
    token = await invited(world, "fr")
    client = await world.client()
    assert (await world.confirm_dob(client, token, "1980-05-17")).status == 303
    socket = Seated(client, await client.ws_connect("/ws", headers=ENGLISH_BROWSER))
    refused = await socket.ask(m.Leave())
    assert isinstance(refused, m.Error)
    assert refused.message == "joignez-vous d'abord à une entrevue"
    await socket.ws.close()


async def test_a_refused_form_on_the_link_is_in_the_application_language(world: World) -> None:
    token = await invited(world, "fr")
    client = await world.client()
    csrf = await world.csrf(client)
    world.clock.advance(9 * 3600)  # past the window: the link has expired
    response = await client.post(
        f"/i/{token}",
        data={"csrf_token": csrf, "date_of_birth": "1980-05-17"},
        headers=ENGLISH_BROWSER,
    )
    assert response.status == 410
    text = await response.text()
    assert '<html lang="fr">' in text and "ce lien d&#39;entrevue a expiré" in text
