"""Janus's VideoRoom, the C SFU baseline, started with a generated configuration and
loaded by the native generator (bench/loadgen) as our server is.

    .venv/bin/python bench/janus_server.py [--rooms 1 4] [--seconds 20] [--record]

Janus comes from Debian (``apt-get install -y janus``); nothing here installs it. Each run
starts its own Janus from a temporary directory holding only what the benchmark needs: the
core configuration, the plain HTTP transport on 127.0.0.1 and a free port (no admin API),
and the VideoRoom plugin (the plugin and transport folders hold links to those two
libraries alone, so Janus loads nothing else). The generator joins each participant as a
publisher and a subscriber to the other two seats; with ``--record`` the rooms it creates
record every publisher into ``.mjr`` files. This driver adds Janus's CPU over the
generator's measuring window and its resident memory. Never fails on timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Imported as a module of its directory, as `python bench/native_load.py` runs it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import generator_run
from generator_run import LOADGEN, Measurement
from native_load import free_port

LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
SEATS = ("applicant", "cbsa", "cbp")
# The generator creates the rooms it joins; it reads where they record from here.
RECORD_DIR_VARIABLE = "LOADGEN_JANUS_REC_DIR"


@dataclass(frozen=True)
class Janus:
    url: str  # the HTTP API root, http://127.0.0.1:PORT/janus
    pid: int
    record_dir: Path | None  # where recorded rooms write, None when not recording
    log: Path


def local_address() -> str:
    """This machine's own non-loopback IPv4 address, for ICE. Janus gathering on `lo`
    finds no usable candidate and falls back to every interface, and ICE then fails; the
    generator, on the same machine, gathers on this address too (pion skips loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("198.51.100.1", 9))  # a UDP connect only picks a route
        found = str(probe.getsockname()[0])
        if not found.startswith(("127.", "0.")):
            return found
    raise SystemExit("no non-loopback IPv4 address for ICE: pass ice_address")


def configuration(folder: Path, port: int, ice_address: str) -> None:
    """Write Janus's configuration files and library folders into ``folder``."""
    for kind, library in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
        (folder / kind).mkdir()
        (folder / kind / library).symlink_to(LIBRARIES / kind / library)
    (folder / "none").mkdir()  # event handlers and loggers: none
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder / "plugins"}"
    transports_folder = "{folder / "transports"}"
    events_folder = "{folder / "none"}"
    loggers_folder = "{folder / "none"}"
    log_to_stdout = false
    log_to_file = "{folder / "janus.log"}"
    debug_level = 3
    debug_colors = false
    # Two shared event loops instead of a thread per handle: cheaper, and closer to one
    # process per core.
    event_loops = 2
}}
media: {{
}}
nat: {{
    ice_enforce_list = "{ice_address}"
}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    ip = "127.0.0.1"
    port = {port}
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"""
    )
    # No static rooms: the generator creates the ones it joins.
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/info", timeout=1) as response:  # noqa: S310
            return bool(json.load(response).get("janus") == "server_info")
    except (OSError, ValueError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def janus(record: bool = False, ice_address: str | None = None) -> Iterator[Janus]:
    """A Janus with only the HTTP transport and the VideoRoom plugin, until the block
    ends. ``record``: a folder for recorded rooms (Janus writes one ``.mjr`` file per
    recorded stream there)."""
    binary = shutil.which("janus")
    if binary is None:
        raise SystemExit("janus is missing: install it with `apt-get install -y janus`")
    with tempfile.TemporaryDirectory(prefix="janus-") as directory:
        folder = Path(directory)
        port = free_port()
        configuration(folder, port, ice_address or local_address())
        record_dir = folder / "recordings" if record else None
        if record_dir:
            record_dir.mkdir()
        url = f"http://127.0.0.1:{port}/janus"
        log = folder / "janus.log"
        process = subprocess.Popen(
            [binary, "-C", str(folder / "janus.jcfg"), "-F", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    raise SystemExit(f"Janus did not start answering at {url}:\n{tail}")
                time.sleep(0.1)
            yield Janus(url, process.pid, record_dir, log)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def participants(rooms: int) -> list[dict[str, object]]:
    return [
        {"room": n, "seat": seat, "interview_id": "", "cookie": "", "local_addr": ""}
        for n in range(rooms)
        for seat in SEATS
    ]


def drive(server: Janus, rooms: int, seconds: float, loadgen: Path = LOADGEN) -> Measurement:
    """Play ``rooms`` rooms on ``server`` through the generator; when it records, say what
    it wrote."""
    config = {
        "target": "janus",
        "server": server.url,
        "seconds": seconds,
        "warmup": 3,
        "participants": participants(rooms),
    }
    env = dict(os.environ)
    if server.record_dir:
        env[RECORD_DIR_VARIABLE] = str(server.record_dir)
    measured = generator_run.run(config, server.pid, loadgen, env=env)
    if server.record_dir:
        recorded = recordings(server)
        size = sum(path.stat().st_size for path in recorded)
        print(f"janus recorded {len(recorded)} .mjr files, {size / 2**20:.1f} MiB", flush=True)
    return measured


def recordings(server: Janus) -> list[Path]:
    """The .mjr files ``server`` has written (none when it does not record)."""
    return sorted(server.record_dir.glob("*.mjr")) if server.record_dir else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loadgen", type=Path, default=LOADGEN, help="the built generator")
    parser.add_argument("--record", action="store_true", help="Janus records every room")
    parser.add_argument("--ice-address", help="the local IPv4 address Janus gathers on")
    args = parser.parse_args()
    if not args.loadgen.exists():
        parser.error(f"{args.loadgen} is missing: build it with `make loadgen`")
    failed = False
    for rooms in args.rooms:
        mode = "recorded" if args.record else "forwarded"
        print(f"== janus: {rooms} {mode} room(s), {args.seconds:.0f} s", flush=True)
        with janus(args.record, args.ice_address) as server:
            failed |= drive(server, rooms, args.seconds, args.loadgen).status != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
