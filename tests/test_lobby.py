"""The waiting room over real sockets: what applicants are told (from the officers on duty
for their need and recent interviews' lengths), pairing at the scheduled time, and one
place in the queue whatever the number of tabs."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from common.names import Agency, Seat
from server import operator
from server.types import InterviewMode
from server.views.applicant import CONSENT_VERSION
from signalling import messages as m
from signalling.lobby import TELL_WAITING_EVERY, Lobby
from signalling.waiting_room import Estimate, Need, Pairing, WaitingApplicant, WaitingRoom

from .calls import Seated, open_socket
from .fakes import Client, World, add_applications, application

DOB = "1980-05-17"


async def checked_in(
    world: World,
    app_id: str,
    mode: InterviewMode = InterviewMode.JOINT,
    starts: datetime | None = None,
) -> tuple[str, Client]:
    """An applicant of a new application who confirmed their date of birth and agreed to
    be recorded."""
    await add_applications(world.store, application(app_id))
    start = starts or world.clock() - timedelta(minutes=1)
    invitation = await operator.invite(world.store, world.settings, app_id, mode, start, 8)
    client = await world.client()
    token = invitation.link.reveal().rsplit("/", 1)[1]
    assert (await world.confirm_dob(client, token, DOB)).status == 303
    consent = await client.post(
        "/api/applicant/consent",
        json={"text_version": CONSENT_VERSION, "language": "en"},
        headers={"X-CSRF-Token": await world.csrf(client)},
    )
    assert consent.status == 201, await consent.text()
    return invitation.interview_id, client


async def officer(world: World, username: str, agency: Agency) -> tuple[Client, Seated]:
    client = await world.client()
    await world.sign_in(client, await world.add_officer(username, agency))
    return client, await open_socket(world, client)


async def available(socket: Seated) -> None:
    await socket.ws.send_str(m.encode(m.Available(available=True)))


async def waiting_seconds(client: Client, interview_id: str) -> int | None:
    queue = await (await client.get("/api/officer/queue")).json()
    waited = {i["id"]: i["waiting_seconds"] for i in queue["interviews"]}
    return waited[interview_id]  # type: ignore[no-any-return]


async def test_no_wait_figure_while_no_officer_the_applicant_needs_is_on_duty(
    world: World,
) -> None:
    interview_id, client = await checked_in(world, "NX-0001")
    applicant = await open_socket(world, client)
    told = await applicant.ask(m.Ready(interview_id=interview_id))
    assert told == m.Waiting(position=1, estimated_wait_seconds=None)
    _, cbsa = await officer(world, "cbsa.idle", Agency.CBSA)
    await available(cbsa)  # a CBSA officer sits idle, but a joint interview needs CBP too
    assert await applicant.expect(m.Waiting) == m.Waiting(position=1, estimated_wait_seconds=None)


async def test_the_wait_counts_the_officers_of_the_step_and_recent_interview_lengths(
    world: World,
) -> None:
    # Three earlier calls of 300, 400 and 500 s: the typical interview is 400 s.
    await add_applications(world.store, *(application(f"NX-010{n}") for n in range(3)))
    base = world.clock().timestamp() - 86400
    for n, length in enumerate((300, 400, 500)):
        past, _ = await world.invite(f"NX-010{n}")
        await world.store.events.append(past, base, "join", "applicant", {})
        await world.store.events.append(past, base + length, "end", None, {"by": "cbsa"})
    first, first_client = await checked_in(world, "NX-0001", InterviewMode.TWO_STEP)
    second, second_client = await checked_in(world, "NX-0002", InterviewMode.TWO_STEP)
    _, cbsa = await officer(world, "cbsa.busy", Agency.CBSA)
    await available(cbsa)
    assert isinstance(
        await (await open_socket(world, first_client)).ask(m.Ready(interview_id=first)), m.Paired
    )
    # No CBP officer is on duty, but this CBSA step needs none: the CBSA officer's
    # interview has a typical length ahead of it.
    told = await (await open_socket(world, second_client)).ask(m.Ready(interview_id=second))
    assert told == m.Waiting(position=1, estimated_wait_seconds=400)


async def test_free_officers_before_the_scheduled_time_say_shortly_then_pair_at_it(
    world: World,
) -> None:
    officers = [(await officer(world, f"{a}.free", a))[1] for a in Agency]
    starts = world.clock() + timedelta(seconds=2)
    interview_id, client = await checked_in(world, "NX-0001", starts=starts)
    for socket in officers:
        await available(socket)
    applicant = await open_socket(world, client)
    told = await applicant.ask(m.Ready(interview_id=interview_id))
    assert told == m.Waiting(position=1, estimated_wait_seconds=0)  # "shortly"
    world.clock.advance(2)  # the scheduled time comes: the lobby pairs by itself
    assert await applicant.expect(m.Paired) == m.Paired(
        interview_id=interview_id, seat=Seat.APPLICANT
    )
    for socket, agency in zip(officers, Agency, strict=True):
        assert await socket.expect(m.Paired) == m.Paired(
            interview_id=interview_id, seat=Seat.of(agency)
        )


async def test_two_tabs_hold_one_place_and_closing_one_keeps_it(world: World) -> None:
    interview_id, client = await checked_in(world, "NX-0001")
    tabs = [await open_socket(world, client) for _ in range(2)]
    for tab in tabs:
        assert isinstance(await tab.ask(m.Ready(interview_id=interview_id)), m.Waiting)
    other_id, other_client = await checked_in(world, "NX-0002", starts=world.clock())
    other = await open_socket(world, other_client)
    told = await other.ask(m.Ready(interview_id=other_id))
    assert isinstance(told, m.Waiting) and told.position == 2  # one place ahead, not two
    cbsa_client, cbsa = await officer(world, "cbsa.queue", Agency.CBSA)
    await available(cbsa)
    for tab in tabs:  # every open tab hears of the change
        assert isinstance(await tab.expect(m.Waiting), m.Waiting)

    await tabs[1].ws.close()
    await asyncio.sleep(0.2)
    assert await waiting_seconds(cbsa_client, interview_id) is not None  # still waiting
    _, cbp = await officer(world, "cbp.queue", Agency.CBP)
    await available(cbp)
    assert await tabs[0].expect(m.Paired) == m.Paired(
        interview_id=interview_id, seat=Seat.APPLICANT
    )


class CountedRoom(WaitingRoom):
    """The real waiting room, counting how often everyone's estimate is worked out."""

    def __init__(self) -> None:
        super().__init__()
        self.replays = 0

    def estimates(self, now: float | None = None) -> dict[str, Estimate]:
        self.replays += 1
        return super().estimates(now)


async def test_a_burst_of_arrivals_is_told_its_estimates_once_more_not_once_each() -> None:
    async def never_seated(pairing: Pairing) -> bool:
        return False

    room = CountedRoom()
    lobby = Lobby(never_seated, room)
    told: list[m.Message] = []
    start = datetime.now(UTC) - timedelta(minutes=1)
    for n in range(50):
        applicant = WaitingApplicant(f"iv_{n:04d}", Need.JOINT, start, date(2022, 1, 1))
        await lobby.applicant_ready(applicant, told.append)
    assert room.replays == 1  # the first arrival is told at once; the rest wait
    await asyncio.sleep(TELL_WAITING_EVERY + 0.2)
    assert room.replays == 2  # then everyone, once, with the burst counted in
    positions = sorted(w.position for w in told[1:] if isinstance(w, m.Waiting))
    assert positions == list(range(1, 51))
    await lobby.close()
