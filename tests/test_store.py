from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from common.errors import Conflict, NotFound
from common.names import Agency
from common.secret import Secret
from server import interview_actions, interview_state, lifecycle
from server.auth import token_hash
from server.store import Store
from server.store.database import migrations
from server.types import (
    AccountId,
    ApplicationStatus,
    InterviewId,
    InterviewMode,
    InterviewState,
    Verdict,
)

from .fakes import FakeClock, add_applications, application


async def _schedule(
    store: Store, clock: FakeClock, app_id: str, mode: InterviewMode, token: str = "t"
) -> InterviewId:
    return await store.interviews.schedule(
        app_id,
        mode,
        clock() - timedelta(minutes=1),
        clock() + timedelta(hours=2),
        token_hash(token + app_id),
        "test",
    )


async def _officer(store: Store, name: str, agency: Agency) -> AccountId:
    return await store.accounts.add_officer(
        name, name, agency, agency.home_country, "h", Secret("s")
    )


async def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await Store(path).open()
    assert await store.database.migrate() == []  # nothing left to apply
    await store.close()
    await store.close()  # closing twice is harmless
    with sqlite3.connect(path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    assert versions == [version for version, _, _ in migrations()]


async def test_a_failed_transaction_leaves_data_as_it_was(store: Store) -> None:
    await add_applications(store, application("NX-0001"))

    async def change_then_fail() -> None:
        async with store.database.transaction() as db:
            await db.execute("UPDATE applications SET surname = 'Changed'")
            await db.execute("INSERT INTO applications (id) VALUES ('NX-0001')")

    with pytest.raises(sqlite3.IntegrityError):
        await change_then_fail()
    assert (await store.applications.get("NX-0001")).surname == "Tremblay"


async def test_import_starts_applications_pending_with_history(store: Store) -> None:
    await add_applications(store, application("NX-0001"))
    assert (await store.applications.get("NX-0001")).status is ApplicationStatus.PENDING
    [change] = await store.applications.history("NX-0001")
    assert (change.from_status, change.to_status, change.reason) == (
        None,
        ApplicationStatus.PENDING,
        "imported",
    )


async def test_scheduling_an_interview_moves_the_application_and_keeps_history(
    store: Store, clock: FakeClock
) -> None:
    await add_applications(store, application("NX-0001"))
    await _schedule(store, clock, "NX-0001", InterviewMode.JOINT)
    assert (await store.applications.get("NX-0001")).status is ApplicationStatus.SCHEDULED
    history = await store.applications.history("NX-0001")
    assert [(h.from_status, h.to_status) for h in history] == [
        (None, ApplicationStatus.PENDING),
        (ApplicationStatus.PENDING, ApplicationStatus.SCHEDULED),
    ]


async def test_a_new_invitation_cancels_the_unused_one(store: Store, clock: FakeClock) -> None:
    await add_applications(store, application("NX-0001"))
    first = await _schedule(store, clock, "NX-0001", InterviewMode.JOINT, "a")
    second = await _schedule(store, clock, "NX-0001", InterviewMode.JOINT, "b")
    assert (await store.interviews.get(first)).state is InterviewState.CANCELLED
    assert (await store.interviews.get(second)).state is InterviewState.SCHEDULED
    # re-scheduling does not change the status, so it adds no history row
    assert len(await store.applications.history("NX-0001")) == 2


async def _decide(
    store: Store, interview_id: InterviewId, agency: Agency, verdict: Verdict, officer: AccountId
) -> ApplicationStatus:
    async with store.database.transaction() as db:
        return await store.decisions.record(
            db, interview_id, "NX-0001", agency, verdict, (), "", officer, "t"
        )


async def _live(
    store: Store, interview_id: InterviewId, *actions: interview_actions.Action
) -> None:
    """Store the life the actions lead to, as `Lives.act` would."""
    life = (await store.interviews.get(interview_id)).life
    for action in actions:
        life = lifecycle.apply(life, action).life
    async with store.database.transaction() as db:
        await store.interviews.save_life(db, interview_id, life)


async def test_both_decisions_settle_the_application(store: Store, clock: FakeClock) -> None:
    await add_applications(store, application("NX-0001"))
    interview_id = await _schedule(store, clock, "NX-0001", InterviewMode.JOINT)
    cbsa, cbp = (
        await _officer(store, "a.cbsa", Agency.CBSA),
        await _officer(store, "b.cbp", Agency.CBP),
    )
    assert await _decide(store, interview_id, Agency.CBSA, Verdict.APPROVE, cbsa) is (
        ApplicationStatus.SCHEDULED
    )
    assert await _decide(store, interview_id, Agency.CBP, Verdict.DENY, cbp) is (
        ApplicationStatus.DENIED
    )
    assert (await store.applications.history("NX-0001"))[-1].to_status is ApplicationStatus.DENIED
    decisions = await store.decisions.for_interview(interview_id)
    assert decisions[Agency.CBP].verdict is Verdict.DENY


async def test_an_agency_decides_once(store: Store, clock: FakeClock) -> None:
    await add_applications(store, application("NX-0001"))
    interview_id = await _schedule(store, clock, "NX-0001", InterviewMode.JOINT)
    cbsa = await _officer(store, "a.cbsa", Agency.CBSA)
    await _decide(store, interview_id, Agency.CBSA, Verdict.APPROVE, cbsa)
    with pytest.raises(Conflict, match="already decided"):
        await _decide(store, interview_id, Agency.CBSA, Verdict.DENY, cbsa)
    assert (await store.decisions.for_interview(interview_id))[
        Agency.CBSA
    ].verdict is Verdict.APPROVE


async def test_the_life_and_the_columns_copied_from_it_are_stored_together(
    store: Store, clock: FakeClock
) -> None:
    await add_applications(store, application("NX-0001"))
    interview_id = await _schedule(store, clock, "NX-0001", InterviewMode.JOINT)
    cbsa = await _officer(store, "a.cbsa", Agency.CBSA)
    await _live(store, interview_id, interview_actions.Seat(Agency.CBSA, cbsa))
    stored = await store.interviews.get(interview_id)
    assert stored.life.officers == {Agency.CBSA: cbsa}
    assert stored.cbsa_officer_id == cbsa and stored.cbp_officer_id is None
    assert stored.state is InterviewState.IN_PROGRESS


async def test_two_step_opens_the_cbp_place_only_after_cbsa_decided(
    store: Store, clock: FakeClock
) -> None:
    await add_applications(store, application("NX-0001"))
    interview_id = await _schedule(store, clock, "NX-0001", InterviewMode.TWO_STEP)
    cbsa = await _officer(store, "a.cbsa", Agency.CBSA)
    assert [i.id for i in await store.interviews.queue(Agency.CBSA)] == [interview_id]
    assert await store.interviews.queue(Agency.CBP) == []
    checked_in = (
        interview_actions.CheckIn(),
        interview_actions.Consent(),
        interview_actions.Ready(),
    )
    await _live(store, interview_id, *checked_in, interview_actions.Seat(Agency.CBSA, cbsa))
    assert await store.interviews.queue(Agency.CBSA) == []
    assert await store.interviews.queue(Agency.CBP) == []
    await _live(
        store,
        interview_id,
        interview_actions.Join(interview_state.Party.APPLICANT),
        interview_actions.Decide(Agency.CBSA, cbsa),
        interview_actions.End(Agency.CBSA),
    )
    assert [i.id for i in await store.interviews.queue(Agency.CBP)] == [interview_id]


async def test_the_queue_holds_only_interviews_whose_window_is_open(
    store: Store, clock: FakeClock
) -> None:
    await add_applications(store, application("NX-0001"))
    await store.interviews.schedule(
        "NX-0001",
        InterviewMode.JOINT,
        clock() + timedelta(hours=1),
        clock() + timedelta(hours=2),
        b"x" * 32,
        "t",
    )
    assert await store.interviews.queue(Agency.CBSA) == []
    clock.advance(3600)
    assert len(await store.interviews.queue(Agency.CBSA)) == 1
    clock.advance(3600)
    assert await store.interviews.queue(Agency.CBSA) == []


async def test_unknown_ids_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.applications.get("NX-9999")
    with pytest.raises(NotFound):
        await store.interviews.get("iv_nope")


async def test_usernames_are_unique_regardless_of_case(store: Store) -> None:
    await _officer(store, "jane.doe", Agency.CBSA)
    with pytest.raises(Conflict, match="already exists"):
        await _officer(store, "Jane.Doe", Agency.CBP)


async def test_totp_secrets_are_sealed_at_rest_and_read_back(store: Store) -> None:
    account_id = await store.accounts.add_officer(
        "a.cbsa", "A", Agency.CBSA, "CA", "hash", Secret("JBSWY3DPEHPK3PXPJBSWY3DP")
    )
    with sqlite3.connect(store.database.path) as db:
        [(stored,)] = db.execute("SELECT totp_secret FROM accounts").fetchall()
    assert "JBSWY3DP" not in stored
    account = await store.accounts.get(account_id)
    assert account.totp_secret.reveal() == "JBSWY3DPEHPK3PXPJBSWY3DP"


async def test_totp_secrets_stored_in_clear_are_sealed_at_the_next_start(
    store: Store, clock: FakeClock
) -> None:
    await _officer(store, "a.cbsa", Agency.CBSA)
    with sqlite3.connect(store.database.path) as db:
        db.execute("UPDATE accounts SET totp_secret = 'JBSWY3DPEHPK3PXP'")
    await store.close()
    reopened = await Store(store.database.path, clock).open()
    try:
        with sqlite3.connect(store.database.path) as db:
            [(stored,)] = db.execute("SELECT totp_secret FROM accounts").fetchall()
        assert stored.startswith("sealed:")
        account = await reopened.accounts.by_username("a.cbsa")
        assert account is not None and account.totp_secret.reveal() == "JBSWY3DPEHPK3PXP"
    finally:
        await reopened.close()
