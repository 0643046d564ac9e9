"""One run of the native load generator (bench/loadgen, built by ``make loadgen``) against
a server process: the generator's report, and the server's CPU and memory over the
generator's measuring window (which it marks with a "measuring" and a "measured" line).
The server is the process and all its descendants: `nexus-interview serve` runs its media
in worker processes of its own, and their CPU is the server's too.

bench/native_load.py (this project's server), bench/janus_server.py (Janus's VideoRoom)
and bench/relay_server.py (stock aiortc MediaRelay) each build the generator's input for
their server and measure through `run`; bench/capacity.py puts them side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "build" / "loadgen" / "loadgen"
# What a room must hold for every forwarded video track over the measuring window.
MIN_FPS = 28.0
MAX_DELAY_P95_MS = 50.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds ``pid`` has used (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:  # it exited meanwhile
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (those alive now)."""
    found = [pid]
    for parent in found:  # grows while it is walked: breadth first
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                found += [int(child) for child in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):  # the thread or process ended
                continue
    return found


def process_name(pid: int, root: int) -> str:
    """``server`` for the root, else the ``--name`` a media worker was started with, else
    the program's name."""
    if pid == root:
        return "server"
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return str(pid)
    if "--name" in args[:-1]:
        return args[args.index("--name") + 1]
    return Path(args[0]).name


def udp_sockets(pid: int) -> int:
    """UDP sockets ``pid`` holds open: each media connection's, so a worker's count
    follows the participants placed on it."""
    inodes: set[str] = set()
    for table in ("udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        inodes.update(line.split()[9] for line in lines)
    held = 0
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its descendants, by process id."""
    used = {}
    for member in process_tree(pid):
        try:
            used[member] = cpu_seconds(member)
        except FileNotFoundError:
            continue
    return used


def machine_busy_seconds() -> float:
    """CPU seconds every core of this machine has spent busy (neither idle nor waiting
    for a disk), whoever used them."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_resident_bytes(pid: int) -> int:
    return sum(resident_bytes(member) for member in process_tree(pid))


@dataclass(frozen=True)
class ProcessLoad:
    """One process of the server over the measuring window."""

    name: str  # `process_name`
    pid: int
    cpu_per_second: float
    udp_sockets: int  # at the window's end


@dataclass(frozen=True)
class Measurement:
    rooms: int
    status: int  # the generator's: 0 when every forwarded track arrived
    report: dict[str, Any]  # the generator's -json report
    cpu_per_second: float | None  # the server's over the window; None: never measured
    resident: int  # the server's RSS at the window's end, bytes
    idle: int  # the server's RSS before the generator joined anyone, bytes
    processes: tuple[ProcessLoad, ...] = ()  # the server's processes, itself first
    # Every process's on the machine over the window (server, generator and anyone else).
    machine_cpu_per_second: float | None = None

    @property
    def others_cpu_per_second(self) -> float | None:
        """The machine's CPU over the window neither the server nor the generator used."""
        generator = self.report.get("cpu_per_second")
        machine, server = self.machine_cpu_per_second, self.cpu_per_second
        if machine is None or server is None or generator is None:
            return None
        return max(0.0, machine - server - float(generator))

    @property
    def video(self) -> list[dict[str, Any]]:
        return [t for t in self.report.get("tracks") or [] if t["kind"] == "video"]

    @property
    def cpu_per_room(self) -> float | None:
        return None if self.cpu_per_second is None else self.cpu_per_second / self.rooms

    @property
    def mib_per_room(self) -> float:
        return (self.resident - self.idle) / 2**20 / self.rooms

    @property
    def min_fps(self) -> float:
        return min((t["fps"] for t in self.video), default=0.0)

    def delay_ms(self, percentile: str) -> float | None:
        """The worst track's delay at ``percentile`` ("p50", "p95"); None when the
        server re-encodes (no marker to time)."""
        delays = [t[f"delay_{percentile}_ms"] for t in self.video]
        if not delays or min(delays) < 0:
            return None
        return float(max(delays))

    @property
    def held(self) -> bool:
        """Every forwarded track arrived and every video track kept ``MIN_FPS``, with a
        server-added delay p95 within ``MAX_DELAY_P95_MS`` where it can be timed."""
        if self.status != 0 or len(self.video) != 6 * self.rooms:
            return False
        p95 = self.delay_ms("p95")
        return self.min_fps >= MIN_FPS and (p95 is None or p95 <= MAX_DELAY_P95_MS)


def run(
    config: dict[str, Any],
    server_pid: int,
    loadgen: Path = LOADGEN,
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Measurement:
    """Pipe ``config`` to the generator, echo its output, and measure ``server_pid`` over
    its window. Blocks: from async code, run it in a thread."""
    rooms = 1 + max((p["room"] for p in config["participants"]), default=0)
    idle = tree_resident_bytes(server_pid)
    with tempfile.TemporaryDirectory(prefix="loadgen-") as directory:
        report_path = Path(directory) / "report.json"
        generator = subprocess.Popen(
            [str(loadgen), "-clip-dir", str(loadgen.parent), "-json", str(report_path), *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert generator.stdin is not None
        assert generator.stdout is not None
        generator.stdin.write(json.dumps(config))
        generator.stdin.close()
        window: list[tuple[float, dict[int, float]]] = []
        busy: list[float] = []
        sockets: dict[int, int] = {}
        resident = idle
        for raw in generator.stdout:
            line = raw.rstrip()
            if line.startswith(("measuring", "measured")):
                window.append((time.monotonic(), tree_cpu_seconds(server_pid)))
                busy.append(machine_busy_seconds())
                resident = tree_resident_bytes(server_pid)
                if line.startswith("measured"):  # before the generator's peers leave
                    sockets = {pid: udp_sockets(pid) for pid in window[-1][1]}
            print(line, flush=True)
        status = generator.wait()
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
    cpu = machine = None
    processes: tuple[ProcessLoad, ...] = ()
    if len(window) == 2:
        (t0, c0), (t1, c1) = window
        machine = (busy[1] - busy[0]) / (t1 - t0)
        # A process started within the window (a worker restarted) counts from its start.
        processes = tuple(
            ProcessLoad(
                process_name(pid, server_pid),
                pid,
                (used - c0.get(pid, 0.0)) / (t1 - t0),
                sockets.get(pid, 0),
            )
            for pid, used in c1.items()
        )
        cpu = sum(p.cpu_per_second for p in processes)
        print(
            f"server CPU: {cpu:.3f} CPU-s/s, {cpu / rooms:.3f} per room; RSS "
            f"{resident / 2**20:.1f} MiB, {(resident - idle) / 2**20 / rooms:.1f} MiB per room "
            f"over idle ({rooms} rooms, {3 * rooms} participants)",
            flush=True,
        )
        if len(processes) > 1:
            print(
                "server processes: "
                + ", ".join(
                    f"{p.name} {p.cpu_per_second:.3f} CPU-s/s {p.udp_sockets} UDP sockets"
                    for p in processes
                ),
                flush=True,
            )
        print(f"machine CPU: {machine:.3f} CPU-s/s (everyone's)", flush=True)
    return Measurement(rooms, status, report, cpu, resident, idle, processes, machine)
