"""The operator's console: the backlog by state, decisions per hour and agency, the
burn-down with its projected clearance date, and each officer's work; each figure also as
a CSV download (`FIGURES`). Reading the console is logged like every other staff access.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

import aiohttp_jinja2
from aiohttp import web

from common.errors import NotFound
from common.names import Agency

from .. import charts
from ..appkeys import BOOKING_JOBS, CLOCK, ROOMS, SETTINGS, STORE, WITNESSING
from ..appointments import DayStaffing, day_staffing
from ..backlog import (
    RATE_DAYS,
    Backlog,
    BacklogState,
    Burndown,
    HourRow,
    Utilisation,
    burndown,
    hourly,
    utilisation,
)
from ..store.backlog import OfficerWork
from ..store.invitations import Invitation, InvitationStatus
from ..store.record_checks import RecordCheck
from .http import log_access, session_of, translator_of
from .operator_actions import NOTICE, job_text

WORK_DAYS = 7
"""Officers' work is counted over this many days, today included."""
PER_HOUR_TITLE = "Decisions per hour, last 24 hours (UTC)"
BURNDOWN_TITLE = "Applications not yet decided"
STAFFING_TITLE = "Today's officer slots: booked and free"
CHART_TITLES = (PER_HOUR_TITLE, BURNDOWN_TITLE, STAFFING_TITLE)
UNDELIVERED_SHOWN = 100
"""The newest e-mails that could not be delivered, listed on the console."""


@dataclass(frozen=True)
class LiveRoom:
    interview_id: str
    worker: str
    present: list[str]


@dataclass(frozen=True)
class Worker:
    name: str
    alive: bool
    draining: bool
    rooms: int
    cpu: float | None  # CPU-seconds per second at its last report


@dataclass(frozen=True)
class Unwitnessed:
    interview_id: str
    witness: str
    problem: str


@dataclass(frozen=True)
class Figures:
    now: datetime
    backlog: Backlog
    hours: list[HourRow]
    burndown: Burndown
    officers: list[OfficerWork]
    rooms: list[LiveRoom]
    workers: list[Worker]
    witnessed: bool  # witnesses are configured
    unwitnessed: list[Unwitnessed]
    failed_records: list[RecordCheck]
    staffing: DayStaffing
    utilisation: dict[int, Utilisation]
    invitations: dict[str, int]  # messages by status
    undelivered: list[Invitation]  # failed or bounced, the newest first


async def _figures(request: web.Request) -> Figures:
    store, now = request.app[STORE], request.app[CLOCK]()
    backlog = Backlog.of(await store.backlog.states())
    hours = hourly(await store.backlog.decisions_by_hour(now - timedelta(days=1)), now)
    burn = burndown(await store.backlog.daily_flow(), now.date())
    since = (now - timedelta(days=WORK_DAYS - 1)).replace(hour=0, minute=0, second=0)
    officers = await store.backlog.officer_work(since)
    plane, witnessing = request.app[ROOMS], request.app[WITNESSING]
    rooms = [LiveRoom(h.id, h.link.name, [str(s) for s in h.present]) for h in plane.rooms()]
    workers = [
        Worker(
            link.name,
            link.alive,
            link.draining,
            sum(1 for room in rooms if room.worker == link.name),
            link.load.cpu if link.load is not None else None,
        )
        for link in plane.workers.values()
    ]
    unwitnessed = [
        Unwitnessed(path.name, witness, problem)
        for path, why in sorted((witnessing.unwitnessed() if witnessing else {}).items())
        for witness, problem in sorted(why.items())
    ]
    failed = await store.record_checks.failed()
    settings = request.app[SETTINGS]
    staffing = await day_staffing(store, settings, now.astimezone(settings.office_time_zone).date())
    windows = [w.window() for w in await store.rosters.windows(since, now)]
    used = utilisation(windows, await store.rosters.holds(since, now), since, now)
    invitations = await store.invitations.counts()
    undelivered = sorted(
        [
            *await store.invitations.listed(InvitationStatus.FAILED, UNDELIVERED_SHOWN),
            *await store.invitations.listed(InvitationStatus.BOUNCED, UNDELIVERED_SHOWN),
        ],
        key=lambda row: row.updated_at,
        reverse=True,
    )[:UNDELIVERED_SHOWN]
    return Figures(
        now, backlog, hours, burn, officers, rooms, workers, witnessing is not None, unwitnessed,
        failed, staffing, used, invitations, undelivered,
    )  # fmt: skip


Rows = Callable[[Figures], tuple[Sequence[str], Iterable[Sequence[object]]]]


def _backlog_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    return ("state", "applications"), [(s.value, n) for s, n in f.backlog.counts.items()]


def _hourly_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("hour_utc", *(a.value for a in Agency))
    return header, [(r.hour.strftime("%Y-%m-%dT%H:00Z"), *r.by_agency.values()) for r in f.hours]


def _burndown_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    rows = [(d.day.isoformat(), d.remaining, "actual") for d in f.burndown.days]
    rows += [(d.day.isoformat(), d.remaining, "projected") for d in f.burndown.projection[1:]]
    return ("day", "remaining", "kind"), rows


def _officer_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = (
        "officer", "agency", "interviews", "call_minutes", "rostered_hours", "booked_hours",
        "utilisation",
    )  # fmt: skip
    rows = []
    for o in f.officers:
        used = f.utilisation.get(o.account_id, Utilisation(0.0, 0.0))
        share = "" if used.share is None else round(used.share, 3)
        rows.append(
            (
                o.name,
                o.agency,
                o.interviews,
                round(o.call_minutes, 1),
                round(used.rostered_hours, 2),
                round(used.booked_hours, 2),
                share,
            )
        )
    return header, rows


