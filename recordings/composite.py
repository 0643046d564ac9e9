"""The side-by-side composite of a session: each participant's video in one picture
(applicant, CBSA, CBP from left to right; black while a seat is absent) and their audio
mixed, on the session's own timeline. Made from the per-participant exports, streaming:
memory stays flat however long the interview was. This one file is decoded and encoded
(offline, by whoever holds an identity); the per-seat exports never are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.frame import AudioFrame
from av.filter.context import FilterContext
from av.video.format import VideoFormat
from av.video.frame import VideoFrame

SEAT_ORDER = ("applicant", "cbsa", "cbp")
TILE_WIDTH, TILE_HEIGHT, FPS = 640, 480, 15
VIDEO_BITRATE = 1_500_000
SAMPLE_RATE = 48_000
SECOND_MS = 1000
STALE_MS = 1000  # a seat whose last frame is older than this shows black


@dataclass(frozen=True)
class SeatTrack:
    """One participant's exported file and where it starts on the session's timeline."""

    seat: str
    path: Path
    offset_ms: int


@dataclass(frozen=True)
class Composite:
    path: Path
    video_frames: int
    duration_ms: int


def _frames(track: SeatTrack, kind: str) -> Iterator[tuple[int, Any]]:
    """The seat's decoded ``video`` or ``audio`` frames, each with its session time (ms)."""
    with av.open(str(track.path)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if not streams:
            return
        for frame in container.decode(streams[0]):
            if isinstance(frame, VideoFrame | AudioFrame) and frame.time is not None:
                yield round(frame.time * SECOND_MS) + track.offset_ms, frame


def _video(track: SeatTrack) -> Iterator[tuple[int, VideoFrame]]:
    return _frames(track, "video")


def _audio(track: SeatTrack) -> Iterator[tuple[int, AudioFrame]]:
    return _frames(track, "audio")


def _last_ms(track: SeatTrack) -> int:
    """Where the seat's media ends on the timeline (read from packets, nothing decoded)."""
    last = 0
    with av.open(str(track.path)) as container:
        for packet in container.demux():
            if packet.pts is not None and packet.time_base is not None:
                last = max(last, round(packet.pts * packet.time_base * SECOND_MS))
    return last + track.offset_ms


def _black() -> VideoFrame:
    frame = VideoFrame(TILE_WIDTH, TILE_HEIGHT, "yuv420p")
    for plane, value in zip(frame.planes, (16, 128, 128), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


class _Tiles:
    """The latest frame of each seat at a given moment, scaled to a tile."""

    def __init__(self, tracks: list[SeatTrack]) -> None:
        self._sources = [_video(track) for track in tracks]
        self._next: list[tuple[int, VideoFrame] | None] = [next(s, None) for s in self._sources]
        self._shown: list[tuple[int, VideoFrame] | None] = [None] * len(tracks)

    def at(self, moment_ms: int) -> list[VideoFrame]:
        tiles = []
        for i, source in enumerate(self._sources):
            upcoming = self._next[i]
            while upcoming is not None and upcoming[0] <= moment_ms:
                self._shown[i] = upcoming
                upcoming = self._next[i] = next(source, None)
            shown = self._shown[i]
            if shown is None or moment_ms - shown[0] > STALE_MS:
                tiles.append(_black())
            else:
                tiles.append(shown[1].reformat(TILE_WIDTH, TILE_HEIGHT, "yuv420p"))
        return tiles


def _mixer(count: int) -> tuple[av.filter.Graph, list[FilterContext]]:
    """``count`` inputs, each padded with silence to its place on the timeline, mixed."""
    graph = av.filter.Graph()
    inputs = []
    mix = graph.add("amix", f"inputs={count}:duration=longest:normalize=0")
    for i in range(count):
        source = graph.add_abuffer(
            sample_rate=SAMPLE_RATE,
            format="fltp",
            layout="stereo",
            time_base=Fraction(1, SAMPLE_RATE),
        )
        pad = graph.add("aresample", "async=1:first_pts=0")
        source.link_to(pad)
        pad.link_to(mix, 0, i)
        inputs.append(source)
    mix.link_to(graph.add("abuffersink"))
    graph.configure()
    return graph, inputs


def _pull(graph: av.filter.Graph) -> Iterator[AudioFrame]:
    while True:
        try:
            frame = graph.pull()
        except (BlockingIOError, av.error.EOFError):
            return
        assert isinstance(frame, AudioFrame)
        yield frame


def write_composite(tracks: list[SeatTrack], target: Path) -> Composite:
    """Write ``target`` (WebM: VP8 tiles side by side, Opus mix) from the seats' files."""
    tracks = sorted(tracks, key=lambda t: SEAT_ORDER.index(t.seat) if t.seat in SEAT_ORDER else 9)
    end_ms = max(_last_ms(track) for track in tracks)
    tiles = _Tiles(tracks)
    stack = av.filter.Graph()
    sources = [
        stack.add_buffer(
            width=TILE_WIDTH,
            height=TILE_HEIGHT,
            format=VideoFormat("yuv420p"),
            time_base=Fraction(1, FPS),
        )
        for _ in tracks
    ]
    hstack = stack.add("hstack", f"inputs={len(tracks)}") if len(tracks) > 1 else None
    sink = stack.add("buffersink")
    for i, source in enumerate(sources):
        source.link_to(hstack or sink, 0, i)
    if hstack is not None:
        hstack.link_to(sink)
    stack.configure()
    mixer, mix_inputs = _mixer(len(tracks))
    audio_sources = [_audio(track) for track in tracks]
    pending = [next(source, None) for source in audio_sources]
    frames = 0
    with av.open(str(target), "w", format="webm") as output:
        video = output.add_stream("libvpx", rate=FPS)
        video.width, video.height = TILE_WIDTH * len(tracks), TILE_HEIGHT
        video.pix_fmt = "yuv420p"
        video.bit_rate = VIDEO_BITRATE
        video.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        audio = output.add_stream("libopus", rate=SAMPLE_RATE)
        audio.layout = "stereo"
        ticks = end_ms * FPS // SECOND_MS + 1
        for tick in range(ticks):
            moment = tick * SECOND_MS // FPS
            for source, tile in zip(sources, tiles.at(moment), strict=True):
                tile.pts, tile.time_base = tick, Fraction(1, FPS)
                source.push(tile)
            picture = stack.vpull()
            picture.pts, picture.time_base = tick, Fraction(1, FPS)
            output.mux(video.encode(picture))
            frames += 1
            # the audio up to this moment, so the muxer interleaves with little buffering
            for i, sounds in enumerate(audio_sources):
                while (item := pending[i]) is not None and item[0] <= moment:
                    sound = item[1]
                    sound.pts = item[0] * SAMPLE_RATE // SECOND_MS
                    sound.time_base = Fraction(1, SAMPLE_RATE)
                    mix_inputs[i].push(sound)
                    pending[i] = next(sounds, None)
            for mixed in _pull(mixer):
                output.mux(audio.encode(mixed))
        for mix_input in mix_inputs:
            mix_input.push(None)
        for mixed in _pull(mixer):
            output.mux(audio.encode(mixed))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    return Composite(target, frames, end_ms)
