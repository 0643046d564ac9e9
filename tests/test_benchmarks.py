"""The media benchmark still runs and measures what it says, on one room of each server
(a smoke run: two seconds, nothing asserted about speed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_interviews_benchmark_measures_every_server() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "bench/interviews.py",
            *("--rooms", "1", "--baseline-rooms", "1", "--record-rooms", "1"),
            *("--aiortc-buffer-rooms", "1", "--seconds", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines()[2:]}
    assert set(rows) == {"relay", "forward", "record", "aiortc-jb"}, run.stdout
    for server, row in rows.items():
        assert row[1] == "1", row  # rooms
        assert row[-2] == "6/6", f"{server}: every forwarded track delivered frames"
        assert float(row[3]) > 0 and float(row[2]) > 0, row  # fps min, CPU
        delays = row[7:9]
        if server == "relay":
            assert delays == ["-", "-"], "the relay re-encodes: nothing to match"
        else:
            assert all(d.endswith("ms") and "/" in d for d in delays), row
