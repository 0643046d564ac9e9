"""The operator's console: the backlog by state, decisions per hour and agency, the
burn-down with its projected clearance date, officers' work, each also as CSV."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from datetime import UTC, date, datetime, time, timedelta

from common.names import Agency, Seat
from server import appointments, charts, rosters
from server.appkeys import LIVES, OPERATIONS
from server.backlog import Backlog, BacklogState, burndown, hourly
from server.scheduling import Appointment, Hold
from server.settings import Settings
from server.store.backlog import DailyFlow, HourlyDecisions
from server.store.invitations import InvitationKind, InvitationStatus
from server.types import InterviewMode

from .calls import applicant_in_call
from .fakes import Client, FakeClock, World, add_applications, application
from .test_applicant_pages import finished
from .test_witnessing_wired import cosigners, server, unreachable


async def operator_client(world: World) -> Client:
    client = await world.client()
    signed_in = await world.sign_in(client, await world.add_operator("operator.one"))
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/operator"
    return client


async def figure(client: Client, name: str) -> list[dict[str, str]]:
    response = await client.get(f"/operator/figures/{name}.csv")
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="{name}-')
    return list(csv.DictReader(io.StringIO(await response.text())))


async def test_an_operator_signs_in_to_a_console_of_the_backlog(world: World) -> None:
    await add_applications(world.store, application("NX-0001"), application("NX-0002"))
    client = await operator_client(world)

    page = await client.get("/operator")

    assert page.status == 200
    text = await page.text()
    row = re.search(r'<tr data-state="to_invite">(.*?)</tr>', text)
    assert row is not None and ">To invite<" in row[1] and '<td class="number">2</td>' in row[1]
    assert 'id="backlog-total">2<' in text
    assert "there is no rate to project a clearance date from" in text


async def test_the_backlog_counts_each_application_in_the_state_it_is_in(world: World) -> None:
    await finished(world)  # NX-0001: interviewed, both agencies decided
    await add_applications(world.store, *(application(f"NX-000{n}") for n in (2, 3, 4, 5)))
    await world.invite("NX-0003")
    world.clock.advance(world.settings.no_show_minutes * 60 + 60)
    await world.server.app[LIVES].sweep()
    await world.invite("NX-0002")  # invited after the sweep: still to come
    client = await operator_client(world)

    rows = await figure(client, "backlog")

    assert {row["state"]: int(row["applications"]) for row in rows} == {
        "to_invite": 2,
        "invited": 1,
        "interviewed": 0,
        "decided": 1,
        "no_show": 1,
    }


async def test_decisions_are_counted_in_their_hour_for_their_agency(world: World) -> None:
    await finished(world)
    client = await operator_client(world)

    rows = await figure(client, "decisions-per-hour")

    assert len(rows) == 24
    current = world.clock().strftime("%Y-%m-%dT%H:00Z")
    assert rows[-1] == {"hour_utc": current, "CBSA": "1", "CBP": "1"}
    assert all(row["CBSA"] == row["CBP"] == "0" for row in rows[:-1])


async def test_officers_work_counts_their_interviews_and_minutes_in_calls(world: World) -> None:
    await finished(world)
    client = await operator_client(world)

    rows = await figure(client, "officers")

    assert sorted((row["agency"], row["interviews"]) for row in rows) == [
        ("CBP", "1"),
        ("CBSA", "1"),
    ]
    assert all(float(row["call_minutes"]) >= 0 for row in rows)


async def test_the_burndown_download_ends_with_the_projected_clearance(world: World) -> None:
    await finished(world)
    await add_applications(world.store, application("NX-0002"), application("NX-0003"))
    client = await operator_client(world)

    rows = await figure(client, "burndown")

    today = world.clock().date()
    actual = [row for row in rows if row["kind"] == "actual"]
    assert actual[-1] == {"day": today.isoformat(), "remaining": "2", "kind": "actual"}
    # one decided today, over the last 7 days: 1/7 a day, so the 2 left take 14 days
    clears = (today + timedelta(days=14)).isoformat()
    assert rows[-1] == {"day": clears, "remaining": "0", "kind": "projected"}
    page = await (await client.get("/operator")).text()
    assert f'<time id="clears-on" datetime="{clears}">' in page
    assert 'id="chart-burndown"' in page and 'class="chart-projected"' in page


async def test_an_unknown_figure_is_refused_with_the_names_of_those_there_are(
    world: World,
) -> None:
    client = await operator_client(world)

    response = await client.get("/operator/figures/salaries.csv")

    assert response.status == 404
    message = html.unescape(await response.text())
    assert "there is no figure 'salaries'" in message
    assert "the figures are backlog, decisions-per-hour, burndown, officers" in message


async def test_reading_the_console_is_in_the_access_log(world: World) -> None:
    client = await operator_client(world)

    assert (await client.get("/operator")).status == 200
    assert (await client.get("/operator/figures/backlog.csv")).status == 200

    entries = await world.store.access_log.entries()
    seen = [(e.role, e.action, e.target) for e in entries if e.role == "operator"]
    assert ("operator", "operator-console", "") in seen
    assert ("operator", "operator-figure", "backlog") in seen


# --- the pure figures ------------------------------------------------------------------


def test_the_backlog_counts_states_it_was_not_given_as_zero() -> None:
    backlog = Backlog.of({"to_invite": 5, "decided": 3})

    assert backlog.counts[BacklogState.NO_SHOW] == 0
    assert (backlog.total, backlog.remaining) == (8, 5)


def test_the_clearance_date_is_what_remains_over_the_last_seven_days_rate() -> None:
    today = date(2026, 12, 3)
    flow = [DailyFlow(today - timedelta(days=20), 100, 0)]
    flow += [DailyFlow(today - timedelta(days=n), 0, 2) for n in range(7)]  # 14 in 7 days

    burn = burndown(flow, today)

    assert burn.rate_per_day == 2
    assert burn.days[-1].remaining == 86
    assert burn.clears_on == today + timedelta(days=43)
    assert [d.remaining for d in burn.days[:14]] == [100] * 14  # no decisions yet then


def test_nothing_decided_lately_promises_no_clearance_date() -> None:
    today = date(2026, 12, 3)
    burn = burndown([DailyFlow(today - timedelta(days=30), 10, 1)], today)

    assert burn.rate_per_day == 0
    assert burn.clears_on is None and burn.projection == []


def test_an_empty_backlog_is_clear_today() -> None:
    today = date(2026, 12, 3)
    burn = burndown([DailyFlow(today, 2, 2)], today)

    assert burn.clears_on == today


def test_hours_without_decisions_are_shown_as_zeros() -> None:
    now = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    hour = datetime(2026, 12, 3, 8, tzinfo=UTC)

    rows = hourly([HourlyDecisions(hour, Agency.CBP, 3)], now)

    assert len(rows) == 24 and rows[-1].hour == now.replace(minute=0)
    assert rows[-3].by_agency == {Agency.CBSA: 0, Agency.CBP: 3}
    assert sum(sum(r.by_agency.values()) for r in rows) == 3


def test_a_chart_is_a_named_picture_whose_texts_are_escaped() -> None:
    svg = charts.stacked_bars(
        "chart-x", "Title <b>", ["<script>"], [charts.Series("A&B", "chart-cbsa", [2])]
    )

    assert svg.startswith('<svg class="chart" id="chart-x"')
    assert 'role="img" aria-labelledby="chart-x-title"' in svg
    assert '<title id="chart-x-title">Title &lt;b&gt;</title>' in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "A&amp;B" in svg


async def test_the_console_shows_each_live_room_on_its_media_worker(world: World) -> None:
    client = await operator_client(world)
    async with applicant_in_call(world) as call:
        rooms = await figure(client, "rooms")
        workers = await figure(client, "workers")
        page = await (await client.get("/operator")).text()

    assert len(workers) == 1 and workers[0]["alive"] == "True"
    assert workers[0]["draining"] == "False" and workers[0]["rooms"] == "1"
    assert rooms == [
        {"interview": call.interview_id, "worker": workers[0]["worker"], "present": "applicant"}
    ]
    assert f'<tr data-worker="{workers[0]["worker"]}">' in page


async def test_without_witnesses_the_console_says_nobody_outside_vouches(world: World) -> None:
    client = await operator_client(world)

    page = await (await client.get("/operator")).text()

    assert 'id="no-witnesses"' in page
    assert await figure(client, "unwitnessed") == []


async def test_a_record_whose_witnesses_are_down_is_listed_with_the_reason(
    settings: Settings, clock: FakeClock
) -> None:
    keys = cosigners()
    async with server(settings.replace(witnesses=unreachable(keys)), clock) as world:
        async with applicant_in_call(world) as call:
            await call.end(by=Seat.CBSA)
        await world.server.app[LIVES].drain()
        client = await operator_client(world)
        rows = await figure(client, "unwitnessed")
        page = await (await client.get("/operator")).text()

    # the record, and the operators' log (which goes to the same witnesses)
    assert {(row["interview"], row["witness"]) for row in rows} == {
        (call.interview_id, "CBSA"),
        (call.interview_id, "CBP"),
        ("operations-log", "CBSA"),
        ("operations-log", "CBP"),
    }
    assert all(row["problem"] for row in rows)
    assert 'id="no-witnesses"' not in page and call.interview_id in page


# --- scheduling from the console, and staffing ------------------------------------------


def office_day(world: World, days: int, hour: int) -> datetime:
    """``hour`` o'clock, ``days`` days from today, in the offices' time zone."""
    zone = world.settings.office_time_zone
    today = world.clock().astimezone(zone).date()
    return datetime.combine(today + timedelta(days=days), time(hour), zone)


async def rostered(world: World, starts: datetime, hours: int = 1) -> dict[Agency, int]:
    """One officer of each agency rostered from ``starts``; their account ids."""
    ids: dict[Agency, int] = {}
    for agency in Agency:
        account = await world.add_officer(f"{agency.lower()}.{starts:%d%H}", agency)
        await rosters.add_window(
            world.store, account.username, starts, starts + timedelta(hours=hours)
        )
        found = await world.store.accounts.by_username(account.username)
        assert found is not None
        ids[agency] = found.id
    return ids


async def schedule_form(client: Client, **fields: str) -> tuple[int, str]:
    csrf = await (await client.get("/api/session")).json()
    response = await client.post(
        "/operator/schedule",
        data={"csrf_token": csrf["csrf_token"], **fields},
        allow_redirects=False,
    )
    return response.status, response.headers.get("Location", await response.text())


async def job_ended(client: Client) -> None:
    """Wait for the booking run the console started to end (`tests/test_booking_jobs.py`)."""
    for _ in range(1200):
        status = await (await client.get("/operator/schedule/status")).json()
        if status["state"] != "running":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the booking run did not end")


async def test_an_operator_previews_then_books_the_coming_days_from_the_console(
    world: World,
) -> None:
    await rostered(world, office_day(world, 2, 10))  # four joint slots, past the notice period
    await add_applications(world.store, *(application(f"NX-000{n}") for n in range(1, 4)))
    client = await operator_client(world)

    assert await schedule_form(client, days="7", mode="joint", dry_run="1") == (303, "/operator")
    await figure(client, "backlog")  # a download meanwhile leaves the notice for the page
    preview = await (await client.get("/operator")).text()
    assert await world.store.interviews.all() == []
    assert await schedule_form(client, days="7", mode="joint") == (303, "/operator")
    started = await (await client.get("/operator")).text()
    await job_ended(client)
    again = await (await client.get("/operator")).text()

    notice = r'<p class="banner" id="notice" role="status">(.*?)</p>'
    assert re.search(notice, preview)[1].startswith("A dry run: 3 of 3 pending applications")  # type: ignore[index]
    assert re.search(notice, started)[1].startswith("Booking the next 7 days has started")  # type: ignore[index]
    assert 'id="notice"' not in again  # shown once
    assert "3 of 3 pending applications were booked; 0 planned could not be" in again
    assert len(await world.store.interviews.all()) == 3
    logged = [
        (op.action, op.target, op.outcome)
        for op in world.server.app[OPERATIONS].operations()
        if op.action == "schedule"
    ]
    assert logged == [
        ("schedule", "7 days, joint", "dry run"),
        ("schedule", "7 days, joint", "done"),
    ]
    assert all(
        op.actor.startswith("operator:")
        for op in world.server.app[OPERATIONS].operations()
        if op.action == "schedule"
    )


async def test_a_schedule_form_out_of_bounds_is_refused_with_a_reason_and_logged(
    world: World,
) -> None:
    client = await operator_client(world)

    status, text = await schedule_form(client, days="90", mode="joint")

    assert status == 400 and "a whole number from 1 to 28" in html.unescape(text)
    refused = [op for op in world.server.app[OPERATIONS].operations() if op.action == "schedule"]
    assert [op.outcome for op in refused] == ["refused"]


async def test_todays_staffing_and_each_officers_utilisation_are_shown(world: World) -> None:
    await rostered(world, office_day(world, 0, 10))  # today, 10:00 to 11:00
    yesterday = office_day(world, -1, 10)
    ids = await rostered(world, yesterday)
    await add_applications(world.store, application("NX-0001"))
    holds = tuple(Hold(ids[a], a, yesterday, yesterday + timedelta(minutes=15)) for a in Agency)
    appointment = Appointment(
        "NX-0001", InterviewMode.JOINT, yesterday, yesterday + timedelta(minutes=15), holds
    )
    assert await appointments.book(world.store, world.settings, appointment, "schedule")
    client = await operator_client(world)

    staffing = await figure(client, "staffing")
    officers = {row["officer"]: row for row in await figure(client, "officers")}
    page = await (await client.get("/operator")).text()

    assert {(row["agency"], row["rostered"], row["booked"]) for row in staffing} == {
        ("CBSA", "1", "0"),
        ("CBP", "1", "0"),
    }
    assert len(staffing) == 8  # four 15-minute slots for each agency
    worked = officers[f"Cbsa.{yesterday:%d%H}"]
    assert (worked["rostered_hours"], worked["booked_hours"], worked["utilisation"]) == (
        "1.0",
        "0.25",
        "0.25",
    )
    assert 'id="chart-staffing"' in page and "25 %" in page


async def test_the_console_counts_e_mails_by_status_and_lists_the_undelivered(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"), application("NX-0002"))
    later = world.clock() + timedelta(days=30)  # not due: the outbox leaves them be
    for app_id in ("NX-0001", "NX-0002"):
        interview_id, _ = await world.invite(app_id)
        await world.store.invitations.queue(
            interview_id, InvitationKind.INVITATION, f"{app_id}@example.org", later
        )
    bounced, queued = [
        (await world.store.invitations.of_interview(i.id))[0]
        for i in sorted(await world.store.interviews.all(), key=lambda i: i.application_id)
    ]
    assert await world.store.invitations.claim(bounced.id)
    reason = '=HYPERLINK("http://evil.example") 550 no such user'  # an SMTP reply, anyone's
    await world.store.invitations.failed(bounced.id, InvitationStatus.BOUNCED, reason)
    client = await operator_client(world)

    counts = {row["status"]: int(row["messages"]) for row in await figure(client, "invitations")}
    undelivered = await figure(client, "undelivered")
    page = await (await client.get("/operator")).text()

    assert counts["bounced"] == 1 and counts["queued"] >= 1 and counts["sent"] == 0
    # a spreadsheet shows the reply as text, never runs it as a formula
    assert [(r["interview"], r["status"], r["reason"]) for r in undelivered] == [
        (bounced.interview_id, "bounced", "'" + reason)
    ]
    assert bounced.recipient in page and "550 no such user" in page
    assert queued.status is InvitationStatus.QUEUED


async def test_a_referred_application_interviewed_again_is_undecided_in_the_burndown_too(
    world: World,
) -> None:
    await finished(world)  # both refer: NX-0001 is referred
    await world.invite("NX-0001")  # and interviewed again
    client = await operator_client(world)

    states = {row["state"]: int(row["applications"]) for row in await figure(client, "backlog")}
    burn = [row for row in await figure(client, "burndown") if row["kind"] == "actual"]

    assert states["invited"] == 1 and states["decided"] == 0
    assert burn[-1]["remaining"] == "1"  # the two figures agree
