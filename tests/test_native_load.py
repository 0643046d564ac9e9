"""The native load generator (bench/loadgen, on pion; `make loadgen` builds it, and
`make heavy` does before these run) plays interviews through real servers: this
project's `nexus-interview serve`, signed into as browsers are, and the stock aiortc
relay it measures as a baseline. No figure is asserted: what must hold is that every
forwarded track arrives, checked by its content, and keeps arriving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.names import Seat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import native_load  # noqa: E402  (bench/ is scripts, not a package)
import relay_server  # noqa: E402
from generator_run import LOADGEN  # noqa: E402

EVERY_PAIR = {(a.value, b.value) for a in Seat for b in Seat if a is not b}


@pytest.fixture(scope="module", autouse=True)
def loadgen() -> Path:
    """The generator, built if it is not (Debian's Go and pion: no downloads)."""
    if not LOADGEN.exists():
        subprocess.run(["make", "-s", "loadgen"], cwd=ROOT, check=True)
    return LOADGEN


@pytest.mark.timeout(300)
def test_a_call_of_over_a_minute_through_the_server_keeps_every_track_coming() -> None:
    """Signed in and joined as browsers do, on the server's default loop (uvloop, where
    aiortc was once reported to fail ICE at the start of a connection), media flows both
    ways for over a minute, each frame from the seat its slot names, and the server then
    stops on SIGTERM as an operator stops it."""
    measured = native_load.measure(rooms=1, seconds=62)
    assert measured.status == 0, measured.report.get("errors")
    tracks = measured.report["tracks"]
    assert {(t["subscriber"], t["publisher"]) for t in tracks} == EVERY_PAIR
    assert len(tracks) == 12, "three seats, each receiving two seats' audio and video"
    for track in tracks:
        assert track["wrong"] == 0, track  # every frame's marker named its slot's seat
        assert track["max_gap_ms"] < 1000, track  # frames kept arriving all the while
    assert measured.stopped, "the server did not stop within 30 s of SIGTERM"


@pytest.mark.timeout(240)
def test_the_load_generator_receives_every_track_from_the_relay() -> None:
    measured = relay_server.measure(1, 2)
    tracks = measured.report["tracks"]
    assert len(tracks) == 12, "three seats, each receiving two seats' audio and video"
    assert {(t["subscriber"], t["publisher"]) for t in tracks} == EVERY_PAIR
    assert all(t["fps"] > 0 for t in tracks), "every track delivered frames (audio: packets)"
    assert measured.cpu_per_second is not None and measured.cpu_per_second > 0
