"""ID stills in a two-step interview: a still captured in the CBSA step is still shown to
the CBP officer in the CBP step (the README: stills are shown to both officers), and is
forgotten and deleted once the interview is over (both agencies decided), whatever the
order of the last decision and the end of the last call."""

from __future__ import annotations

from pathlib import Path

from server.appkeys import STILLS
from server.types import Agency, InterviewMode
from signalling import messages as m

from .calls import Seated, open_socket
from .fakes import Client, World, add_applications, application, jpeg_image

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


async def cbsa_step_with_a_still(world: World) -> tuple[str, Client, Client, bytes]:
    """A two-step interview whose CBSA officer captured a still, decided and ended the
    CBSA step; its CBP officer has taken the CBP step."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, _ = await world.invite("NX-0001", InterviewMode.TWO_STEP)
    cbsa = await officer(world, "cbsa.one", Agency.CBSA)
    cbp = await officer(world, "cbp.one", Agency.CBP)
    await take(cbsa, interview_id)
    image = jpeg_image(320, 240)
    captured = await cbsa.post(f"/api/interviews/{interview_id}/stills", data=image, headers=JPEG)
    assert captured.status == 201
    await decide(cbsa, interview_id, "CA-OTH")
    await end_call(await join_call(world, cbsa, interview_id), then="cbp")
    await take(cbp, interview_id)
    return interview_id, cbsa, cbp, image


async def test_the_cbp_officer_sees_the_cbsa_steps_still_in_the_cbp_step(world: World) -> None:
    interview_id, _, cbp, image = await cbsa_step_with_a_still(world)
    listing = await (await cbp.get(f"/api/interviews/{interview_id}")).json()
    assert listing["stills"] == [{"number": 1, "agency": "CBSA"}]
    shown = await cbp.get(f"/api/interviews/{interview_id}/stills/1")
    assert shown.status == 200 and await shown.read() == image
    assert len(kept_files(world, interview_id)) == 1


async def test_the_stills_are_deleted_once_both_agencies_decided_then_the_call_ends(
    world: World,
) -> None:
    interview_id, cbsa, cbp, _ = await cbsa_step_with_a_still(world)
    in_call = await join_call(world, cbp, interview_id)
    assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 200
    await decide(cbp, interview_id, "US-OTH")
    assert kept_files(world, interview_id) == []
    assert world.server.app[STILLS].listing(interview_id) == []
    for client in (cbp, cbsa):
        gone = await client.get(f"/api/interviews/{interview_id}/stills/1")
        assert gone.status == 404
    listing = await (await cbp.get(f"/api/interviews/{interview_id}")).json()
    assert listing["stills"] == []
    await end_call(in_call, then="done")
    assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 404


async def test_the_stills_outlive_the_last_call_until_the_last_decision(world: World) -> None:
    interview_id, _, cbp, image = await cbsa_step_with_a_still(world)
    await end_call(await join_call(world, cbp, interview_id), then="done")
    shown = await cbp.get(f"/api/interviews/{interview_id}/stills/1")
    assert shown.status == 200 and await shown.read() == image
    await decide(cbp, interview_id, "US-OTH")
    assert kept_files(world, interview_id) == []
    assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 404


async def test_no_still_is_kept_for_an_interview_that_is_over(world: World) -> None:
    interview_id, _, cbp, _ = await cbsa_step_with_a_still(world)
    await decide(cbp, interview_id, "US-OTH")
    late = await cbp.post(
        f"/api/interviews/{interview_id}/stills", data=jpeg_image(64, 48), headers=JPEG
    )
    assert late.status == 409
    assert kept_files(world, interview_id) == []
    assert world.server.app[STILLS].listing(interview_id) == []
