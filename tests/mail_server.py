"""A real SMTP server in the test's process (aiosmtpd on 127.0.0.1, a free port), whose
answers the test chooses, and the messages it accepted, parsed with the email package."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from .served import free_port


class Inbox:
    """aiosmtpd's handler: answers RCPT and DATA from the queues (else accepts) and keeps
    what it accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.senders: list[str] = []
        """Each accepted message's envelope sender (MAIL FROM), where bounces return."""
        self.rcpt_answers: list[str] = []
        self.data_answers: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answers:
            return self.data_answers.pop(0)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.senders.append(envelope.mail_from)
        return "250 2.0.0 accepted"


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """The inbox and the port. The server's own debug log (it writes each DATA line) is
    quietened: it stands for the remote mail system, whose logs are not ours."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    content: str = body.get_content()
    return content


def calendar_of(message: EmailMessage) -> bytes:
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no text/calendar attachment")
