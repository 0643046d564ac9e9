"""`nexus-interview demo` tells its witnesses the operators' log key: the log of what the
demo's operators did is cosigned by both agencies' witnesses, as production does."""

from __future__ import annotations

import time
from pathlib import Path

from recordings.witness import read_cosigner
from recordings.witness_keys import cosigned_by
from recordings.witness_protocol import CosignatureVerifier
from server.witnessing import newest_checkpoint

from .test_demo import Demo, demo  # noqa: F401  (the running demo, as a fixture)


def test_the_demo_witnesses_cosign_the_operators_log(demo: Demo, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "demo-data"
    keys = [
        CosignatureVerifier.parse(read_cosigner(root / "witnesses" / f"{a}.key").verifier_key)
        for a in ("cbsa", "cbp")
    ]
    log = root / "server" / "operations-log"
    deadline = time.monotonic() + 10
    signed: list[str] = []
    while time.monotonic() < deadline:
        newest = newest_checkpoint(log)
        signed = cosigned_by(newest.read_bytes(), keys) if newest is not None else []
        if len(signed) == 2:
            break
        time.sleep(0.1)
    assert sorted(signed) == ["cbp.demo/witness", "cbsa.demo/witness"]
