"""The server-wide log of closed sessions (`recordings.closed_sessions`), on real signed
session logs in a records directory: each closed session is listed once with its final
checkpoint, and a session deleted whole, rolled back or rewritten is reported against it."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.closed_sessions import (
    CLOSED_SESSIONS,
    ClosedSessionsLog,
    check_record,
    check_session,
    missing_sessions,
    read_closed_sessions,
)
from recordings.errors import RecordingError
from recordings.record_faults import INCOMPLETE
from recordings.session_record import (
    CHECKPOINTS,
    EVENTS,
    SessionLog,
    canonical,
    session_origin,
)
from recordings.tlog import NoteSigner, NoteVerifier
from recordings.witness_protocol import CosignatureVerifier, Cosigner

LOG_NAME = "nexus.test"
SERVER = NoteSigner(LOG_NAME, Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))
VERIFIERS = [NoteVerifier.parse(SERVER.verifier_key)]


def closed_session(records: Path, interview: str, events: int = 3) -> SessionLog:
    """A session that consented, went on for a while, and closed: checkpointed on the way
    and at its close."""
    log = SessionLog(records / interview, session_origin(LOG_NAME, interview), SERVER)
    log.append("consent", version="v1")
    log.checkpoint()
    for n in range(events):
        log.append("note", n=n)
    log.checkpoint()
    log.append("close")
    log.checkpoint()
    log.close_file()
    return log


def entries(records: Path) -> list[dict[str, object]]:
    lines = (records / CLOSED_SESSIONS / EVENTS).read_bytes().splitlines()
    return [msgspec.json.decode(line) for line in lines]


def test_a_closed_session_is_listed_once_with_its_final_checkpoint(tmp_path: Path) -> None:
    records = tmp_path / "records"
    session = closed_session(records, "iv_1")
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    entry = closed_log.add_session(session.directory)
    assert entry is not None and entry.size == 5
    assert closed_log.add_session(session.directory) is None  # a retry changes nothing
    closed_log.close()
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)  # a restart
    assert closed_log.add_session(session.directory) is None
    closed_log.close()
    [listed] = entries(records)
    final = (session.directory / CHECKPOINTS / f"{5:010d}.note").read_text().split("\n")
    assert listed["kind"] == "closed" and listed["interview"] == "iv_1"
    assert listed["origin"] == final[0] == f"{LOG_NAME}/interview/iv_1"
    assert (listed["size"], listed["root"]) == (5, final[2])
    closed = read_closed_sessions(records, VERIFIERS)
    assert closed.problems == [] and closed.size == 1
    assert closed.origin == f"{LOG_NAME}/closed-sessions"
    assert closed.entries["iv_1"].root == base64.b64decode(final[2])
    assert check_record(closed, session.directory, VERIFIERS) == []


def test_a_session_deleted_whole_is_reported(tmp_path: Path) -> None:
    records = tmp_path / "records"
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    for interview in ("iv_1", "iv_2"):
        closed_log.add_session(closed_session(records, interview).directory)
    closed_log.close()
    shutil.rmtree(records / "iv_2")
    closed = read_closed_sessions(records, VERIFIERS)
    assert closed.problems == []
    assert missing_sessions(closed, records) == [
        "iv_2 is listed as closed with 5 events but its record is missing: it was deleted whole"
    ]


def test_a_session_rolled_back_to_an_earlier_checkpoint_is_reported(tmp_path: Path) -> None:
    records = tmp_path / "records"
    session = closed_session(records, "iv_1")
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    closed_log.add_session(session.directory)
    closed_log.close()
    # back to the checkpoint of 4 events, its close and the later note gone: a record
    # that checks as a whole on its own
    held = (session.directory / EVENTS).read_bytes().splitlines(keepends=True)
    (session.directory / EVENTS).write_bytes(b"".join(held[:4]))
    (session.directory / CHECKPOINTS / f"{5:010d}.note").unlink()
    closed = read_closed_sessions(records, VERIFIERS)
    rolled_back = ["iv_1 was closed with 5 events; its record holds 4: it was rolled back"]
    assert check_record(closed, session.directory, VERIFIERS) == rolled_back
    entry = closed.entries["iv_1"]
    assert check_session(closed, "iv_1", 4, b"\0" * 32) == rolled_back
    assert check_session(closed, "iv_1", 5, entry.root) == []
    assert check_session(closed, "iv_1", 5, b"\0" * 32) == [
        "iv_1 was closed with 5 events and another root hash: its record was rewritten"
    ]


def test_a_session_rewritten_and_re_signed_is_reported(tmp_path: Path) -> None:
    """What only the server's key could do: the log rewritten from an event on, and
    signed again. Its own checkpoints all match; the closed log's root does not."""
    records = tmp_path / "records"
    session = closed_session(records, "iv_1")
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    closed_log.add_session(session.directory)
    closed_log.close()
    shutil.rmtree(session.directory)
    forged = SessionLog(session.directory, session_origin(LOG_NAME, "iv_1"), SERVER)
    forged.append("consent", version="v2")
    for n in range(3):
        forged.append("note", n=n)
    forged.append("close")
    forged.checkpoint()
    forged.append("note", n=9)  # and more, after the close
    forged.checkpoint()
    closed = read_closed_sessions(records, VERIFIERS)
    assert check_record(closed, session.directory, VERIFIERS) == [
        "iv_1 was closed with 5 events and another root hash: its record was rewritten "
        "(it now holds 6)"
    ]


