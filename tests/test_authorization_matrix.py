"""Every route x every role, generated from the route table: a new route without an entry
here fails `test_every_route_is_in_the_matrix`, so none can escape the matrix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from common.names import Agency, Seat
from server.appkeys import LIVES
from server.views.applicant import CONSENT_VERSION
from server.views.routes import ROUTES, Route
from signalling import messages as m

from .calls import join_and_call, open_socket
from .fakes import Session, World, add_applications, application, jpeg_image
from .media import SyntheticParticipant

ROLES = (
    "anonymous",
    "applicant",
    "other_applicant",
    "cbsa_assigned",
    "cbp_assigned",
    "unassigned_officer",
    "auditor",
    "operator",
)


def by_role(
    anonymous: int,
    applicant: int,
    officers: tuple[int, int, int],
    auditor: int,
    other_applicant: int | None = None,
    operator: int | None = None,
) -> dict[str, int]:
    """``operator``: unless given, what every other role gets when they all get the same
    (a page open to all, a form that runs for all), else 403 (the operator reads no
    interview and acts for no one in it)."""
    cbsa, cbp, unassigned = officers
    same = {anonymous, applicant, cbsa, cbp, unassigned, auditor} | (
        set() if other_applicant is None else {other_applicant}
    )
    if operator is None:
        operator = same.pop() if len(same) == 1 else 403
    return {
        "operator": operator,
        "anonymous": anonymous,
        "applicant": applicant,
        "other_applicant": applicant if other_applicant is None else other_applicant,
        "cbsa_assigned": cbsa,
        "cbp_assigned": cbp,
        "unassigned_officer": unassigned,
        "auditor": auditor,
    }


EVERYONE_200 = by_role(200, 200, (200, 200, 200), 200)
OFFICERS_ONLY = by_role(401, 403, (200, 200, 200), 403)
AUDITOR_ONLY = by_role(401, 403, (403, 403, 403), 200)

# Expected status per route and role; interview routes address the interview of
# "applicant", to which "cbsa_assigned" and "cbp_assigned" are assigned.
EXPECTED: dict[str, dict[str, int]] = {
    "GET /": EVERYONE_200,
    "GET /healthz": EVERYONE_200,
    "GET /login": EVERYONE_200,
    "POST /login": by_role(401, 401, (401, 401, 401), 401),  # unknown user: the form ran
    "POST /logout": by_role(303, 303, (303, 303, 303), 303),
    "POST /language": by_role(303, 303, (303, 303, 303), 303),
    "POST /api/language": EVERYONE_200,
    "GET /api/session": EVERYONE_200,
    "GET /i/{token}": EVERYONE_200,
    "POST /i/{token}": by_role(303, 303, (303, 303, 303), 303),
    # The link is the key; the interview here was invited, not booked into a slot: the
    # page says it cannot be changed, and a post without its form is refused.
    "GET /i/{token}/appointment": EVERYONE_200,
    "POST /i/{token}/appointment": by_role(400, 400, (400, 400, 400), 400),
    "POST /i/{token}/cancel": by_role(400, 400, (400, 400, 400), 400),
    "GET /api/invitations/{token}/relays": EVERYONE_200,
    "GET /interview": by_role(401, 200, (403, 403, 403), 403),
    "GET /api/applicant/interview": by_role(401, 200, (403, 403, 403), 403),
    "POST /api/applicant/consent": by_role(401, 201, (403, 403, 403), 403),
    "GET /officer": by_role(303, 403, (200, 200, 200), 403),
    "GET /api/officer/queue": OFFICERS_ONLY,
    "POST /api/officer/availability": OFFICERS_ONLY,
    "GET /api/interviews/{interview_id}": by_role(401, 403, (200, 200, 403), 200),
    "POST /api/interviews/{interview_id}/take": by_role(401, 403, (200, 200, 403), 403),
    "POST /api/interviews/{interview_id}/take-decision": by_role(401, 403, (200, 200, 403), 403),
    "POST /api/interviews/{interview_id}/decision": by_role(401, 403, (201, 201, 403), 403),
    "POST /api/interviews/{interview_id}/stills": by_role(401, 403, (201, 201, 403), 403),
    "PUT /api/interviews/{interview_id}/draft": by_role(401, 403, (200, 200, 403), 403),
    "GET /api/interviews/{interview_id}/stills/{number}": by_role(401, 403, (200, 200, 403), 403),
    "GET /ws": by_role(401, 400, (400, 400, 400), 403),  # 400: a plain GET is no upgrade
    "GET /audit": by_role(303, 403, (403, 403, 403), 200),
    "GET /api/audit/interviews": AUDITOR_ONLY,
    "GET /api/audit/access-log": AUDITOR_ONLY,
    "GET /operator": by_role(303, 403, (403, 403, 403), 403, operator=200),
    "POST /operator/schedule": by_role(401, 403, (403, 403, 403), 403, operator=303),
    "GET /operator/schedule/status": by_role(303, 403, (403, 403, 403), 403, operator=200),
    "GET /operator/figures/{figure}.csv": by_role(303, 403, (403, 403, 403), 403, operator=200),
}


@dataclass
class Matrix:
    world: World
    sessions: dict[str, Session]
    interview_id: str
    other_interview_id: str
    token: str


@pytest.fixture
async def matrix(world: World) -> AsyncIterator[Matrix]:
    store = world.store
    await add_applications(
        store, application("NX-0001"), application("NX-0002", date_of_birth="1975-01-02")
    )
    interview_id, token = await world.invite("NX-0001")
    other_id, other_token = await world.invite("NX-0002")
    accounts = {
        "cbsa_assigned": await world.add_officer("cbsa.assigned", Agency.CBSA),
        "cbp_assigned": await world.add_officer("cbp.assigned", Agency.CBP),
        "unassigned_officer": await world.add_officer("cbsa.other", Agency.CBSA),
        "auditor": await world.add_auditor("auditor.one"),
        "operator": await world.add_operator("operator.one"),
    }
    sessions: dict[str, Session] = {}
    for role, account in accounts.items():
        client = await world.client()
        assert (await world.sign_in(client, account)).status == 303
        sessions[role] = await world.session_of(client)
    for role, (link, dob) in {
        "applicant": (token, "1980-05-17"),
        "other_applicant": (other_token, "1975-01-02"),
    }.items():
        client = await world.client()
        assert (await world.confirm_dob(client, link, dob)).status == 303
        sessions[role] = await world.session_of(client)
    sessions["anonymous"] = await world.session_of_anonymous()
    # The applicant waits, both officers take the interview, the applicant joins the call
    # with media: the state in which every interview route can do what it is for.
    applicant = await world.client(sessions["applicant"])
    consent = await applicant.post(
        "/api/applicant/consent", json={"text_version": CONSENT_VERSION, "language": "en"}
    )
    assert consent.status == 201, await consent.text()
    socket = await open_socket(world, applicant)
    await socket.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
    for role in ("cbsa_assigned", "cbp_assigned"):
        taker = await world.client(sessions[role])
        response = await taker.post(f"/api/interviews/{interview_id}/take")
        assert response.status == 200, await response.text()
    await socket.expect(m.Paired)
    person = SyntheticParticipant(Seat.APPLICANT)
    await join_and_call(socket, interview_id, person)
    await world.server.app[LIVES].drain()
    capture = await world.client(sessions["cbsa_assigned"])
    response = await capture.post(
        f"/api/interviews/{interview_id}/stills",
        data=jpeg_image(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status == 201, await response.text()
    yield Matrix(world, sessions, interview_id, other_id, token)
    await person.close()


def test_every_route_is_in_the_matrix() -> None:
    names = [route.name for route in ROUTES]
    assert len(names) == len(set(names)), "two routes share a method and path"
    assert set(names) == set(EXPECTED), (
        f"routes missing from the matrix: {set(names) - set(EXPECTED)}; "
        f"stale matrix rows: {set(EXPECTED) - set(names)}"
    )


FORMS = {
    "POST /login": {"username": "nobody", "password": "x" * 12, "code": "000000"},
    "POST /i/{token}": {"date_of_birth": "1980-05-17"},
    "POST /language": {"language": "fr", "next": "/"},
    "POST /operator/schedule": {"days": "1", "mode": "joint", "dry_run": "1"},
}
IMAGES = frozenset({"POST /api/interviews/{interview_id}/stills"})


def _body(route: Route, role: str) -> bytes | None:
    """A still of the role's own (a still already kept would be answered 200, not 201)."""
    return jpeg_image(72 + 8 * ROLES.index(role)) if route.name in IMAGES else None


