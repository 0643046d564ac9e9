"""`nexus-interview roster …` (officers' availability windows) and `schedule` (appointments
for pending applications in the slots both agencies can staff). `schedule` prints counts
and a summary, never a link: applicants' links are minted by the invitations sent to them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from . import appointments, rosters
from .settings import Settings
from .store import Store, with_store
from .types import InterviewMode, utc_now

T = TypeVar("T")
Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
Command = Callable[..., argparse.ArgumentParser]
DRY_RUN_ROWS = 50
"""A dry run lists this many of the appointments it would book, then counts the rest."""


def add_commands(group: Group, command: Command, flags: argparse.ArgumentParser) -> None:
    roster = group("roster", "officers' availability windows")
    sub = roster.add_parser("add", help="add one window of an officer", parents=[flags])
    sub.add_argument("--officer", required=True, help="the officer's username")
    sub.add_argument(
        "--starts", required=True, help="ISO 8601 with zone, e.g. 2026-12-07T09:00-05:00"
    )
    sub.add_argument("--ends", required=True, help="ISO 8601 with zone")
    sub.set_defaults(run=_add)
    sub = roster.add_parser("list", help="list windows from now on", parents=[flags])
    sub.add_argument("--officer", help="only this officer's")
    sub.add_argument("--days", type=int, default=14, help="how many days ahead (default 14)")
    sub.set_defaults(run=_list)
    sub = roster.add_parser(
        "remove", help="remove a window (not while it is booked)", parents=[flags]
    )
    sub.add_argument("window", type=int, help="the window's number, as `roster list` shows it")
    sub.set_defaults(run=_remove)
    sub = roster.add_parser(
        "import", help="add the windows of a CSV file (officer,starts,ends)", parents=[flags]
    )
    sub.add_argument("file", type=Path)
    sub.set_defaults(run=_import)

    sub = command(
        "schedule",
        _schedule,
        "give pending applications appointments in the coming days' staffed slots",
    )
    sub.add_argument("--days", type=_days, required=True, help="how many days ahead to book")
    sub.add_argument("--mode", choices=list(InterviewMode), default=InterviewMode.JOINT)
    sub.add_argument(
        "--dry-run", action="store_true", help="show what would be booked; book nothing"
    )
    sub = command("staffing", _staffing, "one day's slots against staffing, per agency")
    sub.add_argument("--day", type=date.fromisoformat, help="YYYY-MM-DD (default: today)")


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of days") from None
    if not 1 <= days <= 90:
        raise argparse.ArgumentTypeError("give between 1 and 90 days")
    return days


def _local(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.office_time_zone).strftime("%Y-%m-%d %H:%M %Z")


async def _add(args: argparse.Namespace, settings: Settings) -> int:
    starts, ends = rosters.aware(args.starts, "--starts"), rosters.aware(args.ends, "--ends")
    window_id, new = await with_store(
        settings, lambda store: rosters.add_window(store, args.officer, starts, ends)
    )
    print(f"{'added' if new else 'already there:'} window {window_id} of {args.officer}")
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()
    windows = await with_store(
        settings,
        lambda store: rosters.list_windows(
            store, now, now + timedelta(days=args.days), args.officer
        ),
    )
    table = Table("window", "officer", "agency", "starts", "ends")
    for window in windows:
        table.add_row(
            str(window.id),
            window.username,
            window.agency.value,
            _local(window.starts, settings),
            _local(window.ends, settings),
        )
    Console().print(table)
    return 0


async def _remove(args: argparse.Namespace, settings: Settings) -> int:
    await with_store(settings, lambda store: store.rosters.remove_window(args.window))
    print(f"removed window {args.window}")
    return 0


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    added, known = await with_store(settings, lambda store: rosters.import_roster(store, args.file))
    print(f"imported {args.file}: {added} new window(s), {known} already there")
    return 0


async def _schedule(args: argparse.Namespace, settings: Settings) -> int:
    mode = InterviewMode(args.mode)

    async def run(store: Store) -> tuple[appointments.ScheduleRun, dict[int, str]]:
        done = await appointments.schedule(
            store, settings, utc_now(), args.days, mode, dry_run=args.dry_run
        )
        names: dict[int, str] = {a.id: a.username for a in await store.accounts.officers()}
        return done, names

    done, names = await with_store(settings, run)
    console = Console()
    verb = "would book" if done.dry_run else "booked"
    console.print(
        f"{done.pending} pending application(s); {verb} {len(done.appointments)} {mode}"
        f" appointment(s) in the next {args.days} day(s)"
        + (
            f"; {done.skipped} skipped (slot taken or application changed meanwhile)"
            if done.skipped
            else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    summary = Table("day", "appointments", title="per day")
    for day, count in done.per_day():
        summary.add_row(day.isoformat(), str(count))
    console.print(summary)
    if done.dry_run and done.appointments:
        listing = Table("application", "starts", "CBSA officer", "CBP officer", title="would book")
        for appointment in done.appointments[:DRY_RUN_ROWS]:
            by_agency = {
                hold.agency.value: names.get(hold.officer_id, "?") for hold in appointment.holds
            }
            listing.add_row(
                appointment.application_id,
                _local(appointment.starts, settings),
                by_agency.get("CBSA", ""),
                by_agency.get("CBP", ""),
            )
        console.print(listing)
        if len(done.appointments) > DRY_RUN_ROWS:
            console.print(f"… and {len(done.appointments) - DRY_RUN_ROWS} more")
    return 0


async def _staffing(args: argparse.Namespace, settings: Settings) -> int:
    day = args.day or utc_now().astimezone(settings.office_time_zone).date()
    staffing = await with_store(
        settings, lambda store: appointments.day_staffing(store, settings, day)
    )
    console = Console()
    totals = Table(
        "agency", "officer slots", "booked", "free", title=f"{day} ({staffing['time_zone']})"
    )
    for agency, counts in staffing["agencies"].items():
        totals.add_row(agency, str(counts["slots"]), str(counts["booked"]), str(counts["free"]))
    console.print(totals)
    return 0
