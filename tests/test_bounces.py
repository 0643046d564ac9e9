"""Mail returned after the SMTP server accepted it: the envelope sender is the bounce
address, and a delivery status notification (RFC 3464) piped to `nexus-interview
invitations bounce`, as the mail system delivers it, marks the message it reports bounced
with the remote server's reason; a delay, an unknown message or a message that is no
notification changes nothing, and the same notification twice marks nothing twice.

The notifications are built here in the form Postfix and Exim send (the mail relay that
would send them is not run: the relay's end of it is outside this system)."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from server.settings import Settings
from server.store import Store
from server.store.invitations import InvitationStatus

from .fakes import FakeClock, nexus_interview
from .mail_server import Inbox, smtp_server
from .test_mail_delivery import invitation_of, outbox, scheduled, settings_for

UNKNOWN_USER = "smtp; 550 5.1.1 <nx-1@example.org>: Recipient address rejected: User unknown"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


def notification(
    original: EmailMessage,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = UNKNOWN_USER,
    whole: bool = False,
) -> bytes:
    """A delivery status notification for ``original``, laid out as a relay writes it:
    its headers in a text/rfc822-headers part (Postfix), or the whole of it in a
    message/rfc822 part (Exim)."""
    if whole:
        returned = "Content-Type: message/rfc822\n\n" + original.as_string()
    else:
        headers = "".join(f"{name}: {value}\n" for name, value in original.items())
        returned = "Content-Type: text/rfc822-headers\n\n" + headers
    diagnosed = f"Diagnostic-Code: {diagnostic}\n" if diagnostic else ""
    return (
        "From: MAILER-DAEMON@relay.example (Mail Delivery System)\n"
        "To: bounces@cbsa.example\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n'
        "\n"
        "--B\n"
        "Content-Type: text/plain\n"
        "\n"
        "I'm sorry to have to inform you that your message could not be delivered.\n"
        "\n"
        "--B\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; relay.example\n"
        "Arrival-Date: Thu,  3 Dec 2026 17:00:00 +0000 (UTC)\n"
        "\n"
        "Final-Recipient: rfc822; nx-1@example.org\n"
        "Original-Recipient: rfc822;nx-1@example.org\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        "Remote-MTA: dns; mx.example.org\n"
        f"{diagnosed}"
        "\n"
        "--B\n"
        f"{returned}\n"
        "--B--\n"
    ).encode()


def bounce(data_dir: Path, raw: bytes) -> str:
    done = nexus_interview("--data-dir", str(data_dir), "invitations", "bounce", stdin=raw.decode())
    assert done.returncode == 0, done.stderr
    return done.stdout


async def sent_one(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> tuple[Settings, str, EmailMessage]:
    """An invitation the SMTP server accepted: the settings, its interview, the message."""
    settings = settings_for(tmp_path, smtp[1], bounce_address="bounces@cbsa.example")
    interview_id = await scheduled(store, settings, clock, "NX-1")
    await outbox(store, settings, clock).drain()
    assert (await invitation_of(store, interview_id))[0] is InvitationStatus.SENT
    return settings, interview_id, smtp[0].messages[0]


async def test_the_envelope_sender_is_the_bounce_address(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    await sent_one(store, clock, tmp_path, smtp)
    assert smtp[0].senders == ["bounces@cbsa.example"]
    assert smtp[0].messages[0]["From"] == "nexus@cbsa.example"  # replies still go to it


@pytest.mark.parametrize("whole", [False, True], ids=["headers", "whole message"])
async def test_a_late_bounce_marks_the_message_bounced_once(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int], whole: bool
) -> None:
    settings, interview_id, original = await sent_one(store, clock, tmp_path, smtp)
    said = bounce(settings.data_dir, notification(original, whole=whole))
    assert f"of interview {interview_id}) to nx-1@example.org bounced" in said
    status, _, reason = await invitation_of(store, interview_id)
    assert status is InvitationStatus.BOUNCED
    assert reason == (
        "returned later: 550 5.1.1 <nx-1@example.org>: Recipient address rejected: User unknown"
    )
    again = bounce(settings.data_dir, notification(original, whole=whole))
    assert "nothing marked" in again
    listed = nexus_interview(
        "--data-dir", str(settings.data_dir), "invitations", "list", "--status", "bounced"
    )
    assert "User unknown" in listed.stdout and "bounced: 1" in listed.stdout


async def test_a_delay_or_an_unknown_message_changes_nothing(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings, interview_id, original = await sent_one(store, clock, tmp_path, smtp)
    delayed = notification(original, action="delayed", status="4.4.1", diagnostic="")
    assert "nothing marked" in bounce(settings.data_dir, delayed)
    stranger = EmailMessage()
    stranger["Message-ID"] = "<not-ours@elsewhere.example>"
    assert "nothing marked" in bounce(settings.data_dir, notification(stranger))
    assert (await invitation_of(store, interview_id))[0] is InvitationStatus.SENT


async def test_a_message_that_is_no_notification_is_ignored_with_the_reason(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings, interview_id, original = await sent_one(store, clock, tmp_path, smtp)
    reply = EmailMessage()
    reply["Subject"] = "Re: Your NEXUS interview"
    reply["In-Reply-To"] = original["Message-ID"]
    reply.set_content("Can I come on Tuesday instead?")
    said = bounce(settings.data_dir, reply.as_bytes())
    assert "ignored: not a delivery status notification" in said
    assert (await invitation_of(store, interview_id))[0] is InvitationStatus.SENT
    missing = nexus_interview(
        "--data-dir", str(settings.data_dir), "invitations", "bounce", str(tmp_path / "none.eml")
    )
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr
