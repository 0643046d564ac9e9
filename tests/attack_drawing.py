"""The attack's inputs, drawn in a process of their own: there nothing else uses `random`
while hypothesis draws (it checks), and the drawing has a core to itself."""

from __future__ import annotations

from .attack_frames import SocketScript, live_garbage, refused_socket_scripts, socket_scripts
from .attack_inputs import drawn
from .attack_requests import HttpInput, http_inputs

Drawn = tuple[list[HttpInput], list[SocketScript], list[tuple[str | bytes, ...]]]


def drawn_in_another_process(counts: tuple[int, int, int, int]) -> Drawn:
    """HTTP shapes, socket scripts (and sockets to be refused), rounds of live garbage:
    as many of each as ``counts`` says, the same on every run."""
    shapes, scripts, refused, garbage = counts
    return (
        drawn(http_inputs, shapes),
        drawn(socket_scripts, scripts) + drawn(refused_socket_scripts, refused),
        drawn(live_garbage, garbage),
    )
