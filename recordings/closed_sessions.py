"""The server-wide log of closed sessions, and checking sessions against it.

Each interview's record is a log of its own, so no witness of it can tell that a whole
record was deleted, nor that a session was cut back to an earlier checkpoint that a
witness had not yet seen pass. This log fills that gap: one entry per closed session,
appended once its final checkpoint is on disk, and witnessed like any session log.

Layout: ``<records>/closed-sessions/``, the same as a session record (`SessionLog`):
``events.jsonl`` in canonical JSON and ``checkpoints/<size>.note`` signed by the
server's checkpoint key, origin ``<log name>/closed-sessions`` (`closed_sessions_origin`;
the log name is the server's host, as in ``<log name>/interview/<id>``). A witness of
the server takes the prefix ``<log name>/`` (`witness_prefix`), which covers both. Each
entry is::

    {"seq": n, "at": "...", "kind": "closed", "interview": "<id>",
     "origin": "<log name>/interview/<id>", "size": N, "root": "<base64 SHA-256>"}

``size`` and ``root`` are those of the session's final checkpoint. An interview is
listed once: listing it again (a retry, a restart) changes nothing.

Writing (the interview server): `ClosedSessionsLog(records_dir, log_name, signer)`
(cuts a log a crash left back to its last checkpoint first), then
`ClosedSessionsLog.add_session(directory)` once the session's final checkpoint is on
disk; it returns the entry, or None if the session was listed already.

Checking (verification, `records verify`, the audit console):

- ``read_closed_sessions(records_dir, verifiers, witnesses=()) -> ClosedSessions``:
  the entries covered by the log's last good checkpoint (signed by one of
  ``verifiers``), by interview id (``entries``); ``problems`` in plain words (those
  starting with `INCOMPLETE` are not failures: a newest checkpoint not yet cosigned by a
  witness, entries not yet signed); ``witnessed_by``, the names of ``witnesses`` that
  cosigned the newest good checkpoint; ``size``, the entries it covers. No log at all is
  an empty `ClosedSessions`, with no problem.
- ``check_session(closed, interview_id, size, root) -> list[str]``: a session whose
  record's checkpoint covering its final event (else its last good checkpoint) covers
  ``size`` events with ``root`` (raw 32 bytes), against its entry: fewer events or
  another root at the listed size is a failure (rolled back or rewritten); more events,
  a failure (written after its close); not listed, one `INCOMPLETE` problem (ask it only
  of a session that has ended).
- ``check_record(closed, directory, verifiers) -> list[str]``: the same, reading the
  record in ``directory`` itself (its last good checkpoint); of a record that holds more
  events than listed, its first ``size`` must still be those listed and the rest only
  what may follow a final event (``AFTER_FINAL``: shreds); it says nothing of
  an unlisted session that has not ended, nor of a record altered or cut short (its own
  verification reports that, once).
- ``missing_sessions(closed, records_dir) -> list[str]``: one failure per listed session
  whose record (its directory, or its events) is gone: deleted whole.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecordingError
from .record_completeness import AFTER_FINAL, FINAL_EVENTS
from .record_faults import INCOMPLETE, LogFault
from .session_record import (
    CHECKPOINTS,
    EVENTS,
    SessionLog,
    check_log,
    cut_to_last_checkpoint,
)
from .tlog import Checkpoint, LogError, MerkleTree, NoteSigner, NoteVerifier, leaf_hash
from .witness_keys import WitnessKey, cosigned_by

CLOSED_SESSIONS = "closed-sessions"
"""The log's directory under the records directory, and the last part of its origin."""
ENTRY = "closed"


def closed_sessions_origin(log_name: str) -> str:
    return f"{log_name}/{CLOSED_SESSIONS}"


def witness_prefix(log_name: str) -> str:
    """The origin prefix a witness of the server is given: it covers each interview's
    log (``<log name>/interview/<id>``) and the log of closed sessions, and no other
    server's logs."""
    return f"{log_name}/"


@dataclass(frozen=True)
class ClosedEntry:
    interview_id: str
    origin: str  # the session's
    size: int  # events its final checkpoint covers
    root: bytes  # that checkpoint's root hash
    seq: int  # the entry's place in the closed-sessions log