def _json_body(route: Route, role: str) -> object:
    """A valid JSON body for the route, as the role would send it (None: no body)."""
    if route.name == "POST /api/applicant/consent":
        return {"text_version": "2026-11-01"}
    if route.name == "POST /api/language":
        return {"language": "fr"}
    if route.name == "POST /api/officer/availability":
        return {"available": True}
    if route.name.endswith(("/decision", "/draft")):
        code = "US-OTH" if role == "cbp_assigned" else "CA-OTH"
        return {"verdict": "refer", "reason_codes": [code], "notes": "matrix"}
    return None


def _form(route: Route, role: str) -> dict[str, str] | None:
    """The route's form; sign-ins try a name of their own (a name tried too often locks)."""
    form = FORMS.get(route.name)
    if form is not None and "username" in form:
        return {**form, "username": f"nobody.{role}"}
    return form


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
async def test_route_answers_each_role_as_expected(matrix: Matrix, route: Route) -> None:
    path = route.path.format(
        interview_id=matrix.interview_id, token=matrix.token, number=1, figure="backlog"
    )
    seen: dict[str, int] = {}
    for role in ROLES:
        client = await matrix.world.client(matrix.sessions[role])
        response = await client.request(
            route.method,
            path,
            allow_redirects=False,
            data=_form(route, role) or _body(route, role),
            json=_json_body(route, role),
            headers={"Content-Type": "image/jpeg"} if route.name in IMAGES else None,
        )
        seen[role] = response.status
    assert seen == EXPECTED[route.name]


async def test_another_applicant_only_ever_sees_their_own_interview(matrix: Matrix) -> None:
    for role, expected in (
        ("applicant", matrix.interview_id),
        ("other_applicant", matrix.other_interview_id),
    ):
        client = await matrix.world.client(matrix.sessions[role])
        body = await (await client.get("/api/applicant/interview")).json()
        assert body["id"] == expected


async def test_unassigned_officer_may_open_an_interview_waiting_in_their_queue(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, _ = await world.invite("NX-0001")
    officer = await world.add_officer("cbp.free", Agency.CBP)
    client = await world.client()
    await world.sign_in(client, officer)
    response = await client.get(f"/api/interviews/{interview_id}")
    assert response.status == 200
    assert (await response.json())["application"]["id"] == "NX-0001"


async def test_a_route_added_without_a_policy_is_refused(world: World) -> None:
    async def sneaky(request: web.Request) -> web.Response:
        return web.Response(text="should never be served")

    world.server.app.router._frozen = False  # only to simulate a forgotten route
    world.server.app.router.add_get("/sneaky", sneaky)
    client = await world.client()
    response = await client.get("/sneaky")
    assert response.status == 403
    assert "should never" not in await response.text()


async def test_static_files_are_public(world: World) -> None:
    client = await world.client()
    response = await client.get("/static/app.css")
    assert response.status == 200
    assert response.content_type == "text/css"
