"""ID stills in a two-step interview: a still captured in the CBSA step is still shown to
the CBP officer in the CBP step (the README: stills are shown to both officers), and is
forgotten and deleted once the interview is over (both agencies decided and the last call
ended), whatever the order of the last decision and the end of the last call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from common.names import Agency, Seat
from server.appkeys import LIVES, STILLS
from server.types import InterviewMode
from signalling import messages as m

from .calls import Seated, join_and_call, open_socket, waiting_applicant
from .fakes import Client, World, add_applications, application, error_message, jpeg_image
from .media import SyntheticParticipant

JPEG = {"Content-Type": "image/jpeg"}


async def officer(world: World, name: str, agency: Agency) -> Client:
    client = await world.client()
    await world.sign_in(client, await world.add_officer(name, agency))
    client.session.headers["X-CSRF-Token"] = await world.csrf(client)
    return client


async def take(client: Client, interview_id: str) -> None:
    taken = await client.post(f"/api/interviews/{interview_id}/take")
    assert taken.status == 200, await taken.text()


async def decide(client: Client, interview_id: str, code: str) -> None:
    decided = await client.post(
        f"/api/interviews/{interview_id}/decision",
        json={"verdict": "refer", "reason_codes": [code], "notes": ""},
    )
    assert decided.status == 201, await decided.text()


async def join_call(world: World, client: Client, interview_id: str) -> Seated:
    """The officer's page in the step's call (its socket joined; no media needed here)."""
    seated = await open_socket(world, client)
    joined = await seated.ask(m.Join(interview_id=interview_id))
    assert isinstance(joined, m.Joined), joined
    return seated


async def end_call(seated: Seated, then: str) -> None:
    """The officer ends their step's call through signalling, as the page's button does."""
    await seated.ws.send_str(m.encode(m.End()))
    ended = await seated.expect(m.Ended)
    assert isinstance(ended, m.Ended) and ended.next == then, ended
    await seated.ws.close()


def kept_files(world: World, interview_id: str) -> list[Path]:
    return list(world.settings.data_dir.glob(f"live-stills/{interview_id}.*/*"))


async def applicant_joins(
    world: World, applicant: Seated, interview_id: str, person: SyntheticParticipant
) -> None:
    """The applicant, told that their call is on, joins it with media (their join stored)."""
    await applicant.expect(m.Paired)
    await join_and_call(applicant, interview_id, person)
    await world.server.app[LIVES].drain()


@asynccontextmanager
async def cbsa_step_with_a_still(
    world: World,
) -> AsyncIterator[tuple[str, Client, Client, bytes]]:
    """A two-step interview whose CBSA officer captured a still of the applicant in the
    CBSA step's call, decided and ended it; its CBP officer has taken the CBP step, whose
    call the applicant joined."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001", InterviewMode.TWO_STEP)
    applicant = await waiting_applicant(world, token)
    cbsa = await officer(world, "cbsa.one", Agency.CBSA)
    cbp = await officer(world, "cbp.one", Agency.CBP)
    person = SyntheticParticipant(Seat.APPLICANT)
    try:
        await take(cbsa, interview_id)
        await applicant_joins(world, applicant, interview_id, person)
        image = jpeg_image(320, 240)
        path = f"/api/interviews/{interview_id}/stills"
        captured = await cbsa.post(path, data=image, headers=JPEG)
        assert captured.status == 201
        await decide(cbsa, interview_id, "CA-OTH")
        await end_call(await join_call(world, cbsa, interview_id), then="cbp")
        await applicant.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
        await take(cbp, interview_id)
        await applicant_joins(world, applicant, interview_id, person)
        yield interview_id, cbsa, cbp, image
    finally:
        await person.close()


async def test_the_cbp_officer_sees_the_cbsa_steps_still_in_the_cbp_step(world: World) -> None:
    async with cbsa_step_with_a_still(world) as (interview_id, _, cbp, image):
        listing = await (await cbp.get(f"/api/interviews/{interview_id}")).json()
        assert listing["stills"] == [{"number": 1, "agency": "CBSA"}]
        shown = await cbp.get(f"/api/interviews/{interview_id}/stills/1")
        assert shown.status == 200 and await shown.read() == image
        assert len(kept_files(world, interview_id)) == 1


async def test_the_stills_are_deleted_once_both_agencies_decided_then_the_call_ends(
    world: World,
) -> None:
    async with cbsa_step_with_a_still(world) as (interview_id, cbsa, cbp, _):
        in_call = await join_call(world, cbp, interview_id)
        assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 200
        await decide(cbp, interview_id, "US-OTH")
        # Both decided, but the call goes on until an officer ends it: not over yet.
        assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 200
        await end_call(in_call, then="done")
        assert kept_files(world, interview_id) == []
        assert world.server.app[STILLS].listing(interview_id) == []
        for client in (cbp, cbsa):
            gone = await client.get(f"/api/interviews/{interview_id}/stills/1")
            assert gone.status == 404
        listing = await (await cbp.get(f"/api/interviews/{interview_id}")).json()
        assert listing["stills"] == []


async def test_the_stills_outlive_the_last_call_until_the_last_decision(world: World) -> None:
    async with cbsa_step_with_a_still(world) as (interview_id, _, cbp, image):
        await end_call(await join_call(world, cbp, interview_id), then="done")
        shown = await cbp.get(f"/api/interviews/{interview_id}/stills/1")
        assert shown.status == 200 and await shown.read() == image
        await decide(cbp, interview_id, "US-OTH")
        assert kept_files(world, interview_id) == []
        assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 404


async def test_no_still_is_kept_for_an_interview_that_is_over(world: World) -> None:
    async with cbsa_step_with_a_still(world) as (interview_id, _, cbp, _):
        await decide(cbp, interview_id, "US-OTH")
        await end_call(await join_call(world, cbp, interview_id), then="done")
        late = await cbp.post(
            f"/api/interviews/{interview_id}/stills", data=jpeg_image(64, 48), headers=JPEG
        )
        assert late.status == 409
        message = f"interview {interview_id} is over; its ID stills are no longer kept"
        assert error_message(await late.json()) == message
        assert kept_files(world, interview_id) == []
        assert world.server.app[STILLS].listing(interview_id) == []
