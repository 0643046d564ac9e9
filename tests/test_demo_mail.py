"""The demo's invitation e-mails stay on this machine: in a Maildir in its data directory,
whatever SMTP server the environment names, in each applicant's language."""

from __future__ import annotations

import mailbox
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import web
from server.demo import demo_settings, prepare
from server.i18n import Catalogs
from server.invitations import Outbox, postman_for
from server.letters import Letters
from server.settings import load_settings
from server.store import Store
from server.store.invitations import InvitationStatus

from .mail_server import text_of


async def test_the_demo_delivers_invitations_to_a_local_maildir_in_both_languages(
    tmp_path: Path,
) -> None:
    asked = load_settings({"NEXUS_SMTP_HOST": "smtp.example.org"}, {})
    settings = demo_settings(asked, root=tmp_path)
    assert settings.smtp_host == ""
    assert settings.mail_from
    _, links = await prepare(settings, None)
    store = await Store(settings.database_path, settings=settings).open()
    try:
        letters = Letters(Catalogs(web.LOCALE), settings)
        sender = Outbox(store, settings, letters, postman_for(settings))
        while await sender.drain():
            pass
        counts = await store.invitations.counts()
    finally:
        await store.close()
    assert counts[InvitationStatus.SENT] == len(links)
    box = mailbox.Maildir(settings.data_dir / "mail", factory=None, create=False)
    messages = [message_from_bytes(m.as_bytes(), policy=default) for _, m in box.items()]
    assert all(isinstance(m, EmailMessage) for m in messages)
    subjects = {str(m["Subject"]) for m in messages}
    assert subjects == {"Your NEXUS interview", "Votre entrevue NEXUS"}
    assert all("/i/" in text_of(m) for m in messages if isinstance(m, EmailMessage))
