"""Ctrl-C on `make demo`, as a terminal sends it: SIGINT to the whole foreground process
group (the demo, and whatever of its children share the group). The demo stops cleanly:
exit status 0 and no traceback, whether it is serving or still setting up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .served import free_port
from .test_demo import EXE

DEADLINE_SECONDS = 30


def start(cwd: Path, port: int) -> subprocess.Popen[str]:
    """The demo as `make demo` runs it, leading a process group of its own as a terminal's
    foreground job does; its output (both streams) in ``cwd/output.txt``."""
    return subprocess.Popen(
        [str(EXE), "demo", "--port", str(port)],
        cwd=cwd,
        stdout=(cwd / "output.txt").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(condition_met: Callable[[], bool], what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if condition_met():
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the demo never {what}")


def serving(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def ctrl_c(process: subprocess.Popen[str]) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_ctrl_c_stops_a_serving_demo_with_status_0_and_no_traceback(tmp_path: Path) -> None:
    port = free_port()
    demo = start(tmp_path, port)
    wait_for(lambda: serving(port), "served", demo)
    assert ctrl_c(demo) == 0
    output = (tmp_path / "output.txt").read_text()
    assert "press Ctrl-C to stop" in output
    assert "Traceback" not in output, output
    assert "Event loop is closed" not in output, output
    assert not serving(port)


def test_ctrl_c_while_the_demo_sets_up_stops_it_with_status_0_and_no_traceback(
    tmp_path: Path,
) -> None:
    """A person who presses Ctrl-C before the links are printed (the first run seeds the
    database and hashes the staff's passwords for a few seconds) stops it the same way."""
    port = free_port()
    demo = start(tmp_path, port)
    wait_for(lambda: (tmp_path / "demo-data" / "server").exists(), "began seeding", demo)
    assert ctrl_c(demo) == 0
    output = (tmp_path / "output.txt").read_text()
    assert "press Ctrl-C to stop" not in output  # it was stopped while setting up
    assert "Traceback" not in output, output
    assert not serving(port)
