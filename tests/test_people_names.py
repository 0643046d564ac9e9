"""People see people: page headers, the access log and the audit console's "who looked"
name each person by display name with agency or organisation, never by a principal label
or an account id (the stored logs keep the labels, for machines)."""

from __future__ import annotations

import re

from common.names import Agency
from server.people import People, Person

from .audit_scene import AuditScene, sign_in
from .fakes import World, add_applications, application

LABEL = re.compile(r"\b(officer|auditor|applicant):[0-9a-z_]+")


async def test_the_officers_page_header_shows_their_name_and_agency(world: World) -> None:
    officer = await world.add_officer("jane.doe", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    page = await (await client.get("/officer")).text()
    assert '<span class="who">Jane.Doe (CBSA)</span>' in page
    assert not LABEL.search(page), LABEL.search(page)


async def test_the_access_log_names_people_and_keeps_their_labels_stored(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    await world.confirm_dob(await world.client(), token, "1980-05-17")
    officer = await world.add_officer("jane.doe", Agency.CBP)
    await world.sign_in(await world.client(), officer)
    client = await world.client()
    await world.sign_in(client, await world.add_auditor("ann.audit"))
    response = await client.get("/api/audit/access-log")
    body = await response.text()
    assert response.status == 200
    assert not LABEL.search(body), LABEL.search(body)
    shown = {entry["who"]["shown"] for entry in (await response.json())["entries"]}
    assert {"Jane.Doe (CBP)", "Auditor (Audit)", "Émilie Tremblay"} <= shown
    stored = {entry.actor for entry in await world.store.access_log.entries()}
    assert any(actor.startswith("officer:") for actor in stored)


async def test_labels_resolve_to_people_and_what_is_unknown_stays_unnamed(
    world: World,
) -> None:
    account = await world.add_officer("jane.doe", Agency.CBSA)
    stored = await world.store.accounts.by_username(account.username)
    assert stored is not None
    people = People(world.store)
    assert await people.named(stored.label) == Person("Jane.Doe", "officer", "CBSA")
    assert str(await people.named("unknown:mallory")) == "mallory"
    for label in ("officer:999:CBSA", "auditor:x", "applicant:iv_0000000000000000", "nonsense"):
        assert (await people.named(label)).role == "unknown", label


async def test_the_audit_console_names_who_looked_and_who_is_signed_in(
    scene: AuditScene,
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    page = await (await client.get(f"/sessions/{scene.interview_id}")).text()
    assert '<span class="who">Auditor (Audit)</span>' in page
    data = await (await client.get(f"/api/sessions/{scene.interview_id}")).json()
    assert data["accesses"] and {a["auditor"] for a in data["accesses"]} == {"Auditor (Audit)"}
    assert not LABEL.search(str(data["accesses"]))
