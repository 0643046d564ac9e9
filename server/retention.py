"""Retention: each agency keeps session records a number of years after the interview's
decisions; a record past every agency's period, and under no legal hold, is
crypto-shredded (`recordings.shredding`) and the shred written to its own log, to the
store and to the operators' log.

One record holds one set of keys for every recipient, so it is kept until the longest
period has passed: shredding it for one agency would take it from the other too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from common.errors import BadRequest, Conflict
from common.names import Agency
from recordings.session_record import SessionLog, verify_session
from recordings.shredding import shred
from recordings.tlog import NoteVerifier

from .appkeys import CLOCK, OPERATIONS, RECORDS, SETTINGS, STORE
from .operations_log import OperationsLog
from .session_records import SessionRecords
from .settings import Settings
from .store import Store

RETENTION_ACTOR = "retention"
FIRST_SWEEP_SECONDS = 60.0
"""A start is busy (interviews resume, witnesses catch up): the first sweep waits this."""
REASON = "retention period expired"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    years: Mapping[Agency, int]

    @classmethod
    def of(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            {Agency.CBSA: settings.retention_years_cbsa, Agency.CBP: settings.retention_years_cbp}
        )

    @property
    def longest(self) -> int:
        return max(self.years.values())

    def expires(self, began: datetime) -> datetime:
        """When a record whose retention began at ``began`` may go: the same day and time,
        `longest` years on (29 February: the 28th)."""
        year = began.year + self.longest
        try:
            return began.replace(year=year)
        except ValueError:
            return began.replace(year=year, day=28)

    def oldest_kept(self, now: datetime) -> datetime:
        """Records whose retention began before this have expired."""
        try:
            return now.replace(year=now.year - self.longest)
        except ValueError:
            return now.replace(year=now.year - self.longest, day=28)


def shred_record(records: SessionRecords, interview_id: str, reason: str) -> list[str]:
    """Destroy the key material of one session record; returns the files shredded.
    Blocking (file writes, fsync, a signature)."""
    session = records.directory / interview_id
    if not (session / "events.jsonl").is_file():
        raise BadRequest(
            "no session record for {interview} in {directory}",
            interview=interview_id,
            directory=records.directory,
        )
    # the shred events go on under the record's own origin and key, or nobody could
    # check them with the rest; and signing a record that does not verify would vouch
    # for whatever was done to it
    result = verify_session(session, [NoteVerifier.parse(records.signer.verifier_key)])
    if result.failed or not result.origin:
        raise BadRequest(
            "not shredding {interview}: its record does not verify with this server's "
            "checkpoint key ({problems})",
            interview=interview_id,
            problems="; ".join(result.problems) or "it has no signed checkpoint",
        )
    log = SessionLog(session, result.origin, records.signer)
    try:
        return shred(session, log, reason)
    finally:
        log.close_file()


@dataclass(frozen=True)
class Expired:
    interview_id: str
    began: datetime
    files: int | None  # None: not shredded (a dry run, or it failed: see `problem`)
    problem: str = ""


async def run_retention(
    store: Store,
    records: SessionRecords,
    operations: OperationsLog,
    policy: RetentionPolicy,
    now: datetime,
    dry_run: bool = False,
) -> list[Expired]:
    """Shred every expired record not under a legal hold; interviews that had no record
    (nobody joined) are only listed as done. One that will not verify is left as it is,
    reported, and tried again next time."""
    done = []
    for interview_id, began in await store.retention.began_before(policy.oldest_kept(now)):
        if dry_run:
            done.append(Expired(interview_id, began, None))
            continue
        if not await store.retention.claim_for_shredding(interview_id, REASON):
            continue  # a legal hold came meanwhile
        try:
            files = await _shred_if_recorded(records, interview_id)
        except BadRequest as refused:
            await store.retention.unclaim(interview_id)
            done.append(Expired(interview_id, began, None, refused.message))
            await asyncio.to_thread(
                operations.record,
                RETENTION_ACTOR,
                "records shred",
                interview_id,
                "refused",
                reason=refused.message,
            )
            continue
        await store.retention.shredded(interview_id, files)
        await asyncio.to_thread(
            operations.record, RETENTION_ACTOR, "records shred", interview_id, files=files
        )
        done.append(Expired(interview_id, began, files))
    return done


async def _shred_if_recorded(records: SessionRecords, interview_id: str) -> int:
    """How many files were shredded; none for an interview that had no record."""
    if not (records.directory / interview_id / "events.jsonl").is_file():
        return 0
    return len(await asyncio.to_thread(shred_record, records, interview_id, REASON))


async def shred_claimed(
    store: Store, records: SessionRecords, interview_id: str, reason: str
) -> list[str]:
    """Shred one record now (an operator's `records shred`), unless a legal hold is on
    it: claimed first, as the sweep claims, so a hold cannot slip in between."""
    if not (records.directory / interview_id / "events.jsonl").is_file():
        raise BadRequest(
            "no session record for {interview} in {directory}",
            interview=interview_id,
            directory=records.directory,
        )
    if not await store.retention.claim_for_shredding(interview_id, reason):
        raise Conflict(
            "{interview} is under a legal hold: release it (`records release`) first",
            interview=interview_id,
        )
    try:
        shredded = await asyncio.to_thread(shred_record, records, interview_id, reason)
    except BaseException:
        await store.retention.unclaim(interview_id)
        raise
    await store.retention.shredded(interview_id, len(shredded))
    return shredded


async def retention_sweeps(app: web.Application) -> AsyncIterator[None]:
    """While the server runs: a sweep a minute after it starts, then every
    `Settings.retention_sweep_hours`. Needs the store open (its context comes first)."""
    sweeping = asyncio.ensure_future(_keep_shredding(app))
    yield
    sweeping.cancel()
    await asyncio.gather(sweeping, return_exceptions=True)


async def _keep_shredding(app: web.Application) -> None:
    settings = app[SETTINGS]
    policy = RetentionPolicy.of(settings)
    await asyncio.sleep(FIRST_SWEEP_SECONDS)
    while True:
        try:
            expired = await run_retention(
                app[STORE], app[RECORDS], app[OPERATIONS], policy, app[CLOCK]()
            )
        except Exception:
            log.exception("the retention sweep failed")
        else:
            if expired:
                log.info("retention: %d record(s) past retention handled", len(expired))
        await asyncio.sleep(settings.retention_sweep_hours * 3600)
