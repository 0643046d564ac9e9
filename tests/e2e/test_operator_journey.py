"""The operator's whole job, as they would do it: a running `nexus-interview serve`, then
the commands they type (officers, rosters for the week, the backlog's import, `schedule`),
the invitations arriving at a real SMTP server in the applicants' languages with their
calendar entries, an interview held and decided today, and the console in Chromium
(signed in with password and one-time code, checked with axe) showing the backlog
burning down, the week's messages and today's staffing, its figures downloaded as CSV,
and the same figures scraped from the metrics listener."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import icalendar
import pyotp
from playwright.async_api import Browser, Page, expect
from yarl import URL

from common.names import Agency, Seat
from recordings.keys import Identity, write_identity_file
from server.settings import Settings, load_settings

from ..fakes import nexus_interview
from ..mail_server import Inbox, calendar_of, smtp_server, text_of
from ..media import SyntheticParticipant
from ..served import (
    Scene,
    call_started,
    everyone_in_call,
    free_port,
    password,
    serve,
    stop,
    up,
)
from ..test_metrics import scrape
from .pages import screen

APPLICATIONS = 25
DAYS_ROSTERED = (2, 3, 4, 5)  # past the day's notice `schedule` gives, within its week
SLOTS_A_DAY = 4  # 09:00 to 10:00 in slots of 15 minutes
OTPAUTH = re.compile(r"otpauth://totp/\S*secret=([A-Z2-7]+)")
LINK = re.compile(r"/i/([A-Za-z0-9_-]{43})")
OPERATOR_PASSWORD = "the operator's own long password"
ZONES = ("America/Toronto", "America/Vancouver", "America/Halifax", "America/New_York")


def settings_for(tmp_path: Path, port: int, mail: dict[str, str]) -> Settings:
    recipients = {}
    for holder in ("cbsa", "cbp", "audit"):
        identity = Identity.generate()
        write_identity_file(tmp_path / "agencies" / f"{holder}.txt", identity)
        recipients[f"{holder}_recipient"] = str(identity.recipient)
    return load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "port": str(port),
            "public_url": f"http://127.0.0.1:{port}",
            **recipients,
            **mail,
        },
    )


def run(settings: Settings, *args: str, stdin: str = "") -> str:
    """A command as the operator types it, with the server's e-mail settings in its
    environment (as the deployment's environment file gives them); its output."""
    env = {
        "NEXUS_MAIL_FROM": settings.mail_from,
        "NEXUS_SMTP_HOST": settings.smtp_host,
        "NEXUS_SMTP_PORT": str(settings.smtp_port),
        "NEXUS_SMTP_TLS": settings.smtp_tls,
        "NEXUS_PUBLIC_URL": settings.public_url,
    }
    done = nexus_interview("--data-dir", str(settings.data_dir), *args, stdin=stdin, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def add_staff(settings: Settings, role: str, username: str, secret: str, *more: str) -> str:
    """The account's one-time-code secret, read from the enrolment URI it prints."""
    out = run(
        settings, role, "add", "--username", username, "--name", username.title(),
        *more, "--password-stdin", stdin=f"{secret}\n",
    )  # fmt: skip
    found = OTPAUTH.search(out)
    assert found is not None, out
    return found[1]


def office_time(settings: Settings, days: int, hour: int) -> datetime:
    zone = settings.office_time_zone
    today = datetime.now(UTC).astimezone(zone).date()
    return datetime.combine(today + timedelta(days=days), time(hour), zone)


def backlog_file(path: Path) -> Path:
    """Applications NX-0001.. in the order they applied, every third in French, zones
    across the continent."""
    rows = [
        "id,program,application_type,surname,given_names,date_of_birth,citizenship,email,"
        "applied_on,language,time_zone"
    ]
    for n in range(1, APPLICATIONS + 1):
        language = "fr" if n % 3 == 0 else "en"
        applied = (datetime(2022, 1, 1) + timedelta(days=n)).date().isoformat()
        rows.append(
            f"NX-{n:04},NEXUS,new,Tremblay,Émilie,1980-05-17,CAN,nx-{n:04}@example.org,"
            f"{applied},{language},{ZONES[n % len(ZONES)]}"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def arrived(inbox: Inbox, count: int, within: float = 60.0) -> list[EmailMessage]:
    """The server's outbox reads the queue every few seconds: the mail comes by itself."""
    for _ in range(int(within * 10)):
        if len(inbox.messages) >= count:
            break
        await asyncio.sleep(0.1)
    assert len(inbox.messages) == count, [m["To"] for m in inbox.messages]
    return list(inbox.messages)


async def interview_held_and_decided(
    settings: Settings, inbox: Inbox, totp: dict[Agency, str]
) -> None:
    """NX-0001, invited for now by `invite`: the applicant opens the link the e-mail
    brought, checks in, a call of the three with media both ways, both agencies'
    decisions, ended by the CBSA officer."""
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    out = run(settings, "invite", "NX-0001", "--starts", starts.isoformat(), "--hours", "2")
    interview = re.search(r"interview (iv_\w+)", out)
    assert interview is not None and "invitation e-mail queued" in out, out
    [invitation] = await arrived(inbox, 1)
    assert invitation["To"] == "nx-0001@example.org"
    assert invitation["Subject"] == "Your NEXUS interview"
    link = LINK.search(text_of(invitation))
    assert link is not None
    scene = Scene(settings, interview[1], link[1], {}, totp)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    browsers = await call_started(scene, URL(settings.public_url))
    try:
        await everyone_in_call(scene, browsers, people)
        for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
            code = "CA-OTH" if agency is Agency.CBSA else "US-OTH"
            status, body = await browsers[seat].post(
                f"/api/interviews/{scene.interview_id}/decision",
                {"verdict": "approve", "reason_codes": [code], "notes": ""},
            )
            assert status == 201, body
        await browsers[Seat.CBSA].end()
    finally:
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()


async def downloaded(page: Page, name: str) -> list[dict[str, str]]:
    async with page.expect_download() as started:
        await page.locator(f'a[href="/operator/figures/{name}.csv"]').click()
    saved = await (await started.value).path()
    return list(csv.DictReader(io.StringIO(await asyncio.to_thread(Path(saved).read_text))))


async def test_an_operator_goes_from_an_imported_backlog_to_a_week_of_e_mailed_interviews(
    tmp_path: Path, browser: Browser
) -> None:
    ops = f"http://127.0.0.1:{free_port()}"
    with smtp_server() as (inbox, smtp_port):
        mail = {
            "mail_from": "interviews@cbsa.example",
            "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp_port),
            "smtp_tls": "none",
        }
        settings = settings_for(tmp_path, free_port(), mail)
        server = serve(settings, **mail, metrics_listen=ops.removeprefix("http://"))
        try:
            await up(settings, server)
            await journey(tmp_path, settings, ops, inbox, browser)
        finally:
            stop(server)


async def journey(
    tmp_path: Path, settings: Settings, ops: str, inbox: Inbox, browser: Browser
) -> None:
    # Staff: one officer of each agency, and the operator.
    totp = {}
    for agency in Agency:
        username, secret = f"{agency.lower()}.one", password(agency).reveal()
        totp[agency] = add_staff(settings, "officers", username, secret, "--agency", agency)
    operator_totp = add_staff(settings, "operators", "operator.one", OPERATOR_PASSWORD)
    # The week's rosters (and today's, for the interview held now).
    for username in ("cbsa.one", "cbp.one"):
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        windows = [(now - timedelta(hours=1), now + timedelta(hours=2))]
        windows += [
            (office_time(settings, d, 9), office_time(settings, d, 10)) for d in DAYS_ROSTERED
        ]
        for starts, ends in windows:
            run(settings, "roster", "add", "--officer", username,
                "--starts", starts.isoformat(), "--ends", ends.isoformat())  # fmt: skip
    imported = run(settings, "applications", "import", str(backlog_file(tmp_path / "apps.csv")))
    assert f"{APPLICATIONS} new" in imported

    # Today's interview, then the week booked from the queue in its priority order.
    await interview_held_and_decided(settings, inbox, totp)
    capacity = SLOTS_A_DAY * len(DAYS_ROSTERED)
    booked = run(settings, "schedule", "--days", "7")
    assert f"{APPLICATIONS - 1} pending application(s); booked {capacity} joint" in booked, booked
    assert "/i/" not in booked  # links go by e-mail only
    first_in_line = {f"nx-{n:04}@example.org" for n in range(2, capacity + 2)}

    # Each booked applicant gets an invitation, in their language, with a calendar entry
    # at their appointment, and a link that opens their interview.
    messages = {m["To"]: m for m in (await arrived(inbox, capacity + 1))[1:]}
    assert set(messages) == first_in_line
    starts_seen: Counter[datetime] = Counter()
    async with aiohttp.ClientSession() as http:
        for recipient, message in messages.items():
            number = int(recipient[3:7])
            french = number % 3 == 0
            assert message["Subject"] == (
                "Votre entrevue NEXUS" if french else "Your NEXUS interview"
            )
            calendar = icalendar.Calendar.from_ical(calendar_of(message))
            [event] = calendar.walk("VEVENT")
            starts = event.decoded("dtstart")
            starts_seen[starts] += 1
            local = starts.astimezone(settings.office_time_zone)
            assert local.date() in {office_time(settings, d, 9).date() for d in DAYS_ROSTERED}
            assert time(9) <= local.time() < time(10)
            text = text_of(message)
            assert ZONES[number % len(ZONES)] in text  # the time shown in their own zone
            link = LINK.search(text)
            assert link is not None
            async with http.get(f"{settings.public_url}/i/{link[1]}") as response:
                assert response.status == 200
    assert max(starts_seen.values()) == 1  # one officer pair: never two at one time
    assert len(starts_seen) == capacity

    # The console: the backlog by state, the burn-down, the week's mail, today's staffing.
    page = await browser.new_page(accept_downloads=True)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(f"{settings.public_url}/login")
    await page.get_by_label("Username").fill("operator.one")
    await page.get_by_label("Password").fill(OPERATOR_PASSWORD)
    await page.get_by_label("One-time code").fill(pyotp.TOTP(operator_totp).now())
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{settings.public_url}/operator")
    states = page.locator("#backlog-states")
    to_invite = APPLICATIONS - 1 - capacity
    for state, count in (("to_invite", to_invite), ("invited", capacity), ("decided", 1)):
        await expect(states.locator(f'[data-state="{state}"] td')).to_have_text(str(count))
    # one decided today: the rest clear at that rate, the date drawn and given
    await expect(page.get_by_role("img", name="Applications not yet decided")).to_be_visible()
    clears = datetime.now(UTC).date() + timedelta(days=(APPLICATIONS - 1) * 7)
    await expect(page.locator("#clears-on")).to_have_attribute("datetime", clears.isoformat())
    mail_counts = page.locator("#invitation-counts")
    await expect(mail_counts.locator('[data-status="sent"] td')).to_have_text(str(capacity + 1))
    staffing = page.locator("#staffing-totals")
    for agency in Agency:
        await expect(staffing.locator(f'[data-agency="{agency.value}"] td').first).not_to_have_text(
            "0"
        )
    await screen(page, "operator-journey")
    backlog_rows = {row["state"]: row["applications"] for row in await downloaded(page, "backlog")}
    assert backlog_rows["invited"] == str(capacity) and backlog_rows["decided"] == "1"
    sent = {row["status"]: row for row in await downloaded(page, "invitations")}
    assert list(sent["sent"].values())[-1] == str(capacity + 1)
    assert problems == []

    # The metrics listener tells the same story to the people who keep the service up.
    samples = await scrape(ops)
    invitations = {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "nexus_invitations"
    }
    assert invitations["sent"] == capacity + 1 and invitations["failed"] == 0
    assert invitations["queued"] == capacity  # each booked one's reminder, due the day before
