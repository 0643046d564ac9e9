"""An application's language may be unknown: a file without one imports it as unknown
(NULL), its invitation is written in English and French (a known one in that language
only) and its pages follow the browser; a database from before this was possible keeps its
rows when it is migrated."""

from __future__ import annotations

import email
import mailbox
import sqlite3
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

import web
from server import operator
from server.i18n import Catalogs
from server.importer import COLUMNS
from server.invitations import Outbox, postman_for, queue_invitation
from server.letters import Letters
from server.settings import Settings, load_settings
from server.store import Store
from server.store.database import Database, migrations
from server.types import InterviewMode

from .fakes import FakeClock, World
from .mail_server import text_of
from .test_applicant_language import ENGLISH_BROWSER, FRENCH_BROWSER, invited, page
from .test_importer import GOOD, write_csv

WITHOUT_LANGUAGE = tuple(c for c in COLUMNS if c != "language")


def maildir_settings(tmp_path: Path) -> Settings:
    """No SMTP server: the outbox delivers to a Maildir under the data directory."""
    return load_settings({}, {"data_dir": str(tmp_path / "mail-data"), "mail_from": "n@x.example"})


async def invitation_for(
    store: Store, clock: FakeClock, tmp_path: Path, app_id: str
) -> EmailMessage:
    """The invitation e-mail the outbox delivers for an interview of ``app_id``."""
    settings = maildir_settings(tmp_path)
    starts = clock() + timedelta(days=3)
    interview_id = await store.interviews.schedule(
        app_id, InterviewMode.JOINT, starts, starts + timedelta(hours=1), b"h" * 32, "test"
    )
    assert await queue_invitation(store, settings, interview_id)
    letters = Letters(Catalogs(web.LOCALE), settings)
    await Outbox(store, settings, letters, postman_for(settings), clock, backoff_seconds=0).drain()
    box = mailbox.Maildir(settings.data_dir / "mail", factory=None, create=False)
    (raw,) = [bytes(m) for _, m in box.items()]
    parsed = email.message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_a_row_without_language_is_unknown_and_invited_in_english_and_french(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", [GOOD], WITHOUT_LANGUAGE)
    await operator.import_applications(store, path)
    assert (await store.applications.get("NX-0001")).language is None

    message = await invitation_for(store, clock, tmp_path, "NX-0001")
    assert message["Subject"] == "Your NEXUS interview / Votre entrevue NEXUS"
    text = text_of(message)
    assert "Hello Émilie Tremblay," in text and "Bonjour Émilie Tremblay," in text
    assert text.index("Hello") < text.index("Bonjour")


async def test_a_row_marked_fr_with_spaces_is_invited_in_french_only(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    await operator.import_applications(
        store, write_csv(tmp_path / "a.csv", [{**GOOD, "language": "FR "}])
    )
    assert (await store.applications.get("NX-0001")).language == "fr"

    message = await invitation_for(store, clock, tmp_path, "NX-0001")
    assert message["Subject"] == "Votre entrevue NEXUS"
    text = text_of(message)
    assert "Bonjour Émilie Tremblay," in text and "Hello" not in text


async def test_an_application_of_no_known_language_follows_the_browser(world: World) -> None:
    token = await invited(world, None)
    french, english = await world.client(), await world.client()
    assert (await page(french, f"/i/{token}", FRENCH_BROWSER))[0] == "fr"
    assert (await page(english, f"/i/{token}", ENGLISH_BROWSER))[0] == "en"


# --- migrating a database from before unknown languages -----------------------------------

_OLD_ROWS = [
    ("NX-0001", "NEXUS", "new", "Tremblay", "Émilie", "1980-05-17", "CAN", "e@x.org",
     "2022-06-01", None, "pending", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "fr", None),
    ("FT-0002", "FAST", "renewal", "Smith", "Ann", "1975-01-02", "USA", "a@x.org",
     "2022-06-02", "2023-01-31", "scheduled", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
     "en", "America/Vancouver"),
]  # fmt: skip
_INSERT_OLD = "INSERT INTO applications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


@pytest.fixture
def before_unknown_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrations package holding every migration before the one under test."""
    package = tmp_path / "packages" / "before_unknown_language"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    found = migrations()
    under_test = next(v for v, name, _ in found if name == "unknown_language")
    for version, name, sql in found:
        if version < under_test:
            (package / f"{version:04d}_{name}.sql").write_text(sql, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "packages"))
    return package.name


def _columns(path: Path) -> dict[str, tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return {row[1]: row[2:] for row in db.execute("PRAGMA table_info(applications)")}


async def test_migrating_keeps_every_application_and_lets_the_language_be_unknown(
    tmp_path: Path, before_unknown_language: str
) -> None:
    path = tmp_path / "nexus.db"
    old = Database(path, migrations_package=before_unknown_language)
    await old.open()
    async with old.transaction() as db:
        await db.executemany(_INSERT_OLD, _OLD_ROWS)
        await db.execute(
            "INSERT INTO application_status_history"
            " (application_id, from_status, to_status, reason, actor, at)"
            " VALUES ('NX-0001', NULL, 'pending', 'imported', 'test', '2026-01-01T00:00:00Z')"
        )
    await old.close()
    before = _columns(path)
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE applications SET language = NULL WHERE id = 'NX-0001'")

    migrated = Database(path)
    await migrated.open()
    await migrated.close()

    after = _columns(path)
    assert list(after) == list(before)
    assert {k: v for k, v in after.items() if k != "language"} == {
        k: v for k, v in before.items() if k != "language"
    }
    assert after["language"] == ("TEXT", 0, None, 0)  # nullable, no default
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys = ON")
        assert db.execute("SELECT * FROM applications ORDER BY id DESC").fetchall() == _OLD_ROWS
        assert db.execute("SELECT count(*) FROM application_status_history").fetchone() == (1,)
        schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'applications'").fetchone()
        assert "WITHOUT ROWID" in schema[0]
        db.execute("UPDATE applications SET language = NULL WHERE id = 'NX-0001'")
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE applications SET language = 'de' WHERE id = 'FT-0002'")
        with pytest.raises(sqlite3.IntegrityError):  # a renewal still needs its card_expiry
            db.execute("UPDATE applications SET card_expiry = NULL WHERE id = 'FT-0002'")
        with pytest.raises(sqlite3.IntegrityError):  # references to it still hold
            db.execute(
                "INSERT INTO application_status_history"
                " (application_id, from_status, to_status, reason, actor, at)"
                " VALUES ('NX-9999', NULL, 'pending', 'imported', 'test', 'now')"
            )
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
