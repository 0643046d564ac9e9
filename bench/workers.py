"""Media workers: the most rooms `nexus-interview serve` holds with N media worker processes,
in one run, through the native load generator.

    .venv/bin/python bench/workers.py [--workers 1 2] [--rooms 4 8 12 16 20 24 28 32]
        [--seconds 15] [--record] [--minutes 25]

For each worker count (``--media-workers``; 0 keeps the media in the server's own
process) the room count goes up, every step on a fresh server with everyone signed in as
browsers are (bench/native_load.py), until a count is not held in two tries (every
forwarded track arriving, every video track at >= 28 fps, a server-added delay p95 <=
50 ms: bench/generator_run.py `Measurement.held`). The worker counts take turns at each
room count, so a noisy minute on the shared machine falls on all of them alike. Server
CPU is the server process and its worker processes together. Each step also shows where
the rooms went: each worker's CPU, the rooms its share of the CPU stands for, and its
UDP sockets.

The generator runs on the same cores as the server and its CPU is printed beside the
server's, and so is what everyone else on the machine used over the same window (the
machine is shared): compare the worker counts within one run. No step starts after
``--minutes``.
It prints one row per step, then per worker count the most rooms held, CPU per room
there, the ratio of rooms held over one worker's, and the 2-core machines for 150 rooms.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import native_load
from generator_run import LOADGEN, Measurement, ProcessLoad

PILOT_ROOMS = 150  # rooms at once that the pilot's backlog needs
MACHINE_CORES = 2
TARGET_UTILISATION = 0.7  # of each core, leaving room for bursts and the control work


def cores_used(workers: int) -> int:
    """Cores of a 2-core machine the media can use: one per worker process (the control
    plane's own work beside them is small), one when the media is in-process."""
    return min(MACHINE_CORES, max(1, workers))


def fleet(workers: int, cpu_per_room: float | None, rooms: int = PILOT_ROOMS) -> int | None:
    """2-core machines for ``rooms`` at ``cpu_per_room``, each core at most
    `TARGET_UTILISATION` busy; None when there is no cost or a machine holds no room."""
    if not cpu_per_room:
        return None
    per_machine = math.floor(cores_used(workers) * TARGET_UTILISATION / cpu_per_room)
    return None if per_machine < 1 else math.ceil(rooms / per_machine)


def placement(processes: tuple[ProcessLoad, ...], rooms: int) -> dict[str, float]:
    """The rooms each media worker holds, from its share of the workers' CPU (every room
    carries the same load); empty when the media is in the server's own process. Not
    from UDP sockets: a media connection keeps one or two, varying with the machine's
    load while it connected, so their counts are shown beside this but not used."""
    workers = [p for p in processes if p.name != "server"]
    total = sum(p.cpu_per_second for p in workers)
    if not workers or total <= 0:
        return {}
    return {p.name: rooms * p.cpu_per_second / total for p in workers}


def even(spread: dict[str, float]) -> bool:
    """No worker holds more rooms than another by more than one room or a tenth of them
    all, whichever is more: the estimate from CPU shares is that rough."""
    if not spread:
        return True
    slack = max(1.0, 0.1 * sum(spread.values()))
    return max(spread.values()) - min(spread.values()) <= slack + 1e-9


@dataclass(frozen=True)
class Step:
    workers: int
    measured: Measurement

    @property
    def spread(self) -> dict[str, float]:
        return placement(self.measured.processes, self.measured.rooms)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def row(step: Step) -> str:
    m = step.measured
    cpu = m.cpu_per_second
    generator = m.report.get("cpu_per_second")
    workers = ", ".join(
        f"{p.name} {p.cpu_per_second:.2f} CPU-s/s ~{step.spread.get(p.name, 0):.0f} rooms "
        f"{p.udp_sockets} UDP sockets"
        for p in m.processes
        if p.name != "server"
    )
    control = next((p.cpu_per_second for p in m.processes if p.name == "server"), None)
    others = m.others_cpu_per_second
    return (
        f"| {step.workers} | {m.rooms} | {'-' if cpu is None else f'{cpu:.3f}'} | "
        f"{'-' if m.cpu_per_room is None else f'{m.cpu_per_room:.4f}'} | "
        f"{'-' if control is None else f'{control:.3f}'} | "
        f"{'-' if generator is None else f'{generator:.3f}'} | "
        f"{'-' if others is None else f'{others:.2f}'} | {m.min_fps:.1f} | "
        f"{ms(m.delay_ms('p50'))}/{ms(m.delay_ms('p95'))} | {'yes' if m.held else 'no'} | "
        f"{workers or '-'}{'' if even(step.spread) else ' (uneven)'} |"
    )


HEADER = (
    "| workers | rooms | server CPU-s/s (incl. workers) | per room | server process "
    "| generator CPU-s/s | others' CPU-s/s | min fps | delay p50/p95 ms | held "
    "| workers: CPU, rooms |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def most_held(steps: list[Step]) -> Step | None:
    held = [s for s in steps if s.measured.held]
    return max(held, key=lambda s: s.measured.rooms) if held else None


def summary(results: dict[int, list[Step]]) -> None:
    print(f"\n{HEADER}")
    for steps in results.values():
        for step in steps:
            print(row(step))
    one = most_held(results.get(1, []))
    print(
        "\n| workers | most rooms held | CPU-s/s per room there | rooms held over 1 worker's "
        f"| cores used | 2-core machines for {PILOT_ROOMS} rooms at "
        f"{TARGET_UTILISATION:.0%} per core |"
    )
    print("|---|---|---|---|---|---|")
    for workers, steps in results.items():
        best = most_held(steps)
        if best is None:
            print(f"| {workers} | 0 | - | - | {cores_used(workers)} | - |")
            continue
        cost = best.measured.cpu_per_room
        ratio = f"{best.measured.rooms / one.measured.rooms:.2f}x" if one else "-"
        machines = fleet(workers, cost)
        print(
            f"| {workers} | {best.measured.rooms} | {'-' if cost is None else f'{cost:.4f}'} "
            f"| {ratio} | {cores_used(workers)} | {'-' if machines is None else machines} |"
        )
    print(
        "\nHeld counts are capped by the room counts tried and by the generator sharing the "
        "machine's cores."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rooms", type=int, nargs="+", default=[4, 8, 12, 16, 20, 24, 28, 32])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--record", action="store_true", help="the server records the calls")
    parser.add_argument("--minutes", type=float, default=25.0, help="start no step after this")
    args = parser.parse_args()
    if not LOADGEN.exists():
        parser.error(f"{LOADGEN} is missing: build it with `make loadgen`")
    deadline = time.monotonic() + 60 * args.minutes
    mode = "recorded" if args.record else "forwarded"
    results: dict[int, list[Step]] = {n: [] for n in args.workers}
    going = list(args.workers)
    for rooms in sorted(args.rooms):
        for workers in list(going):
            step = None
            for attempt in ("", " again"):  # one bad second on a shared machine fails a step
                if time.monotonic() > deadline:
                    print(f"\n== out of time ({args.minutes:.0f} min): stopping", flush=True)
                    summary(results)
                    return
                print(
                    f"\n== {workers} media worker(s): {rooms} {mode} room(s){attempt}, "
                    f"{args.seconds:.0f} s",
                    flush=True,
                )
                measured = native_load.measure(
                    rooms, args.seconds, args.record, media_workers=workers
                )
                tried = Step(workers, measured)
                print(f"-> {row(tried)}", flush=True)
                if step is None or tried.measured.held:
                    step = tried
                if step.measured.held:
                    break
            assert step is not None
            results[workers].append(step)
            if not step.measured.held:
                going.remove(workers)
        if not going:
            break
    summary(results)


if __name__ == "__main__":
    main()
