"""Verifying a session record of one million events (issue #4 target: <= 10 s).

    .venv/bin/python bench/verify.py [--events 1000000] [--every 10000]

Writes a session record with `SessionLog` (canonical-JSON events, a signed C2SP
checkpoint every ``--every`` events), then times `verify_session`, the code behind
`records verify`: every line decoded and re-encoded to prove it canonical, hashed as an
RFC 9162 leaf into a running root, every checkpoint's Ed25519 signature checked and its
root compared. Prints events per second beside the target; never fails on timing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.session_record import SessionLog, verify_session
from recordings.tlog import NoteSigner, NoteVerifier

TARGET_SECONDS, TARGET_EVENTS = 10.0, 1_000_000
ORIGIN = "nexus.example/interview/iv_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=TARGET_EVENTS)
    parser.add_argument("--every", type=int, default=10_000)
    args = parser.parse_args()
    signer = NoteSigner("nexus-server", Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / "iv_bench"
        log = SessionLog(directory, ORIGIN, signer)
        log.append("consent", text_version="2026-11-01", seat="applicant")
        for n in range(1, args.events - 1):
            log.append("frame-batch", seat="cbsa", sha256=f"{n:064x}", bytes=65_536 + n % 1000)
            if (n + 1) % args.every == 0:
                log.checkpoint()
        log.close()  # the end event and the final checkpoint
        started = time.perf_counter()
        result = verify_session(directory, [NoteVerifier.parse(signer.verifier_key)], ORIGIN)
        seconds = time.perf_counter() - started
    assert not result.failed, result.problems  # closed by a call's end, unwitnessed
    budget = TARGET_SECONDS * args.events / TARGET_EVENTS
    print(
        f"verified {result.events:,} events and {result.checkpoints:,} signed checkpoints in "
        f"{seconds:.2f} s ({result.events / seconds:,.0f} events/s; target {budget:.1f} s, "
        f"{budget / seconds:.1f}x under)"
    )


if __name__ == "__main__":
    main()
