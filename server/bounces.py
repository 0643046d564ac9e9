"""Mail the mail system returns after accepting it: a relay takes a message, then finds
the mailbox gone or full, and sends a delivery status notification (RFC 3464) to the
envelope sender (`Settings.bounce_address`). The mail system hands each returned message
to `nexus-interview invitations bounce`, and the message it reports on, found by its
Message-ID, is marked bounced with the reason the remote server gave, for the operator to
see beside those refused at once.

Only a notification whose recipient's action is ``failed`` marks anything: ``delayed``
(still trying), ``delivered``, ``relayed`` and ``expanded`` do not. Anything that is not a
notification, or names no message we sent, changes nothing.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser

from .store import Store
from .store.invitations import Invitation


class NotABounce(ValueError):
    """The message is not a delivery status notification about one of ours."""


@dataclass(frozen=True)
class Returned:
    """One recipient a notification reports as failed."""

    message_id: str
    """The Message-ID of the message returned (each of ours has one recipient)."""
    reason: str
    """The remote server's words (Diagnostic-Code), else the status code."""


def returned(raw: bytes) -> list[Returned]:
    """The recipients ``raw`` reports failed, with the message they were sent; empty when
    it reports no failure (a delay, say). NotABounce if it is no notification, or does not
    say which message it returns."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    if parsed.get_content_type() != "multipart/report":
        raise NotABounce("not a delivery status notification (multipart/report)")
    status: Message | None = None
    original: Message | None = None
    for part in parsed.iter_parts():
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            status = part
        elif kind in ("text/rfc822-headers", "text/global-headers"):
            headers = part.get_payload(decode=True)
            if isinstance(headers, bytes):
                original = HeaderParser().parsestr(headers.decode(errors="replace"))
        elif kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original = inner[0]
    if status is None:
        raise NotABounce("the report has no delivery status part")
    message_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    if not message_id:
        raise NotABounce("the report does not include the returned message's Message-ID")
    fields = status.get_payload()
    if not isinstance(fields, list):
        raise NotABounce("the delivery status part cannot be read")
    found = []
    for recipient in fields[1:]:  # the first block is about the message, then one each
        if not isinstance(recipient, Message):
            continue
        if str(recipient.get("Action", "")).strip().lower() != "failed":
            continue
        diagnostic = _unfold(recipient.get("Diagnostic-Code"))
        code = _unfold(recipient.get("Status"))
        reason = diagnostic.split(";", 1)[-1].strip() if diagnostic else f"status {code}"
        found.append(Returned(message_id, reason or "returned undelivered"))
    return found


async def record(store: Store, raw: bytes) -> list[Invitation]:
    """The messages ``raw`` returns, marked bounced (those marked before are not marked
    again, so the same notification twice changes nothing twice)."""
    marked = []
    for failure in returned(raw):
        reason = f"returned later: {failure.reason}"[:500]
        invitation = await store.invitations.bounced_late(failure.message_id, reason)
        if invitation is not None:
            marked.append(invitation)
    return marked


def _unfold(value: object) -> str:
    return " ".join(str(value).split()) if value else ""
