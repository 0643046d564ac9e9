"""What is wrong with a session record, in words a person can act on.

Verification follows chains: the event log is one (each event's place is fixed by the
checkpoints after it), and each file the log lists is one more, hanging off the event
that lists it. Only the first fault of a chain is a fault; everything after it is its
consequence (later checkpoints no longer match, files listed after it look unlisted) and
is not reported again. These functions name that first fault precisely.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

INCOMPLETE = "incomplete: "
"""How every problem that means "not finished" (rather than "wrong") begins."""

_FILE_FIELD = re.compile(rb'"file"\s*:\s*"([^"\\]+)"')


class LogFault(Enum):
    """The first fault of an event log."""

    ALTERED = "altered"  # an event edited, reordered, removed or inserted
    CUT_SHORT = "cut short"  # events a checkpoint signs are gone from the end
    TORN = "torn"  # a half-written last event that no checkpoint covers: a crash


def kind_of(event: dict[str, Any]) -> str:
    kind = str(event.get("kind"))
    return f"{kind} {event['file']}" if "file" in event else kind


def unreadable_event(number: int, event: object) -> str:
    if not isinstance(event, dict):
        return f"event {number} was altered: it is not a JSON object"
    return (
        f"event {number} ({kind_of(event)}) was altered: it is not in the canonical JSON the "
        "server writes (sorted keys, no spaces)"
    )


def out_of_sequence(number: int, seq: object, lines: Sequence[bytes]) -> str:
    """Event ``number`` carries sequence ``seq``: say what happened to the order."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return f"event {number} was altered: it carries sequence {seq!r}"
    if seq < number:
        return f"event {seq} appears again as event {number}: an event was repeated or moved"
    marker = re.compile(rb'"seq":%d[,}]' % number)
    if any(marker.search(line) for line in lines[number + 1 :]):
        return f"the events were reordered: event {seq} stands where event {number} belongs"
    gone = f"event {number} was" if seq == number + 1 else f"events {number}-{seq - 1} were"
    follows = f"event {seq} follows event {number - 1}" if number else f"the log starts at {seq}"
    return f"{gone} removed: {follows}"


def altered(events: Sequence[dict[str, Any]], good: int, size: int) -> str:
    """Checkpoint ``size`` does not match the events, checkpoint ``good`` did (or none)."""
    if size - good == 1:
        return (
            f"event {good} ({kind_of(events[good])}) was altered: it is not the event "
            f"checkpoint {size} signed"
        )
    before = f"; checkpoint {good} matches the events before them" if good else ""
    return (
        f"one of events {good}-{size - 1} was altered, replaced or moved: checkpoint {size} "
        f"does not match them{before}"
    )


def cut_short(whole: int, signed: int, torn: bool) -> str:
    inside = f", inside event {whole}" if torn else ""
    missing = f"event {whole} is" if signed - whole == 1 else f"events {whole}-{signed - 1} are"
    return (
        f"the log was cut short{inside}: checkpoint {signed} signs {signed} events, "
        f"{missing} missing"
    )


def torn_tail(number: int, last_checkpoint: int) -> str:
    return (
        f"{INCOMPLETE}the log ends in a half-written event {number}, cut off as by a crash; "
        f"last good checkpoint covers {last_checkpoint} of {number} events"
    )


def files_named(lines: Sequence[bytes]) -> set[str]:
    """Files that lines nothing vouches for name, read however they are damaged."""
    return {
        match.decode("utf-8", "replace") for line in lines for match in _FILE_FIELD.findall(line)
    }


def refused_notes(refused: dict[str, list[str]]) -> list[str]:
    """One problem per reason, however many checkpoint notes share it (a wrong key or a
    copied directory refuses every note for one cause)."""
    problems = []
    for reason, names in refused.items():
        if len(names) == 1:
            which = f"checkpoint {names[0]}"
        else:
            which = f"{len(names)} checkpoints ({names[0]} to {names[-1]})"
        problems.append(f"{which}{reason}")
    return problems


def what(name: str) -> str:
    return "segment" if name.endswith(".webm.age") else "file"


def mismatched_files(
    directory: Path, names: Sequence[str], listed: dict[str, tuple[str, int]]
) -> list[str]:
    """Files that do not match their listed hash: two that hold each other's content were
    swapped (one fault), one that holds another's was replaced by a copy of it."""
    actual = {}
    for name in names:
        with (directory / name).open("rb") as handle:
            actual[name] = hashlib.file_digest(handle, "sha256").hexdigest()
    owner = {digest: name for name, (digest, _) in listed.items()}
    problems, told = [], set()
    for name in names:
        if name in told:
            continue
        source = owner.get(actual[name])
        if source is None:
            problems.append(
                f"{what(name)} {name} does not match its hash: it was altered or replaced"
            )
        elif source in actual and owner.get(actual[source]) == name:
            problems.append(
                f"{what(name)}s {name} and {source} were swapped: each holds what the log "
                "lists for the other"
            )
            told.add(source)
        else:
            problems.append(f"{what(name)} {name} was replaced by a copy of {source}")
    return problems


def _prefix_digest(path: Path, size: int) -> str | None:
    """SHA-256 of the first ``size`` bytes of ``path``; None if it holds fewer."""
    digest, left = hashlib.sha256(), size
    with path.open("rb") as handle:
        while left:
            block = handle.read(min(left, 1 << 20))
            if not block:
                return None
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def media_reports(
    directory: Path, events: Sequence[dict[str, Any]], told: set[str]
) -> tuple[list[str], list[str]]:
    """Problems and warnings from the ``media`` events, each of which signs the first
    bytes of a segment while it was being written: the file must still begin with the
    last one's bytes. A segment sealed normally is held to its ``segment`` event's hash
    instead (which covers all of it); one listed only after a crash (``recovered``) is
    vouched for up to its last report, and the rest of it (written in the last moments
    before the crash) is a warning. ``told``: files whose fault is reported already."""
    last: dict[str, dict[str, Any]] = {}
    sealed: set[str] = set()
    recovered: set[str] = set()
    for event in events:
        kind = event.get("kind")
        if kind == "media":  # names its segment as ``segment``: it does not list it
            last[str(event.get("segment"))] = event
            continue
        name = str(event.get("file"))
        if kind == "segment" and event.get("recovered"):
            recovered.add(name)
        elif kind == "segment" or kind == "shred":  # a shred rewrites the file's header
            sealed.add(name)
    problems, warnings = [], []
    for name in sorted(set(last) | recovered):
        path = directory / name
        if path.name != name or name in sealed or name in told or not path.exists():
            continue
        report = last.get(name)
        if report is not None:
            size = int(report.get("size", 0))
            if _prefix_digest(path, size) != report.get("sha256"):
                signed_at = f"{report.get('at')} (event {report.get('seq')})"
                problems.append(
                    f"{what(name)} {name} was altered or replaced: its first {size} bytes do "
                    f"not match what the log signed at {signed_at}"
                )
                continue
        if name in recovered:
            signed = int(report.get("size", 0)) if report is not None else 0
            tail = path.stat().st_size - signed
            if tail > 0:
                warnings.append(
                    f"unauthenticated: the last {tail} bytes of {name} were written after "
                    "the last signed report (≤ 2 s of media)"
                )
    return problems, warnings
