"""E-mail over a secured SMTP connection, against a real aiosmtpd that requires STARTTLS
before it takes a login: its certificate is issued by a private CA the settings name
(`NEXUS_SMTP_CA_FILE`), and the user name and password are checked by the server. A
certificate that does not chain to that CA is never trusted, and a login is never offered
on a connection without TLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from common.errors import SettingError
from server.invitations import postman_for
from server.mail import Delivery, NotDelivered
from server.settings import load_settings

from .certificates import TestCA
from .mail_server import Inbox
from .served import free_port

USERNAME, PASSWORD = "nexus-mailer", "relay password 1"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=good, handled=False)  # else aiosmtpd sends no 535


@contextmanager
def secured_smtp(ca: TestCA) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server with a certificate from ``ca`` that refuses mail before STARTTLS
    and a login."""
    issued = ca.issue("smtp", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=check_login,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "nexus@cbsa.example", "a@example.org", "Hi"
    mail.set_content("Your interview")
    return mail


def mail_settings(tmp_path: Path, port: int, **more: str) -> Any:
    return load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "mail_from": "nexus@cbsa.example",
            "smtp_host": "127.0.0.1",
            "smtp_port": str(port),
            "smtp_tls": "starttls",
            "smtp_username": USERNAME,
            "smtp_password": PASSWORD,
            **more,
        },
    )


async def test_mail_goes_over_starttls_to_a_relay_of_a_private_ca_with_a_login(
    tmp_path: Path,
) -> None:
    ca = TestCA.create(tmp_path / "ca")
    with secured_smtp(ca) as (inbox, port):
        settings = mail_settings(tmp_path, port, smtp_ca_file=str(ca.cert))
        await postman_for(settings).deliver(message())
    assert [m["Subject"] for m in inbox.messages] == ["Hi"]


async def test_a_wrong_password_is_refused_by_the_relay_and_not_delivered(
    tmp_path: Path,
) -> None:
    ca = TestCA.create(tmp_path / "ca")
    with secured_smtp(ca) as (inbox, port):
        settings = mail_settings(
            tmp_path, port, smtp_ca_file=str(ca.cert), smtp_password="not the password"
        )
        with pytest.raises(NotDelivered) as refused:
            await postman_for(settings).deliver(message())
    assert refused.value.kind is Delivery.FAILED
    assert "535" in refused.value.reason
    assert inbox.messages == []


async def test_a_relay_whose_certificate_another_ca_issued_is_not_trusted(
    tmp_path: Path,
) -> None:
    ca, other = TestCA.create(tmp_path / "ca"), TestCA.create(tmp_path / "other", "Other CA")
    with secured_smtp(ca) as (inbox, port):
        for trusted in (str(other.cert), ""):  # another private CA; the system's CAs
            settings = mail_settings(tmp_path, port, smtp_ca_file=trusted)
            with pytest.raises(NotDelivered) as refused:
                await postman_for(settings).deliver(message())
            assert "certificate verify failed" in refused.value.reason
    assert inbox.messages == []


def test_a_login_without_tls_is_refused_as_a_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="password in clear"):
        mail_settings(tmp_path, 25, smtp_tls="none")
