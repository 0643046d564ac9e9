"""A session record on disk, and its verification.

Layout of ``<records>/<interview id>/``::

    events.jsonl               one canonical-JSON event per line (sorted keys, no spaces),
                               each an RFC 9162 leaf; no personal data, only hashes
    checkpoints/<size>.note    C2SP checkpoints of the event log, Ed25519 signed notes
    <seat>-<n>.webm.age        media segments, listed by ``segment`` events with their
                               SHA-256 and size

`SessionLog` writes it as the interview goes; after a crash, `cut_to_last_checkpoint`
takes it back to what was signed; `verify_session` is what `records verify` and the
audit console run: every line canonical and in sequence, every checkpoint signed
by a trusted key and matching the events (which also proves successive checkpoints
consistent), every listed segment present with its hash, nothing unlisted, consent and
an end present.
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

from .age import decode_b64, encode_b64
from .errors import RecordingError
from .private_files import private_directory, private_opener, replace_privately
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

EVENTS = "events.jsonl"
ENDING_KINDS = frozenset({"end", "close", "no-show", "cancelled", "interrupted"})
"""Events after which a session is over: a call's ``end``, or the interview's own end
(both agencies decided, a no-show, a cancellation, an interruption)."""
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


def _fresh(text: bytes) -> bytes:
    """Random bytes in canonical base64 of the same length as ``text``."""
    return encode_b64(os.urandom(len(decode_b64(text))))


def _random_stanzas(stanzas: bytes) -> bytes:
    """Every share and wrapped key replaced by random bytes of the same encoded length,
    so the header keeps its layout and parses, but no identity can ever open it."""
    out: list[bytes] = []
    body: list[bytes] = []

    def flush() -> None:
        if body:
            fresh = _fresh(b"".join(body))
            widths = [len(line) for line in body]
            for width in widths:
                out.append(fresh[:width])
                fresh = fresh[width:]
            body.clear()

    for line in stanzas.split(b"\n"):
        if line.startswith(b"-> "):
            flush()
            kind, *args = line[3:].split(b" ")
            out.append(b" ".join([b"->", kind, *(_fresh(a) for a in args)]))
        else:
            body.append(line)
    flush()
    return b"\n".join(out)


def shred(directory: Path, log: SessionLog, reason: str) -> list[str]:
    """Crypto-shredding at retention expiry: overwrite, in place, the wrapped file keys in
    every segment's age header, so no identity can ever open them again; then log which
    files were shredded and their new hashes, and sign a checkpoint."""
    shredded = []
    for path in sorted(directory.glob("*.age")):
        with path.open("r+b") as handle:
            head = handle.read(64 * 1024)
            end = head.find(b"\n---")
            if not head.startswith(b"age-encryption.org/v1\n") or end < 0:
                continue
            stanzas = _random_stanzas(head[len(b"age-encryption.org/v1\n") : end])
            handle.seek(len(b"age-encryption.org/v1\n"))
            handle.write(stanzas)
            handle.flush()
            os.fsync(handle.fileno())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        log.append("shred", file=path.name, sha256=digest, reason=reason)
        shredded.append(path.name)
    log.checkpoint()
    return shredded


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
    complete: bool = False
    witnessed_by: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.complete


def session_origin(log_name: str, interview_id: str) -> str:
    """The checkpoint origin of an interview: the log's name, then the interview."""
    return f"{log_name}/interview/{interview_id}"


def _check_witnesses(
    directory: Path,
    notes: dict[int, Checkpoint],
    witnesses: Sequence[NoteVerifier],
    result: Verification,
) -> None:
    if not notes:
        return
    final = directory / CHECKPOINTS / f"{max(notes):010d}.note"
    try:
        _, signed_by = open_note(final.read_text("utf-8"), witnesses)
    except (LogError, OSError) as exc:
        signed_by = []
        if "no signature by a trusted key" not in str(exc):
            result.problems.append(f"final checkpoint {final.name}: {exc}")
    result.witnessed_by = signed_by
    for witness in witnesses:
        if witness.name not in signed_by:
            result.problems.append(
                f"the final checkpoint is not co-signed by the witness {witness.name}"
            )