def test_events_after_the_close_other_than_shreds_are_reported(tmp_path: Path) -> None:
    records = tmp_path / "records"
    session = closed_session(records, "iv_1")
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    closed_log.add_session(session.directory)
    closed_log.close()
    reopened = SessionLog(session.directory, session_origin(LOG_NAME, "iv_1"), SERVER)
    reopened.append("shred", file="x.age", sha256="0" * 64, reason="retention")
    reopened.checkpoint()
    closed = read_closed_sessions(records, VERIFIERS)
    assert check_record(closed, session.directory, VERIFIERS) == []  # may follow a close
    reopened.append("end")
    reopened.checkpoint()
    assert check_record(closed, session.directory, VERIFIERS) == [
        "iv_1 was closed with 5 events; its record holds 7: events were written after its "
        "close (end)"
    ]


def test_an_ended_session_not_yet_listed_is_incomplete_and_a_running_one_is_not_said(
    tmp_path: Path,
) -> None:
    records = tmp_path / "records"
    ended = closed_session(records, "iv_1")
    running = SessionLog(records / "iv_2", session_origin(LOG_NAME, "iv_2"), SERVER)
    running.append("consent", version="v1")
    running.checkpoint()
    closed = read_closed_sessions(records, VERIFIERS)  # no closed log yet: nothing wrong
    assert closed.problems == [] and closed.entries == {}
    [problem] = check_record(closed, ended.directory, VERIFIERS)
    assert problem == f"{INCOMPLETE}iv_1 is not yet listed in the log of closed sessions"
    assert check_record(closed, running.directory, VERIFIERS) == []


def test_entries_a_crash_left_unsigned_are_cut_and_the_session_listed_again(
    tmp_path: Path,
) -> None:
    records = tmp_path / "records"
    first, second = closed_session(records, "iv_1"), closed_session(records, "iv_2")
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    closed_log.add_session(first.directory)
    closed_log.close()
    unsigned = canonical({"seq": 1, "at": "x", "kind": "closed", "interview": "iv_2"})
    with (records / CLOSED_SESSIONS / EVENTS).open("ab") as events:
        events.write(unsigned + b"\n" + b'{"seq": 2, "ha')  # a crash mid-write
    read = read_closed_sessions(records, VERIFIERS)
    assert set(read.entries) == {"iv_1"} and not read.failed
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    assert closed_log.add_session(second.directory) is not None
    closed_log.close()
    assert [e["interview"] for e in entries(records)] == ["iv_1", "iv_2"]
    assert read_closed_sessions(records, VERIFIERS).problems == []


def test_a_session_with_a_fault_is_not_listed(tmp_path: Path) -> None:
    records = tmp_path / "records"
    session = closed_session(records, "iv_1")
    with (session.directory / EVENTS).open("ab") as events:
        events.write(b'{"kind":"unsigned"}\n')
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    with pytest.raises(RecordingError, match="cannot be listed as closed"):
        closed_log.add_session(session.directory)
    closed_log.close()
    assert read_closed_sessions(records, VERIFIERS).entries == {}


def test_witnesses_who_have_not_cosigned_the_newest_checkpoint_are_named(
    tmp_path: Path,
) -> None:
    records = tmp_path / "records"
    closed_log = ClosedSessionsLog(records, LOG_NAME, SERVER)
    closed_log.add_session(closed_session(records, "iv_1").directory)
    closed_log.close()
    cosigner = Cosigner("cbsa.test/witness", Ed25519PrivateKey.generate())
    note = records / CLOSED_SESSIONS / CHECKPOINTS / f"{1:010d}.note"
    key = CosignatureVerifier.parse(cosigner.verifier_key)
    closed = read_closed_sessions(records, VERIFIERS, [key])
    assert closed.witnessed_by == []
    assert closed.problems == [
        f"{INCOMPLETE}the closed-sessions log's newest checkpoint (1 entries) is not yet "
        "cosigned by cbsa.test/witness"
    ]
    text = note.read_text()
    note.write_text(text + cosigner.cosign(text[: text.index("\n\n") + 1], 1_790_000_000))
    closed = read_closed_sessions(records, VERIFIERS, [key])
    assert closed.witnessed_by == ["cbsa.test/witness"] and closed.problems == []
