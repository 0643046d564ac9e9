"""A session record on disk, and its verification.

Layout of ``<records>/<interview id>/``::

    events.jsonl               one canonical-JSON event per line (sorted keys, no spaces),
                               each an RFC 9162 leaf; no personal data, only hashes
    checkpoints/<size>.note    C2SP checkpoints of the event log, Ed25519 signed notes
    <seat>-<n>.webm.age        media segments, listed by ``segment`` events with their
                               SHA-256 and size; while one is written, ``media`` events
                               sign its first bytes as they are sealed

`SessionLog` writes it as the interview goes; after a crash, `cut_to_last_checkpoint`
takes it back to what was signed; `verify_session` is what `records verify` and the
audit console run: every line canonical and in sequence, every checkpoint signed
by a trusted key and matching the events (which also proves successive checkpoints
consistent), every listed segment present with its hash, nothing unlisted, consent present; and
complete only as `record_completeness` says (the interview closed, and every witness
given cosigned the checkpoint of its close). Each fault is reported once, where it
starts (`record_faults`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from .errors import RecordingError
from .private_files import private_directory, private_opener, replace_privately
from .record_completeness import completeness
from .record_faults import (
    INCOMPLETE,
    LogFault,
    altered,
    cut_short,
    files_named,
    media_reports,
    mismatched_files,
    out_of_sequence,
    refused_notes,
    torn_tail,
    unreadable_event,
    what,
)
from .tlog import (
    EMPTY_ROOT,
    Checkpoint,
    LogError,
    NoteSigner,
    NoteVerifier,
    RunningRoot,
    leaf_hash,
    open_note,
    sign_note,
)
from .witness_keys import WitnessKey

EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints"
_encoder = msgspec.json.Encoder(order="sorted")


def canonical(event: dict[str, Any]) -> bytes:
    return _encoder.encode(event)


class SessionLog:
    """Appends and checkpoints may come from different threads: a checkpoint covers
    exactly the events appended before it looked, and its note is written only once they
    are on disk. `recordings.group_commit` runs the checkpoints in a thread."""

    def __init__(self, directory: Path, origin: str, signer: NoteSigner) -> None:
        self.directory = directory
        self._origin = origin
        self._signer = signer
        private_directory(directory / CHECKPOINTS)
        self._root = RunningRoot()
        if (directory / EVENTS).exists():  # a room reopened: carry on the same log
            held = (directory / EVENTS).read_bytes()
            if held and not held.endswith(b"\n"):
                # the next event would be glued onto the torn one, and lost with it
                raise RecordingError(
                    "the session log {path} ends in a half-written event; cut it back to "
                    "its last checkpoint before writing to it",
                    path=str(directory / EVENTS),
                )
            for line in held.splitlines():
                self._root.append(leaf_hash(line))
        self._events = open(directory / EVENTS, "ab", buffering=0, opener=private_opener)  # noqa: SIM115
        self._appending = threading.Lock()  # the file's lines and the tree agree
        self._checkpointing = threading.Lock()  # one checkpoint at a time; the file stays open

    @property
    def size(self) -> int:
        """How many events the log holds."""
        return self._root.size

    def append(self, kind: str, **fields: Any) -> int:
        """Write one event; returns its sequence number."""
        with self._appending:
            seq = self._root.size
            at = datetime.now(UTC).isoformat(timespec="milliseconds")
            line = canonical({"seq": seq, "at": at, "kind": kind, **fields})
            self._events.write(line + b"\n")
            self._root.append(leaf_hash(line))
        return seq

    def checkpoint(self) -> int:
        """Sign the log as it stands, once its events are fsynced; returns how many events
        the checkpoint covers. A note already written for that size is kept (it may carry
        witnesses' cosignatures)."""
        with self._checkpointing:
            with self._appending:
                size, root = self._root.size, self._root.root()
            os.fsync(self._events.fileno())  # covers at least the first `size` events
            path = self.directory / CHECKPOINTS / f"{size:010d}.note"
            if not path.exists():
                note = sign_note(Checkpoint(self._origin, size, root).body(), [self._signer])
                replace_privately(path, note.encode("utf-8"))
            return size

    def close_file(self) -> None:
        """Close the events file, after any checkpoint under way; safe twice."""
        with self._checkpointing:
            self._events.close()

    def close(self, **fields: Any) -> None:
        """End the log: an ``end`` event, a checkpoint covering it, the file closed."""
        if not self._events.closed:
            self.append("end", **fields)
            self.checkpoint()
            self.close_file()


def cut_to_last_checkpoint(directory: Path, verifiers: Sequence[NoteVerifier]) -> int:
    """After a crash, cut ``directory``'s events back to exactly those its last checkpoint
    signed by ``verifiers`` covers (none if it has no checkpoint); returns how many that
    is. Events after it, whole or half-written, were never signed: nobody can tell them
    from forgeries. Nothing else is removed, and a log that ends at its last checkpoint
    is left as it is.

    Refuses (`RecordingError`), changing nothing, unless every checkpoint is one of this
    log's, signed by ``verifiers`` and matching the events: cutting would then remove
    signed events (a checkpoint key replaced, an events file damaged), which only a person
    may decide."""
    path = directory / EVENTS
    if not path.exists():
        return 0
    check = check_log(directory, verifiers, _belongs(directory))
    notes = len(list((directory / CHECKPOINTS).glob("*.note")))
    empty = 1 if 0 in check.notes and check.notes[0].root == EMPTY_ROOT else 0
    if notes != check.checkpoints + empty:
        problems = "; ".join(p for p in check.problems if "checkpoint" in p)
        raise RecordingError(
            "the session log in {directory} has checkpoints that do not match its events "
            "({problems}); it was left as it is",
            directory=str(directory),
            problems=problems or "a checkpoint of another log or key",
        )
    kept = check.last_checkpoint
    held = path.read_bytes()
    signed = b"".join(line + b"\n" for line in held.split(b"\n")[:kept])
    if signed != held:
        replace_privately(path, signed)
    return kept


@dataclass
class Verification:
    events: int = 0
    checkpoints: int = 0
    last_checkpoint: int = 0
    segments: int = 0
    shredded: int = 0
    problems: list[str] = field(default_factory=list)
    complete: bool = False  # see `record_completeness`
    closed: bool = False  # the interview's final event ends the log, under its own checkpoint
    final_event: str = ""
    witnesses: list[str] = field(default_factory=list)  # the names of the keys given
    witnessed_by: list[str] = field(default_factory=list)  # who cosigned the final checkpoint
    unwitnessed: list[str] = field(default_factory=list)  # witnesses given who have not
    shredded_files: list[str] = field(default_factory=list)  # key material destroyed
    shred_reasons: list[str] = field(default_factory=list)
    origin: str = ""  # of the record's last good checkpoint
    # not faults: what nothing signed could have been changed undetected (a crash's last
    # moments of media)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.complete

    @property
    def failed(self) -> bool:
        """Something in the record is wrong, not merely unfinished."""
        return any(not problem.startswith(INCOMPLETE) for problem in self.problems)


def session_origin(log_name: str, interview_id: str) -> str:
    """The checkpoint origin of an interview: the log's name, then the interview."""
    return f"{log_name}/interview/{interview_id}"


@dataclass
class LogCheck:
    """What every signed event log must pass: signed checkpoints of this log, canonical
    events in sequence, each checkpoint's root matching the events it covers. Checking
    stops at the first fault: what follows it is its consequence, not news."""

    events: list[dict[str, Any]] = field(default_factory=list)  # before the first fault
    notes: dict[int, Checkpoint] = field(default_factory=dict)
    checkpoints: int = 0
    last_checkpoint: int = 0
    problems: list[str] = field(default_factory=list)
    fault: LogFault | None = None
    named_after_fault: set[str] = field(default_factory=set)  # files lines past it name

    @property
    def complete(self) -> bool:
        """Nothing wrong, and the last checkpoint covers every event."""
        return not self.problems and self.last_checkpoint == len(self.events)


def _belongs(directory: Path, origin: str | None = None) -> Callable[[str], bool]:
    """Accepts ``origin``, or else any log's origin for the directory's interview id."""

    def belongs(found: str) -> bool:
        return (origin is None or found == origin) and found.endswith(f"/{directory.name}")

    return belongs


def _read_notes(
    directory: Path,
    verifiers: Sequence[NoteVerifier],
    belongs: Callable[[str], bool],
    check: LogCheck,
) -> None:
    refused: dict[str, list[str]] = {}
    for path in sorted((directory / CHECKPOINTS).glob("*.note")):
        try:
            text, _ = open_note(path.read_bytes(), verifiers)
            checkpoint = Checkpoint.parse(text)
        except (LogError, UnicodeDecodeError) as exc:
            refused.setdefault(f": {exc}", []).append(path.name)
            continue
        if not belongs(checkpoint.origin):
            refused.setdefault(f": of another log ({checkpoint.origin})", []).append(path.name)
            continue
        first = next(iter(check.notes.values()), checkpoint)  # one log, one origin
        if checkpoint.origin != first.origin:
            reason = f": of another log ({checkpoint.origin}) than the first, {first.origin}"
            refused.setdefault(reason, []).append(path.name)
            continue
        check.notes[checkpoint.size] = checkpoint
    check.problems.extend(refused_notes(refused))


def _stop(check: LogCheck, fault: LogFault, problem: str, unvouched: Sequence[bytes]) -> None:
    check.fault = fault
    check.problems.append(problem)
    check.named_after_fault = files_named(unvouched)


def check_log(
    directory: Path, verifiers: Sequence[NoteVerifier], belongs: Callable[[str], bool]
) -> LogCheck:
    """Check ``directory``'s events and checkpoints; ``belongs`` accepts this log's origin."""
    check = LogCheck()
    _read_notes(directory, verifiers, belongs, check)
    held = (directory / EVENTS).read_bytes() if (directory / EVENTS).exists() else b""
    lines = held.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    signed = max(check.notes, default=0)
    running = RunningRoot()
    for number, line in enumerate(lines):
        try:
            event = msgspec.json.decode(line)
        except msgspec.DecodeError:
            if number == len(lines) - 1 and not held.endswith(b"\n"):  # a write cut off
                if signed > number:
                    _stop(check, LogFault.CUT_SHORT, cut_short(number, signed, True), [])
                else:
                    _stop(check, LogFault.TORN, torn_tail(number, check.last_checkpoint), [])
            else:
                problem = f"event {number} was altered: it is not JSON"
                _stop(check, LogFault.ALTERED, problem, lines[number:])
            return check
        if not isinstance(event, dict) or canonical(event) != line:
            problem = unreadable_event(number, event)
            _stop(check, LogFault.ALTERED, problem, lines[number:])
            return check
        if event.get("seq") != number:
            problem = out_of_sequence(number, event.get("seq"), lines)
            _stop(check, LogFault.ALTERED, problem, lines[number:])
            return check
        running.append(leaf_hash(line))
        check.events.append(event)
        due = check.notes.get(running.size)
        if due is None:
            continue
        if due.root != running.root():
            good = check.last_checkpoint
            problem = altered(check.events, good, running.size)
            del check.events[good:]
            _stop(check, LogFault.ALTERED, problem, lines[good:])
            return check
        check.checkpoints += 1
        check.last_checkpoint = running.size
    if signed > running.size:
        _stop(check, LogFault.CUT_SHORT, cut_short(running.size, signed, False), [])
    return check


def _listed_files(
    events: Sequence[dict[str, Any]], result: Verification
) -> dict[str, tuple[str, int]]:
    """Each file the events list, with the hash and size it must have now."""
    listed: dict[str, tuple[str, int]] = {}
    for event in events:
        name = str(event.get("file"))
        if event.get("kind") == "shred" and name in listed:
            # the key material was destroyed on purpose: the file now matches this hash
            listed[name] = (str(event.get("sha256")), listed[name][1])
            result.shredded += 1
            result.shredded_files.append(name)
            if str(event.get("reason")) not in result.shred_reasons:
                result.shred_reasons.append(str(event.get("reason")))
        elif "file" in event:  # a media segment or an encrypted blob (notes, an ID still)
            listed[name] = (str(event.get("sha256")), int(event.get("size", -1)))
    return listed


def _check_files(directory: Path, check: LogCheck, result: Verification) -> None:
    listed = _listed_files(check.events, result)
    mismatched = []
    for name, (digest, size) in sorted(listed.items()):
        path = directory / name
        if not path.exists():
            result.problems.append(f"{what(name)} {name} is missing")
        elif path.stat().st_size != size:
            mismatched.append(name)
        else:
            with path.open("rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != digest:
                    mismatched.append(name)
                elif name.endswith(".webm.age"):
                    result.segments += 1
    result.problems.extend(mismatched_files(directory, mismatched, listed))
    problems, warnings = media_reports(directory, check.events, set(mismatched))
    result.problems.extend(problems)
    result.warnings.extend(warnings)
    unlisted = [
        path.name
        for path in sorted(directory.glob("*.age"))
        if path.name not in listed and path.name not in check.named_after_fault
    ]
    if not unlisted:
        return
    if check.fault in (LogFault.ALTERED, LogFault.CUT_SHORT):
        # the event that listed them may be the one removed, garbled or cut away: part
        # of the same fault, told with it
        at = result.problems.index(check.problems[-1])
        result.problems[at] += f"; no event left lists {', '.join(unlisted)}"
        return
    for name in unlisted:
        result.problems.append(f"{what(name)} {name} is not listed in the log")


def verify_session(
    directory: Path,
    verifiers: Sequence[NoteVerifier],
    origin: str | None = None,
    witnesses: Sequence[WitnessKey] = (),
    listing: Callable[[Path], Sequence[str]] | None = None,
) -> Verification:
    """``origin`` defaults to any log's origin for this directory's interview id, so a
    checkpoint copied from another session is refused either way. Each of ``witnesses``
    (agencies' keys) must have cosigned the checkpoint ending at the interview's final
    event, else the record is incomplete; without witnesses it is never complete, since
    nobody outside the server vouches for its length. ``listing``, given the record's
    directory, says what the server-wide log of closed sessions holds against it
    (`closed_sessions.check_record`): a record rolled back or written after its close
    fails, one not yet listed there is incomplete. Each fault is reported once, at its
    cause (see `record_faults`)."""

    check = check_log(directory, verifiers, _belongs(directory, origin))
    result = Verification(
        events=len(check.events),
        checkpoints=check.checkpoints,
        last_checkpoint=check.last_checkpoint,
        problems=list(check.problems),
        origin=check.notes[check.last_checkpoint].origin if check.last_checkpoint else "",
    )
    _check_files(directory, check, result)
    kinds = {str(event.get("kind")) for event in check.events}
    intact = check.fault in (None, LogFault.TORN)  # else consent may be among the lost
    if "consent" not in kinds and intact:
        result.problems.append("no consent event")
    listed = list(listing(directory)) if listing is not None else []
    result.problems.extend(listed)
    state = completeness(
        directory / CHECKPOINTS,
        check.events,
        check.notes.keys(),
        check.last_checkpoint,
        # a record the closed sessions' log says was rolled back needs no other message
        bool(check.problems) or any(not p.startswith(INCOMPLETE) for p in listed),
        result.failed,
        witnesses,
    )
    result.problems.extend(state.problems)
    result.complete, result.closed = state.complete and not listed, state.closed
    result.final_event, result.witnessed_by = state.final_event, state.witnessed_by
    result.witnesses = [witness.name for witness in witnesses]
    result.unwitnessed = state.unwitnessed
    return result