@dataclass
class LogCheck:
    """What every signed event log must pass: signed checkpoints of this log, canonical
    events in sequence, each checkpoint's root matching the events it covers."""

    events: list[dict[str, Any]] = field(default_factory=list)  # the good prefix
    notes: dict[int, Checkpoint] = field(default_factory=dict)
    checkpoints: int = 0
    last_checkpoint: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing wrong, and the last checkpoint covers every event."""
        return not self.problems and self.last_checkpoint == len(self.events)


def _belongs(directory: Path, origin: str | None = None) -> Callable[[str], bool]:
    """Accepts ``origin``, or else any log's origin for the directory's interview id."""

    def belongs(found: str) -> bool:
        return (origin is None or found == origin) and found.endswith(f"/{directory.name}")

    return belongs


def check_log(
    directory: Path, verifiers: Sequence[NoteVerifier], belongs: Callable[[str], bool]
) -> LogCheck:
    """Check ``directory``'s events and checkpoints; ``belongs`` accepts this log's origin."""
    check = LogCheck()
    for path in sorted((directory / CHECKPOINTS).glob("*.note")):
        try:
            text, _ = open_note(path.read_text("utf-8"), verifiers)
            checkpoint = Checkpoint.parse(text)
        except (LogError, UnicodeDecodeError) as exc:
            check.problems.append(f"checkpoint {path.name}: {exc}")
            continue
        if not belongs(checkpoint.origin):
            check.problems.append(f"checkpoint {path.name} belongs to {checkpoint.origin}")
            continue
        check.notes[checkpoint.size] = checkpoint
    running = RunningRoot()
    lines = (directory / EVENTS).read_bytes().split(b"\n") if (directory / EVENTS).exists() else []
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines):
        try:
            event = msgspec.json.decode(line)
        except msgspec.DecodeError:
            check.problems.append(f"event {number} is not JSON")
            break
        if not isinstance(event, dict) or canonical(event) != line:
            check.problems.append(f"event {number} is not canonical JSON")
            break
        if event.get("seq") != number:
            check.problems.append(f"event {number} carries sequence {event.get('seq')}")
            break
        running.append(leaf_hash(line))
        check.events.append(event)
        due = check.notes.get(running.size)
        if due is not None:
            if due.root != running.root():
                check.problems.append(
                    f"checkpoint {running.size} does not match events 0-{number}: "
                    "an event was edited, reordered or removed"
                )
            else:
                check.checkpoints += 1
                check.last_checkpoint = running.size
    for size in sorted(check.notes):
        if size > running.size:
            check.problems.append(
                f"checkpoint {size} covers events that are missing (the log holds {running.size})"
            )
    return check


def verify_session(
    directory: Path,
    verifiers: Sequence[NoteVerifier],
    origin: str | None = None,
    witnesses: Sequence[NoteVerifier] = (),
) -> Verification:
    """``origin`` defaults to any log's origin for this directory's interview id, so a
    checkpoint copied from another session is refused either way. Each of ``witnesses``
    (agencies' keys) must have co-signed the final checkpoint."""

    check = check_log(directory, verifiers, _belongs(directory, origin))
    result = Verification(
        checkpoints=check.checkpoints,
        last_checkpoint=check.last_checkpoint,
        problems=list(check.problems),
    )
    notes = check.notes
    listed: dict[str, tuple[str, int]] = {}
    kinds: set[str] = set()
    for event in check.events:
        kinds.add(str(event.get("kind")))
        if event.get("kind") == "shred" and str(event.get("file")) in listed:
            # the key material was destroyed on purpose: the file now matches this hash
            _, size = listed[str(event.get("file"))]
            listed[str(event.get("file"))] = (str(event.get("sha256")), size)
            result.shredded += 1
        elif "file" in event:  # a media segment or an encrypted blob (notes, an ID still)
            listed[str(event.get("file"))] = (str(event.get("sha256")), int(event.get("size", -1)))
    running_size = len(check.events)
    result.events = running_size
    for name, (digest, size) in sorted(listed.items()):
        path = directory / name
        if not path.exists():
            result.problems.append(f"segment {name} is missing")
        elif path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            result.problems.append(
                f"segment {name} does not match its hash: it was altered or replaced"
            )
        elif name.endswith(".webm.age"):
            result.segments += 1
    for path in sorted(directory.glob("*.age")):
        if path.name not in listed:
            result.problems.append(f"segment {path.name} is not listed in the log")
    if "consent" not in kinds:
        result.problems.append("no consent event")
    result.complete = bool(kinds & ENDING_KINDS) and result.last_checkpoint == running_size
    if witnesses:
        _check_witnesses(directory, notes, witnesses, result)
    if not result.complete and not any("checkpoint" in p for p in result.problems):
        result.problems.append(
            f"incomplete: the log ends without a final checkpoint; last good checkpoint "
            f"covers {result.last_checkpoint} of {running_size} events"
        )
    return result
