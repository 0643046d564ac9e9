"""The Janus baseline: Debian's Janus started from a generated configuration, joined by
the native generator (one room, a few seconds: nothing asserted about speed).

Janus runs in `make bench` only, which installs it and builds the generator, then runs
these before measuring (`make test` does not collect bench/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The bench scripts import each other as modules of their directory, as they run.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator_run import LOADGEN
from janus_server import Janus, drive, janus, recordings


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs process ``pid`` listens on over TCP, IPv4 and IPv6."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                address, port = local.split(":")
                if len(address) == 8:  # IPv4, little-endian
                    address = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
                found.add((address, int(port, 16)))
    return found


def test_janus_listens_only_for_its_http_api_on_loopback() -> None:
    with janus() as server:
        port = int(server.url.split(":")[2].split("/")[0])
        assert listening_ports(server.pid) == {("127.0.0.1", port)}


def test_every_forwarded_track_arrives_through_janus_and_janus_records_each_stream() -> None:
    server: Janus
    with janus(record=True) as server:
        measured = drive(server, rooms=1, seconds=2, loadgen=LOADGEN)
        assert measured.status == 0, measured.report.get("errors")
        tracks = measured.report["tracks"]
        assert len(tracks) == 12  # three seats, each receiving two seats' audio and video
        for track in tracks:
            assert track["fps"] > 0, track
            assert track["wrong"] == 0, track  # each frame's marker named its publisher
        assert measured.cpu_per_second is not None
        assert measured.cpu_per_second > 0
        # One file per published stream: three publishers, audio and video each.
        recorded = recordings(server)
        assert len(recorded) == 6
        assert all(path.stat().st_size > 0 for path in recorded)
