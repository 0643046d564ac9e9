"""The operator's roster actions: officers' availability windows, added one at a time or
from a CSV file (``officer,starts,ends``), listed and removed. Times need their zone: a
roster is kept by officers in two countries, and a bare time would mean a different
moment to each."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from common.errors import BadRequest, ImportRejected, NotFound

from .store import Store
from .store.accounts import Account
from .store.rosters import StoredWindow
from .types import Role, aware_datetime

ROSTER_COLUMNS = ("officer", "starts", "ends")


@dataclass(frozen=True)
class WindowRow:
    line: int
    username: str
    starts: datetime
    ends: datetime


def aware(raw: str, name: str) -> datetime:
    """An ISO 8601 date and time with its zone, or BadRequest naming ``name``."""
    try:
        return aware_datetime(raw)
    except ValueError as error:
        raise BadRequest(f"{name}: {error}") from None


async def officer(store: Store, username: str) -> Account:
    account = await store.accounts.by_username(username.strip())
    if account is None or account.role is not Role.OFFICER:
        raise NotFound(f"there is no officer named {username.strip()!r}")
    return account


async def add_window(
    store: Store, username: str, starts: datetime, ends: datetime
) -> tuple[int, bool]:
    """The window's id and whether it is new (the same window again changes nothing)."""
    if starts.tzinfo is None or ends.tzinfo is None:
        raise BadRequest("give the times with their time zone, e.g. 2026-12-07T09:00-05:00")
    if ends <= starts:
        raise BadRequest("a roster window must end after it starts")
    account = await officer(store, username)
    return await store.rosters.add_window(account.id, starts, ends)


def read_roster(path: Path) -> list[WindowRow]:
    """Every row of a roster CSV file, or `ImportRejected` naming each bad one (a window
    that ends before it starts, a time without a zone, two that overlap for one officer)."""
    if not path.is_file():
        raise BadRequest(f"{path}: no such file")
    rows: list[WindowRow] = []
    problems: list[tuple[int, str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != ROSTER_COLUMNS:
                raise BadRequest(f"{path.name}: the header must be {','.join(ROSTER_COLUMNS)}")
            for record in reader:
                try:
                    row = WindowRow(
                        reader.line_num,
                        record["officer"] or "",
                        aware(record["starts"] or "", "starts"),
                        aware(record["ends"] or "", "ends"),
                    )
                except BadRequest as exc:
                    problems.append((reader.line_num, exc.message))
                    continue
                if not row.username.strip():
                    problems.append((reader.line_num, "officer: give the officer's username"))
                elif row.ends <= row.starts:
                    problems.append((reader.line_num, "ends must be after starts"))
                else:
                    rows.append(row)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise BadRequest(f"{path.name}: not a readable CSV file ({exc})") from exc
    problems += _overlaps(rows)
    if problems:
        raise ImportRejected(sorted(problems))
    if not rows:
        raise BadRequest(f"{path.name}: no windows in the file")
    return rows


def _overlaps(rows: list[WindowRow]) -> list[tuple[int, str]]:
    """Rows overlapping an earlier row of the same officer."""
    found = []
    for index, row in enumerate(rows):
        for other in rows[:index]:
            same = other.username.lower() == row.username.lower()
            if same and other.starts < row.ends and row.starts < other.ends:
                found.append((row.line, f"overlaps another window of {row.username} in the file"))
                break
    return found


async def import_roster(store: Store, path: Path) -> tuple[int, int]:
    """Add every window of the file (new, already there): all of them or, if any row is
    refused (unknown officer, overlap with a stored window), none. The windows are added
    in one transaction, so a window added meanwhile by someone else cannot leave the file
    half imported."""
    rows = read_roster(path)
    problems: list[tuple[int, str]] = []
    windows: list[tuple[int, int, datetime, datetime]] = []
    for row in rows:
        try:
            account = await officer(store, row.username)
        except NotFound as exc:
            problems.append((row.line, exc.message))
            continue
        windows.append((row.line, account.id, row.starts, row.ends))
    if problems:
        raise ImportRejected(problems)
    return await store.rosters.add_windows(windows)


async def list_windows(
    store: Store, starts: datetime, ends: datetime, username: str | None = None
) -> list[StoredWindow]:
    officer_id = (await officer(store, username)).id if username else None
    return await store.rosters.windows(starts, ends, officer_id)
