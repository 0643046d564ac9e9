"""Capacity side by side: this server, Janus and stock aiortc, in one run, through the same
native load generator.

    .venv/bin/python bench/capacity.py [--rooms 1 2 4 8 12 16 20 24 32] [--seconds 15]
        [--servers interview janus relay] [--modes forward record]

For each mode (forwarding only; recording every call too) and each server, the room
count goes up until the server no longer holds it: every forwarded track arriving, every
video track at >= 28 fps and a server-added delay p95 <= 50 ms (bench/generator_run.py
`Measurement.held`), in one of two tries. Every step is a fresh server: ``interview`` is
`nexus-interview serve` with everyone signed in as browsers are (bench/native_load.py);
``janus`` is Janus's VideoRoom with a generated configuration, each room recording to
.mjr files in the record mode (bench/janus_server.py); ``relay`` is stock aiortc
`MediaRelay`, which decodes and encodes again for every subscriber and has no recorder
(forward mode only; its frames carry no marker to time, bench/relay_server.py).

It prints one row per step, then a summary per mode: the most rooms held, CPU-s/s per
room there, the rooms one core holds at that cost, delay, memory per room, this server's
cost per room over Janus's at each room count both held, and the fleet of 2-core machines
each would need for 150 recorded rooms at once. The machine is shared and noisy: compare
within one run; ``--rounds`` repeats the whole run and keeps each step's median cost.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import generator_run
import janus_server
import native_load
import relay_server
from generator_run import LOADGEN, Measurement

PILOT_ROOMS = 150  # recorded rooms at once that the pilot's backlog needs
MACHINE_CORES = 2
TARGET_UTILISATION = 0.7  # of each core, leaving room for bursts and the control work
# Cores a server can use: this one runs a media worker process per core, Janus threads
# (event_loops = 2), the stock relay one event loop.
CORES_USED = {"interview": MACHINE_CORES, "janus": 2, "relay": 1}

Target = Callable[[int, float, bool], Measurement]


def interview(rooms: int, seconds: float, record: bool) -> Measurement:
    return native_load.measure(rooms, seconds, record, media_workers=MACHINE_CORES)


def janus(rooms: int, seconds: float, record: bool) -> Measurement:
    with janus_server.janus(record) as server:
        return janus_server.drive(server, rooms, seconds, LOADGEN)


def relay(rooms: int, seconds: float, record: bool) -> Measurement:
    with relay_server.start() as server:
        config = relay_server.config(server.url, rooms, seconds)
        return generator_run.run(config, server.pid)


TARGETS: dict[str, Target] = {"interview": interview, "janus": janus, "relay": relay}


def series(name: str, rooms: list[int], seconds: float, record: bool) -> list[Measurement]:
    """Steps up the room counts until one is not held twice in a row."""
    steps = []
    for count in rooms:
        mode = "recorded" if record else "forwarded"
        print(f"\n== {name}: {count} {mode} room(s), {seconds:.0f} s", flush=True)
        step = TARGETS[name](count, seconds, record)
        print(f"-> {row(name, step)}", flush=True)
        if not step.held:  # once more: on a shared machine one bad second can fail a step
            print(f"\n== {name}: {count} {mode} room(s) again", flush=True)
            again = TARGETS[name](count, seconds, record)
            print(f"-> {row(name, again)}", flush=True)
            step = again if again.held else step
        steps.append(step)
        if not step.held:
            break
    return steps


def median_of(rounds: list[list[Measurement]]) -> list[Measurement]:
    """Each room count's step with the median server CPU over the rounds that ran it."""
    by_rooms: dict[int, list[Measurement]] = {}
    for steps in rounds:
        for step in steps:
            by_rooms.setdefault(step.rooms, []).append(step)
    kept = []
    for count in sorted(by_rooms):
        runs = sorted(by_rooms[count], key=lambda s: s.cpu_per_second or 0.0)
        middle = runs[len(runs) // 2]
        kept.append(replace(middle, status=max(s.status for s in runs)))
    return kept


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def row(name: str, step: Measurement) -> str:
    cpu = step.cpu_per_room
    return (
        f"| {name} | {step.rooms} | {'-' if cpu is None else f'{cpu:.3f}'} | "
        f"{step.min_fps:.1f} | {ms(step.delay_ms('p50'))}/{ms(step.delay_ms('p95'))} | "
        f"{step.mib_per_room:.1f} | {'yes' if step.held else 'no'} |"
    )


def most_held(steps: list[Measurement]) -> Measurement | None:
    held = [s for s in steps if s.held]
    return max(held, key=lambda s: s.rooms) if held else None


def fleet(name: str, cpu_per_room: float | None) -> str:
    """2-core machines for `PILOT_ROOMS` at ``cpu_per_room``, each core at most
    `TARGET_UTILISATION` busy and a process using at most `CORES_USED` cores."""
    if not cpu_per_room:
        return "-"
    per_machine = math.floor(
        min(MACHINE_CORES, CORES_USED[name]) * TARGET_UTILISATION / cpu_per_room
    )
    return "-" if per_machine < 1 else str(math.ceil(PILOT_ROOMS / per_machine))


def summary(mode: str, results: dict[str, list[Measurement]]) -> None:
    print(f"\n### {mode}\n")
    print(
        "| server | rooms | server CPU-s/s per room | min fps | delay p50/p95 ms "
        "| MiB per room | held |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, steps in results.items():
        for step in steps:
            print(row(name, step))
    print(
        "\n| server | most rooms held | CPU-s/s per room there | rooms per core "
        "| delay p50/p95 ms | MiB per room | 2-core machines for 150 rooms |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, steps in results.items():
        best = most_held(steps)
        cost = best.cpu_per_room if best else None
        if best is None or cost is None:
            print(f"| {name} | 0 | - | - | - | - | - |")
            continue
        print(
            f"| {name} | {best.rooms} | {cost:.3f} | {1 / cost:.1f} | "
            f"{ms(best.delay_ms('p50'))}/{ms(best.delay_ms('p95'))} | "
            f"{best.mib_per_room:.1f} | {fleet(name, cost)} |"
        )
    ours, anchor = results.get("interview"), results.get("janus")
    if ours and anchor:
        theirs = {s.rooms: s.cpu_per_room for s in anchor if s.held and s.cpu_per_room}
        ratios = [
            f"{s.rooms} rooms: {s.cpu_per_room / theirs[s.rooms]:.2f}x"
            for s in ours
            if s.held and s.cpu_per_room and s.rooms in theirs
        ]
        print(f"\nthis server's cost per room over Janus's ({mode}): {', '.join(ratios) or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16, 20, 24, 32])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--servers", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument(
        "--modes", nargs="+", choices=["forward", "record"], default=["forward", "record"]
    )
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not LOADGEN.exists():
        parser.error(f"{LOADGEN} is missing: build it with `make loadgen`")
    for mode in args.modes:
        record = mode == "record"
        results: dict[str, list[Measurement]] = {}
        for name in args.servers:
            if record and name == "relay":
                continue  # stock MediaRelay has no recorder
            rounds = [series(name, args.rooms, args.seconds, record) for _ in range(args.rounds)]
            results[name] = median_of(rounds)
        summary(mode, results)


if __name__ == "__main__":
    main()
