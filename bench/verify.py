"""Verifying one million session events (issue #4 target: <= 10 s).

    .venv/bin/python bench/verify.py [--events 1000000] [--every 10000]

Builds a log of N canonical-JSON events with a signed C2SP checkpoint every ``--every``
events, then times what an auditor's verifier does: check each event line is canonical
JSON (decode, re-encode, compare), hash it as an RFC 9162 leaf, and at each checkpoint
compare the running root and verify the Ed25519 signature. Matching every checkpoint
against roots of one growing leaf sequence also proves the checkpoints consistent.
Prints events per second beside the target; never fails on timing.
"""

from __future__ import annotations

import argparse
import time

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.tlog import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    RunningRoot,
    leaf_hash,
    open_note,
    sign_note,
)

TARGET_SECONDS, TARGET_EVENTS = 10.0, 1_000_000
ORIGIN = "nexus.example/interview/iv_bench"
encoder = msgspec.json.Encoder(order="sorted")


def build(events: int, every: int, signer: NoteSigner) -> tuple[list[bytes], list[str]]:
    lines, notes, running = [], [], RunningRoot()
    for n in range(events):
        event = {
            "seq": n,
            "kind": "segment",
            "seat": "cbsa",
            "at": 1_790_000_000_000 + n,
            "sha256": f"{n:064x}",
            "bytes": 65_536 + n % 1000,
        }
        line = encoder.encode(event)
        lines.append(line)
        running.append(leaf_hash(line))
        if running.size % every == 0 or n == events - 1:
            checkpoint = Checkpoint(ORIGIN, running.size, running.root())
            notes.append(sign_note(checkpoint.body(), [signer]))
    return lines, notes


def verify(lines: list[bytes], notes: list[str], verifier: NoteVerifier) -> int:
    checkpoints = [Checkpoint.parse(open_note(note, [verifier])[0]) for note in notes]
    pending = iter(checkpoints)
    target = next(pending)
    running = RunningRoot()
    for line in lines:
        if encoder.encode(msgspec.json.decode(line)) != line:
            raise SystemExit(f"event {running.size} is not canonical JSON")
        running.append(leaf_hash(line))
        if running.size == target.size:
            if running.root() != target.root:
                raise SystemExit(f"checkpoint {target.size} does not match the events")
            target = next(pending, target)
    return running.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=TARGET_EVENTS)
    parser.add_argument("--every", type=int, default=10_000)
    args = parser.parse_args()
    signer = NoteSigner("nexus-server", Ed25519PrivateKey.generate())
    lines, notes = build(args.events, args.every, signer)
    started = time.perf_counter()
    verified = verify(lines, notes, NoteVerifier.parse(signer.verifier_key))
    seconds = time.perf_counter() - started
    budget = TARGET_SECONDS * args.events / TARGET_EVENTS
    print(
        f"verified {verified:,} events and {len(notes):,} signed checkpoints in "
        f"{seconds:.2f} s ({verified / seconds:,.0f} events/s; target {budget:.1f} s, "
        f"{budget / seconds:.1f}x under)"
    )


if __name__ == "__main__":
    main()
