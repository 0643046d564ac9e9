"""Handing a message to the mail system: over SMTP (aiosmtplib), or into a local Maildir
when no SMTP server is set (the demo, a machine that must send nothing out).

Either way the outcome is a `Delivery` kind, never the wording of an SMTP reply: a
'try again later' (4xx, a refused or dropped connection, a timeout) may be retried; a
recipient refused for good (5xx at RCPT) bounced; any other 5xx failed.
"""

from __future__ import annotations

import asyncio
import mailbox
from dataclasses import dataclass
from email.message import EmailMessage
from enum import Enum
from pathlib import Path
from typing import Protocol

import aiosmtplib

from common.secret import Secret

SMTP_TIMEOUT_SECONDS = 30.0
REASON_CHARS = 300
"""An SMTP reply kept as a failure's reason is cut to this length."""


class Delivery(Enum):
    RETRY = "retry"
    BOUNCED = "bounced"
    FAILED = "failed"


class NotDelivered(Exception):
    """The message was not accepted: ``kind`` says whether trying again may help."""

    def __init__(self, kind: Delivery, reason: str) -> None:
        self.kind = kind
        self.reason = reason[:REASON_CHARS]
        super().__init__(self.reason)


class Postman(Protocol):
    async def deliver(self, message: EmailMessage) -> None:
        """Return once the mail system has accepted ``message``; else `NotDelivered`."""


@dataclass(frozen=True)
class SmtpPostman:
    host: str
    port: int
    tls: str
    """starttls, tls or none (`server.setting_casts.SMTP_TLS_MODES`)."""
    username: str
    password: Secret[str]
    ca_file: Path | None = None
    """Trust only these CAs for the server's certificate (a private CA); None: the
    system's. The certificate is verified either way."""
    sender: str = ""
    """The envelope sender, to which undeliverable mail returns; empty: the From address."""
    timeout: float = SMTP_TIMEOUT_SECONDS

    async def deliver(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                sender=self.sender or None,
                hostname=self.host,
                port=self.port,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                username=self.username or None,
                password=self.password.reveal() if self.username else None,
                cert_bundle=str(self.ca_file) if self.ca_file else None,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else 550
            reason = f"{code} {refused.message}" if refused is not None else str(exc)
            raise NotDelivered(_by_code(code, Delivery.BOUNCED), reason) from exc
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"{exc.code} {exc.message}"
            raise NotDelivered(_by_code(exc.code, Delivery.FAILED), reason) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected) as exc:
            raise NotDelivered(Delivery.RETRY, f"SMTP server unreachable: {exc}") from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise NotDelivered(Delivery.RETRY, f"SMTP server timed out: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            raise NotDelivered(Delivery.FAILED, f"SMTP: {exc}") from exc
        except OSError as exc:
            raise NotDelivered(Delivery.RETRY, f"SMTP server unreachable: {exc}") from exc


def _by_code(code: int, permanent: Delivery) -> Delivery:
    return Delivery.RETRY if 400 <= code < 500 else permanent


@dataclass(frozen=True)
class MaildirPostman:
    """Messages kept in a Maildir (`mailbox.Maildir`), read with any mail reader."""

    directory: Path

    async def deliver(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._add, message)

    def _add(self, message: EmailMessage) -> None:
        self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mailbox.Maildir(self.directory, create=True).add(message)
