"""The interview lifecycle as pure transitions: arbitrary interleavings of every action by
every party, with the rules checked after each step (hypothesis stateful testing), and the
behaviours people rely on, one by one."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from common.names import Agency
from server.interview_actions import (
    Action,
    Cancel,
    CheckIn,
    Consent,
    Decide,
    Drop,
    End,
    Interrupt,
    Join,
    Leave,
    NoShow,
    Outage,
    Ready,
    Reassign,
    Seat,
    Still,
)
from server.interview_state import JOINT_STEP, Life, Party, Phase, Presence, decode, encode
from server.lifecycle import Outcome, RefusalKind, Refused, apply, replay
from server.types import InterviewMode

OFFICERS = st.sampled_from([1, 2, 3])
REPEATABLE = (Still, Outage)  # each is a new still, a new outage
AGENCIES = st.sampled_from(list(Agency))
PARTIES = st.sampled_from(list(Party))


class Interview(RuleBasedStateMachine):
    """Any party doing anything at any moment; the rules hold after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.life = Life(InterviewMode.JOINT)
        self.accepted: list[Action] = []
        self.ended_as: Phase | None = None
        self.seated_first: dict[Agency, int] = {}

    @initialize(mode=st.sampled_from(list(InterviewMode)))
    def invite(self, mode: InterviewMode) -> None:
        self.life = Life(mode)

    def act(self, action: Action) -> None:
        before = self.life
        try:
            outcome = apply(before, action)
        except Refused as refused:
            reason = refused.message
            outcome = Outcome(before)
        else:
            reason = ""
        if reason:  # refused with a message a person can act on, and nothing changed
            assert outcome.life == before
            return
        if outcome.events:
            self.accepted.append(action)
        else:
            assert outcome.life == before, f"{action} changed the interview silently"
        self.life = outcome.life
        if not isinstance(action, REPEATABLE):
            try:
                again = apply(self.life, action)
            except Refused:
                pass
            else:  # a double click changes nothing
                assert again.events == () and again.life == self.life, action

    @rule()
    def check_in(self) -> None:
        self.act(CheckIn())

    @rule()
    def consent(self) -> None:
        self.act(Consent())

    @rule()
    def ready(self) -> None:
        self.act(Ready())

    @rule(agency=AGENCIES, officer=OFFICERS)
    def seat(self, agency: Agency, officer: int) -> None:
        self.act(Seat(agency, officer))

    @rule(party=PARTIES)
    def join(self, party: Party) -> None:
        self.act(Join(party))

    @rule(party=PARTIES)
    def drop(self, party: Party) -> None:
        self.act(Drop(party))

    @rule(party=PARTIES)
    def leave(self, party: Party) -> None:
        self.act(Leave(party))

    @rule(agency=AGENCIES)
    def end(self, agency: Agency) -> None:
        self.act(End(agency))

    @rule(agency=AGENCIES, officer=OFFICERS, as_seated=st.booleans())
    def decide(self, agency: Agency, officer: int, as_seated: bool) -> None:
        """Mostly the seated officer (so that interviews get to close), sometimes anyone."""
        self.act(Decide(agency, self.life.officers.get(agency, officer) if as_seated else officer))

    @rule(agency=AGENCIES)
    def still(self, agency: Agency) -> None:
        self.act(Still(agency))

    @rule(
        which=st.sampled_from([NoShow(), Cancel(), Outage(), Interrupt()]), dice=st.integers(0, 15)
    )
    def something_else(self, which: Action, dice: int) -> None:
        if dice == 0:  # rarely: each of these ends or breaks off the interview
            self.act(which)

    @invariant()
    def an_ended_interview_stays_as_it_ended(self) -> None:
        if self.ended_as is not None:
            assert self.life.phase is self.ended_as
        elif self.life.ended:
            self.ended_as = self.life.phase

    @invariant()
    def closed_exactly_when_both_agencies_decided_and_the_call_is_over(self) -> None:
        """Officers may both decide during the call: it goes on until one ends it."""
        both = self.life.decided == frozenset(Agency)
        if self.life.phase is Phase.CLOSED:
            assert both
        elif both:
            assert self.life.phase is Phase.IN_CALL

    @invariant()
    def one_call_at_a_time_with_every_officer_of_its_step(self) -> None:
        if self.life.phase is Phase.IN_CALL:
            assert self.life.step is not None
            assert all(a in self.life.officers for a in self.life.step_agencies())
        for party, presence in self.life.presence.items():
            if presence is Presence.CONNECTED:
                assert self.life.may_join(party), (party, self.life)

    @invariant()
    def the_cbp_step_only_after_cbsa_decided(self) -> None:
        if self.life.mode is InterviewMode.TWO_STEP and self.life.step == Agency.CBP.value:
            assert Agency.CBSA in self.life.decided
        if self.life.mode is InterviewMode.JOINT and self.life.step is not None:
            assert self.life.step == JOINT_STEP

    @invariant()
    def nobody_is_decided_on_without_having_joined_a_call_with_that_agency(self) -> None:
        for agency in self.life.decided:
            assert any(agency in self.life.step_agencies(s) for s in self.life.applicant_joined)

    @rule(agency=AGENCIES, officer=OFFICERS)
    def reassign(self, agency: Agency, officer: int) -> None:
        before = self.life
        self.act(Reassign(agency, officer))
        if self.life.officers != before.officers:
            # Only a decision still awaited after the call is handed over.
            assert before.phase is Phase.AWAITING_DECISIONS
            assert before.awaits_decision_from(agency)
            self.seated_first[agency] = officer

    @invariant()
    def an_officer_once_seated_keeps_the_seat_unless_their_decision_is_handed_over(self) -> None:
        for agency, officer in self.life.officers.items():
            assert self.seated_first.setdefault(agency, officer) == officer

    @invariant()
    def the_journal_replays_to_the_same_interview(self) -> None:
        assert replay(self.life.mode, self.accepted) == self.life

    @invariant()
    def what_the_store_keeps_reads_back_the_same(self) -> None:
        assert decode(encode(self.life)) == self.life


