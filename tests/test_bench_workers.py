"""bench/workers.py's arithmetic: the fleet for the pilot's rooms and where the rooms went."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import pytest
from generator_run import ProcessLoad
from workers import cores_used, even, fleet, placement


def test_fleet_uses_one_core_per_worker_up_to_the_machines_two() -> None:
    # 0.7 / 0.035 = 20 rooms per core.
    assert fleet(0, 0.035) == 8  # in-process: one core, 20 rooms a machine
    assert fleet(1, 0.035) == 8
    assert fleet(2, 0.035) == 4  # two cores: 40 rooms a machine
    assert fleet(4, 0.035) == 4  # a 2-core machine has no third core
    assert [cores_used(n) for n in (0, 1, 2, 3)] == [1, 1, 2, 2]


def test_fleet_is_none_without_a_cost_or_when_a_machine_holds_no_room() -> None:
    assert fleet(2, None) is None
    assert fleet(1, 0.8) is None


def test_placement_shares_the_rooms_by_cpu_and_ignores_the_control_process() -> None:
    processes = (
        ProcessLoad("server", 1, 0.1, 0),
        ProcessLoad("local-1", 2, 0.25, 30),  # sockets vary per connection: not used
        ProcessLoad("local-2", 3, 0.15, 30),
    )
    spread = placement(processes, 8)
    assert spread == pytest.approx({"local-1": 5.0, "local-2": 3.0})
    assert not even(spread)
    assert even({"local-1": 4.0, "local-2": 4.0})
    assert even({"local-1": 15.0, "local-2": 13.0})  # within a tenth of 28
    assert not even({"local-1": 18.0, "local-2": 10.0})


def test_placement_is_empty_when_the_media_is_in_the_server() -> None:
    assert placement((ProcessLoad("server", 1, 0.5, 24),), 4) == {}
    assert even({})