def _staffing_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("slot_starts", "agency", "rostered", "booked", "free")
    return header, [
        (r["starts"], r["agency"], r["rostered"], r["booked"], r["free"])
        for r in f.staffing["slots"]
    ]


def _room_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("interview", "worker", "present")
    return header, [(r.interview_id, r.worker, " ".join(r.present)) for r in f.rooms]


def _worker_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("worker", "alive", "draining", "rooms", "cpu")
    return header, [
        (w.name, w.alive, w.draining, w.rooms, "" if w.cpu is None else round(w.cpu, 2))
        for w in f.workers
    ]


def _unwitnessed_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("interview", "witness", "problem")
    return header, [(u.interview_id, u.witness, u.problem) for u in f.unwitnessed]


def _failed_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("interview", "checked_at_utc", "problems")
    return header, [
        (c.interview_id, c.checked_at.isoformat() if c.checked_at else "", "; ".join(c.problems))
        for c in f.failed_records
    ]


def _invitation_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    return ("status", "messages"), list(f.invitations.items())


def _undelivered_rows(f: Figures) -> tuple[Sequence[str], Iterable[Sequence[object]]]:
    header = ("interview", "kind", "status", "recipient", "attempts", "reason", "updated_at")
    return header, [
        (i.interview_id, i.kind, i.status, i.recipient, i.attempts, i.reason or "",
         i.updated_at.isoformat())
        for i in f.undelivered
    ]  # fmt: skip


FIGURES: Mapping[str, Rows] = MappingProxyType(
    {
        "backlog": _backlog_rows,
        "decisions-per-hour": _hourly_rows,
        "burndown": _burndown_rows,
        "officers": _officer_rows,
        "rooms": _room_rows,
        "workers": _worker_rows,
        "unwitnessed": _unwitnessed_rows,
        "failed-records": _failed_rows,
        "staffing": _staffing_rows,
        "invitations": _invitation_rows,
        "undelivered": _undelivered_rows,
    }
)


async def console_page(request: web.Request) -> web.StreamResponse:
    figures = await _figures(request)
    notice = (await session_of(request)).pop(NOTICE, None)  # the last action's, shown once
    T = await translator_of(request)
    job = request.app[BOOKING_JOBS].latest
    await log_access(request, "operator-console")
    labels = [r.hour.strftime("%H:00") for r in figures.hours]
    per_hour = charts.stacked_bars(
        "chart-per-hour",
        T(PER_HOUR_TITLE),
        labels,
        [
            charts.Series(
                a.value, f"chart-{a.value.lower()}", [r.by_agency[a] for r in figures.hours]
            )
            for a in Agency
        ],
    )
    return aiohttp_jinja2.render_template(
        "operator.html",
        request,
        {
            "figures": figures,
            "states": list(BacklogState),
            "rate_days": RATE_DAYS,
            "per_hour_chart": per_hour,
            "burndown_chart": _burndown_chart(figures.burndown, T(BURNDOWN_TITLE)),
            "downloads": list(FIGURES),
            "notice": notice if isinstance(notice, str) else None,
            "staffing_chart": _staffing_chart(figures.staffing, T(STAFFING_TITLE)),
            "job": job,
            "job_text": await job_text(request.app[STORE], T, job) if job else "",
        },
    )


def _burndown_chart(burn: Burndown, title: str) -> object:
    """Past days as a line and, dashed, the projection from today to the clearance day,
    on one axis of days."""
    if not burn.days:
        return ""
    first = burn.days[0].day
    days = [d.day for d in burn.days]
    actual = [float(d.remaining) for d in burn.days]
    projection = [float("nan")] * len(days)
    if len(burn.projection) == 2 and burn.projection[1].day > days[-1]:
        days.append(burn.projection[1].day)
        projection = [*projection[:-1], actual[-1], 0.0]
        actual.append(float("nan"))
    xs = [float((d - first).days) for d in days]
    shown = {0, len(burn.days) - 1, len(days) - 1}
    ticks = [(xs[i], days[i].strftime("%b %d")) for i in sorted(shown)]
    return charts.lines(
        "chart-burndown",
        title,
        xs,
        ticks,
        [
            charts.Series("remaining", "chart-actual", actual),
            charts.Series("projected", "chart-projected", projection),
        ],
    )


def _staffing_chart(staffing: DayStaffing, title: str) -> object:
    """Each slot of the day, its officers booked and free (both agencies together)."""
    booked: dict[str, int] = {}
    free: dict[str, int] = {}
    for row in staffing["slots"]:
        label = row["starts"][11:16]
        booked[label] = booked.get(label, 0) + row["booked"]
        free[label] = free.get(label, 0) + row["free"]
    if not booked:
        return ""
    labels = sorted(booked)
    return charts.stacked_bars(
        "chart-staffing",
        title,
        labels,
        [
            charts.Series("booked", "chart-booked", [booked[k] for k in labels]),
            charts.Series("free", "chart-free", [free[k] for k in labels]),
        ],
    )


def _inert(cell: object) -> object:
    """A cell a spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``, tab or
    carriage return first) gets a leading apostrophe: e-mail addresses, SMTP replies and
    names come from outside."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


async def figure_csv(request: web.Request) -> web.StreamResponse:
    name = request.match_info["figure"]
    rows = FIGURES.get(name)
    if rows is None:
        raise NotFound(f"there is no figure {name!r}; the figures are {', '.join(FIGURES)}")
    figures = await _figures(request)
    await log_access(request, "operator-figure", name)
    header, body = rows(figures)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_inert(cell) for cell in row] for row in body)
    stamp = figures.now.strftime("%Y%m%dT%H%MZ")
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'},
    )
