"""When a session record is complete, and what it still waits for when it is not.

A record is complete only when its interview closed (its final event: ``close`` after
both agencies decided, ``no-show``, ``cancelled`` or ``interrupted``, written once by the
lifecycle), nothing but shredding follows that event, a checkpoint ends exactly at it,
and every witness key given found its cosignature on that checkpoint. A call's ``end``
is not final, so a record cut back to a step's end (its decisions and close removed, the
server's and even the witnesses' signatures on what is left intact) is not complete.
Without witness keys nothing outside the server vouches for how long the log was, so
the record is never complete. Incompleteness is one message, its cause; what is wrong
in the log itself (`record_faults`) is said there and not again here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .record_faults import INCOMPLETE, kind_of
from .tlog import LogError
from .witness_keys import WitnessKey, cosigned_by

FINAL_EVENTS = frozenset({"close", "no-show", "cancelled", "interrupted"})
"""The events that end an interview (both agencies decided, a no-show, a cancellation, an
interruption), written once by the lifecycle. A call's ``end`` is not one: a two-step
interview's first call ends before its second starts, a joint one's before the decisions."""
AFTER_FINAL = frozenset({"shred"})
"""What may follow the final event: key material destroyed when retention ends."""


@dataclass
class Completeness:
    complete: bool = False
    final_event: str = ""  # its kind, once the record holds it
    closed: bool = False  # the final event, a checkpoint ending at it, nothing but shreds after
    closing_checkpoint: int = 0  # the checkpoint witnesses must cosign (else the last one)
    witnessed_by: list[str] = field(default_factory=list)  # on that checkpoint
    unwitnessed: list[str] = field(default_factory=list)  # witnesses given who have not
    problems: list[str] = field(default_factory=list)


def completeness(
    checkpoints: Path,
    events: Sequence[dict[str, Any]],
    notes: Collection[int],
    last_checkpoint: int,
    told: bool,
    failed: bool,
    witnesses: Sequence[WitnessKey],
) -> Completeness:
    """``events`` and the sizes of the checkpoints that verified (``notes``, in the
    directory ``checkpoints``) as the log check found them; ``told``: the log check
    reported a problem, which then is why the record is not complete; ``failed``: a
    fault was found elsewhere (a file): who vouches for a record that is wrong is moot."""
    found = Completeness()
    signers = _cosigners(checkpoints, notes, witnesses, found)
    final = next((n for n, e in enumerate(events) if e.get("kind") in FINAL_EVENTS), None)
    found.closing_checkpoint = last_checkpoint if final is None else final + 1
    found.witnessed_by = signers.get(found.closing_checkpoint, [])
    if final is not None:
        found.final_event = str(events[final].get("kind"))
    if told or found.problems:  # a forged cosignature is not a missing one
        return found
    if last_checkpoint < len(events):
        found.problems.append(
            f"{INCOMPLETE}the log ends without a final checkpoint; last good checkpoint "
            f"covers {last_checkpoint} of {len(events)} events"
        )
        return found
    if final is None:
        found.problems.append(not_closed(events))
        return found
    later = [n for n in range(final + 1, len(events)) if events[n].get("kind") not in AFTER_FINAL]
    if later:
        found.problems.append(
            f"event {later[0]} ({kind_of(events[later[0]])}) was written after the "
            f"interview's {found.final_event} (event {final}), which ends its record"
        )
        return found
    if found.closing_checkpoint not in notes:
        found.problems.append(
            f"{INCOMPLETE}no checkpoint ends at the interview's {found.final_event} (event "
            f"{final}), so no witness can have vouched for where the record ends"
        )
        return found
    found.closed = True
    if failed:
        return found
    if not witnesses:
        found.problems.append(
            f"{INCOMPLETE}nobody outside the server vouches for the record's length (it "
            "could have been cut back to an earlier checkpoint): no witness key was given; "
            "pass each agency's witness key (--witness)"
        )
        return found
    found.unwitnessed = [w.name for w in witnesses if w.name not in found.witnessed_by]
    found.problems.extend(
        f"{INCOMPLETE}the final checkpoint ({found.closing_checkpoint} events, ending at the "
        f"interview's {found.final_event}) is not yet cosigned by {name}"
        for name in found.unwitnessed
    )
    found.complete = not found.unwitnessed
    return found


def not_closed(events: Sequence[dict[str, Any]]) -> str:
    """A record without its final event: where it stops, and what the interview awaits."""
    if not events:
        return f"{INCOMPLETE}the interview has not closed: its log holds no event"
    last = len(events) - 1
    return (
        f"{INCOMPLETE}the interview has not closed: no close, no-show, cancellation or "
        f"interruption follows its last event, {kind_of(events[last])} (event {last}); "
        f"{_awaited(events)}"
    )


def _awaited(events: Sequence[dict[str, Any]]) -> str:
    def last(kind: str) -> int:
        return max((n for n, e in enumerate(events) if e.get("kind") == kind), default=-1)

    started, ended = last("call-start"), last("end")
    if started < 0 and ended < 0:
        return "its call has not started"
    if started > ended:
        return "its call has not ended"
    following = events[ended].get("next")
    if following not in (None, "done"):
        return f"waiting for its {str(following).upper()} step"
    decided = sorted({str(e.get("agency")) for e in events if e.get("kind") == "decision"})
    if not decided:
        return "waiting for the agencies' decisions"
    return f"waiting for the agencies' decisions ({', '.join(decided)} decided)"


def _cosigners(
    checkpoints: Path, notes: Collection[int], witnesses: Sequence[WitnessKey], found: Completeness
) -> dict[int, list[str]]:
    """Which of ``witnesses`` cosigned each checkpoint. A line under a witness's key
    that does not verify, on any checkpoint, is a fault (forged, or moved from another
    checkpoint), not an absence."""
    signers: dict[int, list[str]] = {}
    if not witnesses:
        return signers
    for size in sorted(notes):
        path = checkpoints / f"{size:010d}.note"
        try:
            signers[size] = cosigned_by(path.read_bytes(), witnesses)
        except LogError as exc:
            found.problems.append(f"checkpoint {path.name}: {exc.message}")
        except OSError as exc:
            found.problems.append(f"checkpoint {path.name}: {exc}")
    return signers