def final_checkpoint(directory: Path, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    """The session's last checkpoint, once it is sound and covers every event; else
    `RecordingError`: a record with a fault is not listed as closed, a person must look."""
    check = check_log(directory, verifiers, lambda origin: origin.endswith(f"/{directory.name}"))
    if not check.complete or not check.last_checkpoint:
        reasons = "; ".join(check.problems) or (
            f"its last checkpoint covers {check.last_checkpoint} of {len(check.events)} events"
        )
        raise RecordingError(
            "the session record {directory} cannot be listed as closed: {reasons}",
            directory=str(directory),
            reasons=reasons,
        )
    return check.notes[check.last_checkpoint]


class ClosedSessionsLog:
    """The writer; one per server process. `add_session` may run in a thread."""

    def __init__(self, records_dir: Path, log_name: str, signer: NoteSigner) -> None:
        directory = records_dir / CLOSED_SESSIONS
        self._verifiers = [NoteVerifier.parse(signer.verifier_key)]
        cut_to_last_checkpoint(directory, self._verifiers)  # entries nothing signed go
        self._log = SessionLog(directory, closed_sessions_origin(log_name), signer)
        events = check_log(directory, self._verifiers, _is_closed_sessions).events
        self._listed = {entry.interview_id for entry in _entries(events)}
        self._adding = threading.Lock()

    @property
    def directory(self) -> Path:
        return self._log.directory

    def listed(self, interview_id: str) -> bool:
        return interview_id in self._listed

    def add_session(self, directory: Path) -> ClosedEntry | None:
        """List the session in ``directory`` with its final checkpoint, signed and on disk
        before this returns; None if it was listed already."""
        with self._adding:
            if directory.name in self._listed:
                return None
            final = final_checkpoint(directory, self._verifiers)
            seq = self._log.append(
                ENTRY,
                interview=directory.name,
                origin=final.origin,
                size=final.size,
                root=base64.b64encode(final.root).decode(),
            )
            self._log.checkpoint()
            self._listed.add(directory.name)
            return ClosedEntry(directory.name, final.origin, final.size, final.root, seq)

    def close(self) -> None:
        """Safe twice."""
        self._log.close_file()


def _is_closed_sessions(origin: str) -> bool:
    return origin.endswith(f"/{CLOSED_SESSIONS}")


def _entry(event: dict[str, Any]) -> ClosedEntry | None:
    fields = (event.get("interview"), event.get("origin"), event.get("size"), event.get("root"))
    interview, origin, size, root = fields
    if event.get("kind") != ENTRY or not isinstance(interview, str) or not interview:
        return None
    if not isinstance(origin, str) or not isinstance(size, int) or not isinstance(root, str):
        return None
    try:
        raw = base64.b64decode(root, validate=True)
    except ValueError:
        return None
    if len(raw) != 32 or size < 1 or not origin.endswith(f"/{interview}"):
        return None
    return ClosedEntry(interview, origin, size, raw, int(event["seq"]))


def _entries(events: Sequence[dict[str, Any]]) -> list[ClosedEntry]:
    return [entry for event in events if (entry := _entry(event)) is not None]


@dataclass
class ClosedSessions:
    entries: dict[str, ClosedEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    witnessed_by: list[str] = field(default_factory=list)
    size: int = 0  # entries the newest good checkpoint covers
    origin: str = ""

    @property
    def failed(self) -> bool:
        return any(not problem.startswith(INCOMPLETE) for problem in self.problems)


def read_closed_sessions(
    records_dir: Path,
    verifiers: Sequence[NoteVerifier],
    witnesses: Sequence[WitnessKey] = (),
) -> ClosedSessions:
    """See the module's docstring."""
    directory = records_dir / CLOSED_SESSIONS
    closed = ClosedSessions()
    if not (directory / EVENTS).exists() and not (directory / CHECKPOINTS).is_dir():
        return closed
    check = check_log(directory, verifiers, _is_closed_sessions)
    closed.problems.extend(_about_the_log(problem) for problem in check.problems)
    closed.size = check.last_checkpoint
    if check.last_checkpoint:
        closed.origin = check.notes[check.last_checkpoint].origin
    for event in check.events[: check.last_checkpoint]:
        entry = _entry(event)
        if entry is None:
            closed.problems.append(f"the closed-sessions log: entry {event['seq']} is malformed")
        elif entry.interview_id in closed.entries:
            first = closed.entries[entry.interview_id].seq
            closed.problems.append(
                f"the closed-sessions log lists {entry.interview_id} twice "
                f"(entries {first} and {entry.seq})"
            )
        else:
            closed.entries[entry.interview_id] = entry
    unsigned = len(check.events) - check.last_checkpoint
    if unsigned and not check.problems:
        closed.problems.append(
            f"{INCOMPLETE}the closed-sessions log holds {unsigned} entries after its last "
            "checkpoint"
        )
    if witnesses and check.last_checkpoint:
        _check_witnesses(directory, check.last_checkpoint, witnesses, closed)
    return closed


def _about_the_log(problem: str) -> str:
    incomplete = problem.startswith(INCOMPLETE)
    said = problem.removeprefix(INCOMPLETE)
    return f"{INCOMPLETE if incomplete else ''}the closed-sessions log: {said}"


def _check_witnesses(
    directory: Path, size: int, witnesses: Sequence[WitnessKey], closed: ClosedSessions
) -> None:
    path = directory / CHECKPOINTS / f"{size:010d}.note"
    try:
        closed.witnessed_by = cosigned_by(path.read_bytes(), witnesses)
    except (LogError, OSError) as exc:
        closed.problems.append(f"the closed-sessions log: checkpoint {path.name}: {exc}")
        return
    for witness in witnesses:
        if witness.name not in closed.witnessed_by:
            closed.problems.append(
                f"{INCOMPLETE}the closed-sessions log's newest checkpoint ({size} entries) is "
                f"not yet cosigned by {witness.name}"
            )


def check_session(closed: ClosedSessions, interview_id: str, size: int, root: bytes) -> list[str]:
    """See the module's docstring."""
    entry = closed.entries.get(interview_id)
    if entry is None:
        return [f"{INCOMPLETE}{interview_id} is not yet listed in the log of closed sessions"]
    listed = f"{interview_id} was closed with {entry.size} events"
    if size < entry.size:
        return [f"{listed}; its record holds {size}: it was rolled back"]
    if size > entry.size:
        return [f"{listed}; its record holds {size}: events were written after its close"]
    if root != entry.root:
        return [f"{listed} and another root hash: its record was rewritten"]
    return []


def check_record(
    closed: ClosedSessions, directory: Path, verifiers: Sequence[NoteVerifier]
) -> list[str]:
    """See the module's docstring."""
    check = check_log(directory, verifiers, lambda origin: origin.endswith(f"/{directory.name}"))
    if check.fault in (LogFault.ALTERED, LogFault.CUT_SHORT):
        return []  # the record's own fault, which `verify_session` reports, says it all
    size = check.last_checkpoint
    entry = closed.entries.get(directory.name)
    if entry is None:
        kinds = {str(event.get("kind")) for event in check.events[:size]}
        return check_session(closed, directory.name, size, b"") if kinds & FINAL_EVENTS else []
    if size <= entry.size:
        return check_session(closed, directory.name, size, check.notes[size].root if size else b"")
    # are the listed events still there, under the later ones?
    lines = (directory / EVENTS).read_bytes().split(b"\n")[: entry.size]
    if MerkleTree(leaf_hash(line) for line in lines).root() != entry.root:
        return [
            f"{directory.name} was closed with {entry.size} events and another root hash: "
            f"its record was rewritten (it now holds {size})"
        ]
    later = [e for e in check.events[entry.size : size] if e.get("kind") not in AFTER_FINAL]
    if later:
        return [
            f"{directory.name} was closed with {entry.size} events; its record holds {size}: "
            f"events were written after its close ({', '.join(str(e.get('kind')) for e in later)})"
        ]
    return []


def missing_sessions(closed: ClosedSessions, records_dir: Path) -> list[str]:
    """See the module's docstring."""
    return [
        f"{interview_id} is listed as closed with {entry.size} events but its record is "
        "missing: it was deleted whole"
        for interview_id, entry in sorted(closed.entries.items())
        if not (records_dir / interview_id / EVENTS).is_file()
    ]
