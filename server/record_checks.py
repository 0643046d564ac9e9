"""The server checks its own session records once they close, as an auditor would with
its checkpoint key: signatures, hash chain, every segment, and each record's listing in
the log of closed sessions, which alone shows a record deleted whole. What fails is
stored for the operator's console and logged for a person; it does not wait for an
auditor to happen to open the record.

A record that passed is read again only in turn, `RECHECKS` a pass, the longest unread
first (its segments are the bulk of the work): so a record edited after its check is
caught when its turn comes. The closed-sessions log is read on every pass, so a record
deleted or cut short is caught at the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from recordings.closed_sessions import (
    check_record,
    missing_sessions,
    read_closed_sessions,
)
from recordings.session_record import EVENTS, verify_session
from recordings.tlog import NoteVerifier

from .appkeys import RECORDS, STORE
from .session_records import SessionRecords
from .store.record_checks import RecordCheck

CLOSED_SESSIONS_CHECK = "closed-sessions"
"""The check of the closed-sessions log itself, stored beside the records' own."""
FIRST_CHECK_SECONDS = 30.0
CHECK_SECONDS = 600.0
RECHECKS = 12
"""Records that passed, read again each pass: a few thousand a week."""

log = logging.getLogger(__name__)


def check_records(records: SessionRecords, passed: Iterable[str]) -> list[RecordCheck]:
    """Check every closed record not in ``passed``, the log of closed sessions, and that
    no listed record is gone. Blocking: reads every new record's segments."""
    verifier = NoteVerifier.parse(records.signer.verifier_key)
    if not records.directory.is_dir():
        return []
    closed = read_closed_sessions(records.directory, [verifier])
    checks = [RecordCheck(CLOSED_SESSIONS_CHECK, not closed.failed, closed.problems)]
    for problem in missing_sessions(closed, records.directory):
        checks.append(RecordCheck(problem.split(" ", 1)[0], False, [problem]))
    skip = set(passed)
    for interview_id in sorted(closed.entries):
        directory = records.directory / interview_id
        if interview_id in skip or not (directory / EVENTS).is_file():
            continue
        result = verify_session(
            directory, [verifier], listing=lambda d: check_record(closed, d, [verifier])
        )
        checks.append(RecordCheck(interview_id, not result.failed, result.problems))
    return checks


async def check_now(app: web.Application) -> list[RecordCheck]:
    """One pass: check what is new, store the outcomes, log the failures."""
    store = app[STORE]
    passed = await store.record_checks.passed(again=RECHECKS)
    checks = await asyncio.to_thread(check_records, app[RECORDS], passed)
    await store.record_checks.save(checks)
    for check in checks:
        if not check.ok:
            log.error("session record %s failed its check: %s", check.interview_id, check.problems)
    return checks


async def record_checks(app: web.Application) -> AsyncIterator[None]:
    """While the server runs: a pass shortly after it starts, then every `CHECK_SECONDS`.
    Needs the store open (its context comes first)."""
    checking = asyncio.ensure_future(_keep_checking(app))
    yield
    checking.cancel()
    await asyncio.gather(checking, return_exceptions=True)


async def _keep_checking(app: web.Application) -> None:
    await asyncio.sleep(FIRST_CHECK_SECONDS)
    while True:
        try:
            await check_now(app)
        except Exception:
            log.exception("the check of the session records failed")
        await asyncio.sleep(CHECK_SECONDS)
