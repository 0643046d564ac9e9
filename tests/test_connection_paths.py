"""Each page's connection path (direct, or relayed through TURN) reaches the others in its
call: at once to those seated, and on joining to those who come later."""

from __future__ import annotations

from common.names import Seat
from signalling import messages as m

from .test_signalling import Setup, setup  # noqa: F401  (the fixture)


async def test_a_seat_s_path_reaches_the_others_now_and_newcomers_on_joining(
    setup: Setup,  # noqa: F811
) -> None:
    applicant, cbsa, cbp = (setup.people[seat] for seat in Seat)
    for person in (applicant, cbp):
        assert isinstance(await person.ask(m.Join(interview_id=setup.interview_id)), m.Joined)

    await applicant.ws.send_str(m.encode(m.ConnectionPath(path="relayed", protocol="tls")))

    relayed = m.PeerPath(seat="applicant", path="relayed", protocol="tls")
    assert await cbp.expect(m.PeerPath) == relayed
    assert isinstance(await cbsa.ask(m.Join(interview_id=setup.interview_id)), m.Joined)
    assert await cbsa.expect(m.PeerPath) == relayed
    await cbsa.ws.send_str(m.encode(m.ConnectionPath(path="direct")))
    assert await applicant.expect(m.PeerPath) == m.PeerPath(seat="cbsa", path="direct")


async def test_a_path_from_outside_a_call_is_refused(setup: Setup) -> None:  # noqa: F811
    answer = await setup.unassigned.ask(m.ConnectionPath(path="direct"))

    assert isinstance(answer, m.Error) and answer.code == "not_in_room"
