"""The interfaces the media plane uses: where recorded frames go.

Media code never imports aiohttp or the control plane: it speaks through the names in
`common.names` and the media-plane protocol (`media.protocol`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from common.frames import EncodedFrame
from common.names import Kind, Seat


class RecordingSink(Protocol):
    """Receives every encoded frame the forwarding layer handles (see `recordings/`)."""

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None: ...

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None: ...

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        """The room hands over how to ask a seat for a keyframe (to start a segment)."""


class NullSink:
    """A recording sink that keeps nothing (interviews that are not recorded, tests)."""

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None:
        return None

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None:
        return None

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        return None
