"""A session record verifies, and each kind of tampering is caught with one message of its own."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.age import AgeWriter, decrypt
from recordings.errors import NoMatchingIdentity
from recordings.keys import Identity
from recordings.session_record import EVENTS, SessionLog, canonical, verify_session
from recordings.shredding import shred
from recordings.tlog import NoteSigner, NoteVerifier, parse_note
from recordings.witness_protocol import CosignatureVerifier, Cosigner

from .fakes import nexus_interview

ORIGIN = "nexus.example/interview/iv_1"  # sessions below live in directories named iv_1
SIGNER = NoteSigner("nexus-server", Ed25519PrivateKey.generate())
VERIFIERS = [NoteVerifier.parse(SIGNER.verifier_key)]
WITNESS = Cosigner("agency-witness", Ed25519PrivateKey.generate())
WITNESSES = [CosignatureVerifier.parse(WITNESS.verifier_key)]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return tmp_path / "iv_1"


def record(directory: Path, close: bool = True, seed: int = 1) -> SessionLog:
    log = SessionLog(directory, ORIGIN, SIGNER)
    log.append("consent", text_version="2026-11-01", seat="applicant")
    recipient = Identity.generate().recipient
    for n in range(3):
        name = f"cbsa-{n + 1:05d}.webm.age"
        sink = io.BytesIO()
        writer = AgeWriter(sink, [recipient])
        writer.write(os.urandom(1000 + n + seed))
        writer.close()
        (directory / name).write_bytes(sink.getvalue())
        digest = hashlib.sha256(sink.getvalue()).hexdigest()
        log.append("segment", seat="cbsa", file=name, sha256=digest, size=len(sink.getvalue()))
        log.checkpoint()
    log.append("decision", agency="CBSA", sha256="ab" * 32)
    if close:
        closed(log)
    return log


def closed(log: SessionLog) -> None:
    """The interview's close, its checkpoint, cosigned by the agency's witness."""
    log.append("close")
    size = log.checkpoint()
    log.close_file()
    note = log.directory / "checkpoints" / f"{size:010d}.note"
    text, _ = parse_note(note.read_bytes())
    note.write_text(note.read_text() + WITNESS.cosign(text, 1_790_000_000))


def check(directory: Path) -> list[str]:
    return verify_session(directory, VERIFIERS, ORIGIN, WITNESSES).problems


def test_an_untouched_session_verifies(session: Path) -> None:
    record(session)
    result = verify_session(session, VERIFIERS, ORIGIN, WITNESSES)
    assert result.ok, result.problems
    assert (result.events, result.segments, result.checkpoints) == (6, 3, 4)
    for line in (session / EVENTS).read_bytes().splitlines():
        assert canonical(json.loads(line)) == line


def edit_events(directory: Path, change: object) -> None:
    lines = (directory / EVENTS).read_bytes().splitlines()
    lines = change(lines)  # type: ignore[operator]
    (directory / EVENTS).write_bytes(b"".join(line + b"\n" for line in lines))


def _edit_one(lines: list[bytes]) -> list[bytes]:
    event = json.loads(lines[4])
    event["agency"] = "CBP"
    return [*lines[:4], canonical(event), *lines[5:]]


def _flip_segment(d: Path) -> None:
    data = bytearray((d / "cbsa-00002.webm.age").read_bytes())
    data[-5] ^= 1
    (d / "cbsa-00002.webm.age").write_bytes(bytes(data))


def _truncate_segment(d: Path) -> None:
    path = d / "cbsa-00001.webm.age"
    path.write_bytes(path.read_bytes()[:-100])


def _replace_signature(d: Path) -> None:
    other = NoteSigner("nexus-server", Ed25519PrivateKey.generate())
    path = sorted((d / "checkpoints").iterdir())[1]
    body = path.read_text().split("\n\n")[0] + "\n"
    forged = other.signature_line(body).replace(
        other.signature_line(body).split()[2][:8], SIGNER.signature_line(body).split()[2][:8]
    )
    path.write_text(body + "\n" + forged)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_flip_segment, "segment cbsa-00002.webm.age does not match its hash"),
        (_truncate_segment, "segment cbsa-00001.webm.age does not match its hash"),
        (lambda d: (d / "cbsa-00003.webm.age").unlink(), "segment cbsa-00003.webm.age is missing"),
        (
            lambda d: edit_events(d, _edit_one),
            "one of events 4-5 was altered, replaced or moved: checkpoint 6 does not match them",
        ),
        (
            lambda d: edit_events(d, lambda ls: [ls[0], ls[2], ls[1], *ls[3:]]),
            "the events were reordered: event 2 stands where event 1 belongs",
        ),
        (
            lambda d: edit_events(d, lambda ls: [*ls[:2], *ls[3:]]),
            "event 2 was removed: event 3 follows event 1",
        ),
        (
            lambda d: edit_events(d, lambda ls: [*ls[:2], ls[1], *ls[2:]]),
            "event 1 appears again as event 2",
        ),
        (
            lambda d: edit_events(d, lambda ls: ls[:-1]),
            "the log was cut short: checkpoint 6 signs 6 events, event 5 is missing",
        ),
        (
            lambda d: edit_events(d, lambda ls: [ls[0].replace(b'{"at"', b'{ "at"'), *ls[1:]]),
            "event 0 (consent) was altered: it is not in the canonical JSON",
        ),
        (_replace_signature, "does not match the note"),
        (lambda d: (d / "cbsa-00009.webm.age").write_bytes(b"x"), "is not listed in the log"),
    ],
)
def test_each_kind_of_tampering_is_named_once(session: Path, tamper: object, message: str) -> None:
    record(session)
    tamper(session)  # type: ignore[operator]
    problems = check(session)
    assert len(problems) == 1 and message in problems[0], problems


def test_checkpoints_refused_for_one_reason_are_one_problem(session: Path) -> None:
    record(session)
    stranger = NoteVerifier.parse(
        NoteSigner("nexus-server", Ed25519PrivateKey.generate()).verifier_key
    )
    problems = verify_session(session, [stranger], ORIGIN).problems
    assert problems == [
        "4 checkpoints (0000000002.note to 0000000006.note): the note carries no signature "
        "by a trusted key"
    ]


def test_segments_swapped_between_sessions_are_caught(session: Path) -> None:
    other = session.parent / "elsewhere" / "iv_1"
    record(session, seed=1)
    record(other, seed=2)
    shutil.copy(other / "cbsa-00001.webm.age", session / "cbsa-00001.webm.age")
    assert check(session) == [
        "segment cbsa-00001.webm.age does not match its hash: it was altered or replaced"
    ]


def test_checkpoints_of_another_interview_are_refused(session: Path) -> None:
    record(session)
    stranger = session.parent / "iv_2"
    shutil.copytree(session, stranger)
    problems = verify_session(stranger, VERIFIERS).problems
    assert problems == [
        "4 checkpoints (0000000002.note to 0000000006.note): of another log "
        "(nexus.example/interview/iv_1)"
    ]


def test_a_session_cut_short_names_its_last_good_checkpoint(session: Path) -> None:
    record(session, close=False)  # the server died: no end, no final checkpoint
    result = verify_session(session, VERIFIERS, ORIGIN)
    assert not result.complete and not result.ok
    assert result.last_checkpoint == 4
    assert result.problems == [
        "incomplete: the log ends without a final checkpoint; last good checkpoint covers "
        "4 of 5 events"
    ]


def test_a_session_without_consent_does_not_verify(session: Path) -> None:
    log = SessionLog(session, ORIGIN, SIGNER)
    log.append("join", seat="applicant")
    closed(log)
    assert check(session) == ["no consent event"]


def test_records_verify_on_the_command_line(session: Path) -> None:
    record(session)
    witness = ("--witness", WITNESS.verifier_key)
    ok = nexus_interview("records", "verify", str(session), "--key", SIGNER.verifier_key, *witness)
    assert ok.returncode == 0, ok.stderr
    assert "VERIFIED" in ok.stdout and "6 events" in ok.stdout
    (session / "cbsa-00002.webm.age").unlink()
    bad = nexus_interview("records", "verify", str(session), "--key", SIGNER.verifier_key, *witness)
    assert bad.returncode == 3
    assert "FAILED: segment cbsa-00002.webm.age is missing" in bad.stderr
    wrong_key = nexus_interview("records", "verify", str(session), "--key", "junk")
    assert wrong_key.returncode == 1 and "not a note verifier key" in wrong_key.stderr


def test_a_log_reopened_later_carries_on_and_still_verifies(session: Path) -> None:
    log = record(session, close=False)
    log.close()  # a call's end: the interview goes on
    again = SessionLog(session, ORIGIN, SIGNER)
    again.append("join", seat="applicant")
    closed(again)
    result = verify_session(session, VERIFIERS, ORIGIN, WITNESSES)
    assert result.ok, result.problems
    assert result.events == 8


def test_shredding_destroys_the_keys_logs_it_and_still_verifies(session: Path) -> None:
    log = SessionLog(session, ORIGIN, SIGNER)
    log.append("consent", text_version="2026-11-01", seat="applicant")
    identity = Identity.generate()
    sink = io.BytesIO()
    writer = AgeWriter(sink, [identity.recipient])
    writer.write(b"media" * 1000)
    writer.close()
    (session / "cbsa-00001.webm.age").write_bytes(sink.getvalue())
    log.append(
        "segment",
        seat="cbsa",
        file="cbsa-00001.webm.age",
        sha256=hashlib.sha256(sink.getvalue()).hexdigest(),
        size=len(sink.getvalue()),
    )
    assert decrypt(sink.getvalue(), [identity]) == b"media" * 1000
    closed(log)
    log = SessionLog(session, ORIGIN, SIGNER)  # retention ends long after the close
    assert shred(session, log, "retention expired") == ["cbsa-00001.webm.age"]
    log.close_file()
    with pytest.raises(NoMatchingIdentity):
        decrypt((session / "cbsa-00001.webm.age").read_bytes(), [identity])
    result = verify_session(session, VERIFIERS, ORIGIN, WITNESSES)
    assert result.ok, result.problems
    assert result.shredded == 1
