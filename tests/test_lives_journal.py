"""Arbitrary interleavings of every party's actions through `Lives` (a real SQLite file and
a real signed session record): after each step, SQLite's copy of the interview is what the
journal says, and every journaled action was a legal transition."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from common.names import Agency, RoomId
from common.secret import Secret
from server import interview_actions, lifecycle
from server.auth import token_hash
from server.interview_actions import (
    Action,
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
from server.interview_state import Life, Party
from server.lifecycle import Refused
from server.lives import Lives
from server.session_records import SessionRecords
from server.settings import load_settings
from server.store import Store
from server.store.interviews import state_of
from server.types import AccountId, InterviewId, InterviewMode

from .fakes import FakeClock, add_applications, application

AGENCIES = st.sampled_from(list(Agency))
PARTIES = st.sampled_from(list(Party))


async def _no_call(room_id: RoomId, detail: Mapping[str, Any]) -> None:
    """No media here: the journal and the store are what is under test."""


class InterviewThroughLives(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="lives-"))
        self.clock = FakeClock()
        config = load_settings({}, {"data_dir": str(self.directory / "data")})
        self.store = Store(config.database_path, self.clock)
        self.records = SessionRecords(config)
        self.lives = Lives(self.store, self.records, self.clock, _no_call)
        self.interview_id = InterviewId("")
        self.officers: dict[Agency, list[AccountId]] = {}

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    @initialize(mode=st.sampled_from(list(InterviewMode)))
    def invite(self, mode: InterviewMode) -> None:
        self.run(self._invite(mode))

    async def _invite(self, mode: InterviewMode) -> None:
        await self.store.open()
        await add_applications(self.store, application("NX-0001"))
        self.interview_id = await self.store.interviews.schedule(
            "NX-0001",
            mode,
            self.clock() - timedelta(minutes=1),
            self.clock() + timedelta(hours=8),
            token_hash("t"),
            "test",
        )
        for agency in Agency:
            self.officers[agency] = [
                await self.store.accounts.add_officer(
                    f"{agency}.{n}", f"{agency} {n}", agency, agency.home_country, "h", Secret("s")
                )
                for n in (1, 2)
            ]

    def act(self, action: Action) -> None:
        async def attempt() -> None:
            with contextlib.suppress(Refused):
                await self.lives.act(self.interview_id, action)

        self.run(attempt())

    def officer(self, agency: Agency, which: int) -> int:
        return self.officers[agency][which]

    @rule()
    def check_in(self) -> None:
        self.act(CheckIn())

    @rule()
    def consent(self) -> None:
        self.act(Consent())

    @rule()
    def ready(self) -> None:
        self.act(Ready())

    @rule(agency=AGENCIES, which=st.sampled_from([0, 1]))
    def seat(self, agency: Agency, which: int) -> None:
        self.act(Seat(agency, self.officer(agency, which)))

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

    @rule(agency=AGENCIES, which=st.sampled_from([0, 1]))
    def decide(self, agency: Agency, which: int) -> None:
        self.act(Decide(agency, self.officer(agency, which)))

    @rule(agency=AGENCIES, which=st.sampled_from([0, 1]))
    def reassign(self, agency: Agency, which: int) -> None:
        self.act(Reassign(agency, self.officer(agency, which)))

    @rule(agency=AGENCIES)
    def still(self, agency: Agency) -> None:
        self.act(Still(agency))

    @rule(which=st.sampled_from([NoShow(), Interrupt(), Outage()]), dice=st.integers(0, 9))
    def something_else(self, which: Action, dice: int) -> None:
        if dice == 0:  # rare: most interviews run their course
            self.act(which)

    def journal(self) -> list[dict[str, Any]]:
        return self.records.journal(RoomId(self.interview_id))

    @invariant()
    def every_journaled_action_was_a_legal_transition(self) -> None:
        if not self.interview_id:
            return
        replayed = Life(self.stored().mode)
        for event in self.journal():
            action = interview_actions.action_from(event.get("action", {}))
            if action is not None:
                outcome = lifecycle.apply(replayed, action)  # raises if it was not
                assert outcome.events and outcome.events[0] in (event["kind"], "leave")
                replayed = outcome.life

    @invariant()
    def the_sqlite_copy_equals_the_journal(self) -> None:
        if not self.interview_id:
            return
        stored = self.stored()
        actions = [
            a for e in self.journal() if (a := interview_actions.action_from(e.get("action", {})))
        ]
        assert lifecycle.replay(stored.mode, actions) == stored.life
        assert stored.state is state_of(stored.life)
        assert stored.cbsa_officer_id == stored.life.officers.get(Agency.CBSA)
        assert stored.cbp_officer_id == stored.life.officers.get(Agency.CBP)
        rows = self.run(self.store.events.for_interview(self.interview_id))
        assert [row.kind for row in rows] == [event["kind"] for event in self.journal()]

    @invariant()
    def closed_is_final_and_nothing_is_journaled_after_it(self) -> None:
        if not self.interview_id:
            return
        kinds = [event["kind"] for event in self.journal()]
        finals = {"close", "no-show", "cancelled", "interrupted"}
        ends = [n for n, kind in enumerate(kinds) if kind in finals]
        assert len(ends) <= 1 and (not ends or ends[0] == len(kinds) - 1)

    def stored(self) -> Any:
        return self.run(self.store.interviews.get(self.interview_id))

    def teardown(self) -> None:
        async def close() -> None:
            await self.lives.drain()
            await self.records.close_all()
            await self.store.close()

        self.run(close())
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)


InterviewThroughLives.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None
)
test_the_store_follows_the_journal_whatever_happens = InterviewThroughLives.TestCase