Interview.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
test_arbitrary_interleavings_keep_the_rules = Interview.TestCase


def _through(mode: InterviewMode, *actions: Action) -> Life:
    life = Life(mode)
    for action in actions:
        life = apply(life, action).life
    return life


CHECKED_IN = (CheckIn(), Consent(), Ready())


def test_a_take_while_the_applicant_waits_starts_the_call_for_everyone_at_once() -> None:
    waiting = _through(InterviewMode.JOINT, *CHECKED_IN, Seat(Agency.CBSA, 1))
    assert waiting.phase is Phase.WAITING
    outcome = apply(waiting, Seat(Agency.CBP, 2))
    assert outcome.life.phase is Phase.IN_CALL
    assert outcome.events == ("seat", "call-start")


def test_ending_the_call_leaves_each_agency_its_decision_to_make() -> None:
    in_call = _through(
        InterviewMode.JOINT,
        *CHECKED_IN,
        Seat(Agency.CBSA, 1),
        Seat(Agency.CBP, 2),
        Join(Party.APPLICANT),
        Join(Party.CBSA),
        Join(Party.CBP),
        Decide(Agency.CBSA, 1),
    )
    ended = apply(in_call, End(Agency.CBSA)).life
    assert ended.phase is Phase.AWAITING_DECISIONS
    assert ended.awaits_decision_from(Agency.CBP)
    assert not ended.awaits_decision_from(Agency.CBSA)
    with pytest.raises(Refused):
        apply(ended, Join(Party.APPLICANT))  # the call does not come back
    assert apply(ended, End(Agency.CBP)).events == ()  # a second "End" changes nothing
    closed = apply(ended, Decide(Agency.CBP, 2))
    assert closed.life.phase is Phase.CLOSED and closed.events == ("decision", "close")


def test_nothing_reopens_a_closed_interview() -> None:
    closed = _through(
        InterviewMode.JOINT,
        *CHECKED_IN,
        Seat(Agency.CBSA, 1),
        Seat(Agency.CBP, 2),
        Join(Party.APPLICANT),
        End(Agency.CBP),
        Decide(Agency.CBSA, 1),
        Decide(Agency.CBP, 2),
    )
    assert closed.phase is Phase.CLOSED
    for action in (Join(Party.APPLICANT), Still(Agency.CBSA), Consent(), Ready(), NoShow()):
        with pytest.raises(Refused) as refused:
            apply(closed, action)
        assert refused.value.kind is RefusalKind.OVER
        assert refused.value.message == "this interview is complete"
    assert apply(closed, Leave(Party.APPLICANT)).events == ()


def test_officers_cannot_decide_on_an_applicant_who_never_joined() -> None:
    seated = _through(InterviewMode.JOINT, *CHECKED_IN, Seat(Agency.CBSA, 1), Seat(Agency.CBP, 2))
    with pytest.raises(Refused) as refused:
        apply(seated, Decide(Agency.CBSA, 1))
    assert refused.value.kind is RefusalKind.NOT_YET


def test_two_step_goes_back_to_the_waiting_room_for_cbp_once_cbsa_decided() -> None:
    cbsa_call = _through(
        InterviewMode.TWO_STEP, *CHECKED_IN, Seat(Agency.CBSA, 1), Join(Party.APPLICANT)
    )
    with pytest.raises(Refused):
        apply(cbsa_call, Seat(Agency.CBP, 2))  # the CBP step is not open yet
    ended = apply(cbsa_call, End(Agency.CBSA)).life
    assert ended.phase is Phase.AWAITING_DECISIONS
    outcome = apply(ended, Decide(Agency.CBSA, 1))
    assert outcome.life.phase is Phase.WAITING and outcome.life.step == "CBP"
    assert outcome.events == ("decision", "next-step")
    cbp_call = apply(outcome.life, Seat(Agency.CBP, 2)).life
    assert cbp_call.phase is Phase.IN_CALL


def test_drops_and_rejoins_are_recorded_as_such() -> None:
    in_call = _through(InterviewMode.JOINT, *CHECKED_IN, Seat(Agency.CBSA, 1), Seat(Agency.CBP, 2))
    joined = apply(in_call, Join(Party.APPLICANT))
    assert joined.events == ("join",)
    dropped = apply(joined.life, Drop(Party.APPLICANT))
    assert dropped.events == ("drop",)
    assert apply(dropped.life, Join(Party.APPLICANT)).events == ("rejoin",)
    after_outage = apply(joined.life, Outage()).life
    assert after_outage.presence[Party.APPLICANT] is Presence.DROPPED
    assert after_outage.phase is Phase.IN_CALL


def test_an_applicant_who_never_joined_can_be_a_no_show_but_not_one_who_did() -> None:
    waiting = _through(InterviewMode.JOINT, *CHECKED_IN)
    assert apply(waiting, NoShow()).life.phase is Phase.NO_SHOW
    joined = _through(
        InterviewMode.JOINT,
        *CHECKED_IN,
        Seat(Agency.CBSA, 1),
        Seat(Agency.CBP, 2),
        Join(Party.APPLICANT),
    )
    with pytest.raises(Refused):
        apply(joined, NoShow())
