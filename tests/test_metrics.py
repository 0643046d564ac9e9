"""The operations listener's Prometheus metrics, scraped and parsed as Prometheus would
(`text_string_to_metric_families`): a real call through a media worker process makes
that worker's forwarded packets and bytes grow under its own label; staff sign-in
failures are counted; the figures are on the operations listener only, and only for the
networks it is told to answer.

Real servers on 127.0.0.1 free ports: `nexus-interview serve` with one media worker
process and three aiortc participants, and `create_app` served in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from common.names import Seat
from media.address_policy import parse_networks
from server import serving
from server.app import create_app
from server.appkeys import STORE
from server.settings import Settings

from . import served
from .fakes import fast_passwords
from .media import SyntheticParticipant
from .served import (
    Browser,
    Scene,
    call_started,
    everyone_in_call,
    free_port,
    make_scenes,
    serve,
    stop,
    up,
)

scene = served.scene  # the fixture: a data directory, officers, an invitation

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(base: str) -> Samples:
    """Every sample of ``base``/metrics, by name and labels."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def worker_sample(samples: Samples, name: str) -> dict[str, float]:
    """``name``'s value for each worker."""
    return {
        dict(labels)["worker"]: value
        for (sample, labels), value in samples.items()
        if sample == name and "worker" in dict(labels)
    }


async def ask_again(person: SyntheticParticipant) -> int:
    """Send a NACK for the newest packet of each video stream ``person`` receives, as a
    browser does after a loss; how many were asked for. (aiortc's receiver sends NACKs
    only for gaps, and loopback loses nothing: its own method is called to send one.)"""
    assert person.pc is not None
    asked = 0
    for receiver in person.pc.getReceivers():
        if receiver.track is None or receiver.track.kind != "video":
            continue
        streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        for ssrc, stream in streams.items():
            await receiver._send_rtcp_nack(ssrc, [stream.max_seq])
            asked += 1
    return asked


def forwarded(samples: Samples) -> float:
    return worker_sample(samples, "nexus_forwarded_packets_total").get("local-1", 0.0)


async def scraped_until(
    base: str, condition: Callable[[Samples], bool], what: str, within: float = 15.0
) -> Samples:
    """The first scrape of ``base`` that meets ``condition``."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition(samples := await scrape(base)):
        assert asyncio.get_running_loop().time() < deadline, f"never saw {what}"
        await asyncio.sleep(0.25)
    return samples


async def ready(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("the server never became ready")


async def test_a_call_through_a_media_worker_grows_its_forwarded_packets_on_the_scrape(
    scene: Scene,
) -> None:
    settings = scene.settings
    port = free_port()
    ops = f"http://127.0.0.1:{port}"
    server = serve(settings, media_workers="1", metrics_listen=f"127.0.0.1:{port}")
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        await ready(ops)
        before = await scrape(ops)
        assert worker_sample(before, "nexus_worker_up") == {"local-1": 1.0}
        assert before[("nexus_rooms", ())] == 0
        browsers = await call_started(scene, URL(settings.public_url))
        await everyone_in_call(scene, browsers, people)
        # A worker reports its totals every two seconds.
        first = await scraped_until(ops, lambda got: forwarded(got) > 100, "packets forwarded")
        packets = forwarded(first)
        assert worker_sample(first, "nexus_forwarded_bytes_total")["local-1"] > packets
        assert worker_sample(first, "nexus_received_packets_total")["local-1"] > 0
        assert worker_sample(first, "nexus_worker_participants") == {"local-1": 3.0}
        assert worker_sample(first, "nexus_worker_rooms") == {"local-1": 1.0}
        assert first[("nexus_rooms", ())] == 1
        for counted in ("nexus_lost_packets_total", "nexus_nacks_total", "nexus_plis_total"):
            assert "local-1" in worker_sample(first, counted), counted
        # every seat's offer was answered, and timed
        assert first[("nexus_join_seconds_count", ())] >= 3
        assert first[("nexus_join_seconds_sum", ())] > 0
        # it keeps counting while the media flows, the recording too
        later = await scraped_until(
            ops,
            lambda got: (
                forwarded(got) > packets
                and worker_sample(got, "nexus_recording_bytes_total")["local-1"] > 0
                and worker_sample(got, "nexus_worker_rtt_seconds").get("local-1", 0) > 0
            ),
            "more packets forwarded, recording bytes and a round-trip time",
        )
        # a subscriber asks again for the latest video packets it got (RTCP NACK)
        asked = await ask_again(people[Seat.CBSA])
        assert asked >= 2
        await scraped_until(
            ops,
            lambda got: (
                worker_sample(got, "nexus_nacks_total")["local-1"]
                >= worker_sample(later, "nexus_nacks_total")["local-1"] + asked
            ),
            "the NACKs counted",
        )
        # the officer ends it: its segments are sealed, and how long that took is observed
        await browsers[Seat.CBSA].end()
        # (the last segment may be sealed a moment before the room is gone)
        ended = await scraped_until(
            ops,
            lambda got: (
                got[("nexus_recording_seal_lag_seconds_count", ())] >= 1
                and got[("nexus_rooms", ())] == 0
            ),
            "a sealed segment observed and the room gone",
        )
        assert ended[("nexus_rooms", ())] == 0
        # the recording bytes are the sealed segment files the server keeps (a worker's
        # report after the room's end brings in the last of them)
        segments = sum(f.stat().st_size for f in settings.data_dir.rglob("*.webm.age"))
        assert segments > 0
        await scraped_until(
            ops,
            lambda got: worker_sample(got, "nexus_recording_bytes_total")["local-1"] == segments,
            f"the recording bytes come to the {segments} bytes of sealed segments",
        )
    finally:
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()
        stop(server)


@dataclass
class InProcess:
    settings: Settings
    pages: str
    ops: str


@pytest.fixture
async def in_process(settings: Settings) -> AsyncIterator[InProcess]:
    """`create_app` served on free ports, its operations listener on another."""
    port, ops_port = free_port(), free_port()
    configured = settings.replace(
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        metrics_listen=("127.0.0.1", ops_port),
        cookie_secure=False,
        login_max_failures=2,
    )
    runner = await serving.start(
        create_app(configured, passwords=fast_passwords()), "127.0.0.1", port
    )
    try:
        yield InProcess(configured, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops_port}")
    finally:
        await runner.cleanup()


async def test_failed_staff_sign_ins_and_the_lockout_they_cause_are_counted(
    in_process: InProcess,
) -> None:
    before = await scrape(in_process.ops)
    browser = Browser(URL(in_process.pages))
    try:
        for _ in range(2):
            status = await browser.form(
                "/login", {"username": "cbsa.nobody", "password": "wrong", "code": "000000"}
            )
            assert status in (401, 423), status
    finally:
        await browser.close()
    after = await scrape(in_process.ops)
    failures, lockouts = ("nexus_sign_in_failures_total", ()), ("nexus_sign_in_lockouts_total", ())
    assert after[failures] == before[failures] + 2
    assert after[lockouts] == before[lockouts] + 1  # the second failure locked the name
    assert after[("nexus_waiting_room_queue", ())] == 0
    statuses = {
        dict(labels)["status"] for (name, labels), _ in after.items() if name == "nexus_invitations"
    }
    assert {"queued", "sent", "failed"} <= statuses
    assert after[("nexus_verification_failures", ())] == 0
    # the in-process worker reports like a worker process, under its own name
    assert worker_sample(after, "nexus_worker_up") == {"in-process": 1.0}


async def test_the_public_port_serves_no_metrics(in_process: InProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/metrics", "/readyz", "/drain"):
            async with http.get(f"{in_process.pages}{path}") as response:
                assert response.status == 404, path


async def test_the_operations_listener_answers_only_its_networks(settings: Settings) -> None:
    ops_port = free_port()
    configured = settings.replace(
        metrics_listen=("127.0.0.1", ops_port), metrics_networks=parse_networks("10.0.0.0/8")
    )
    runner = await serving.start(create_app(configured), "127.0.0.1", free_port())
    try:
        async with aiohttp.ClientSession() as http:
            for method, path in (("GET", "/metrics"), ("GET", "/readyz"), ("POST", "/drain")):
                async with http.request(method, f"http://127.0.0.1:{ops_port}{path}") as response:
                    assert response.status == 403, path
                    assert "metrics_networks" in (await response.json())["error"]
    finally:
        await runner.cleanup()


async def test_invitations_are_counted_by_status_from_the_outbox(tmp_path: Path) -> None:
    (scene,) = await make_scenes(tmp_path)
    ops_port = free_port()
    settings = scene.settings.replace(media_workers=0, metrics_listen=("127.0.0.1", ops_port))
    app = create_app(settings, passwords=fast_passwords())
    runner = await serving.start(app, "127.0.0.1", settings.port)
    try:
        async with app[STORE].database.transaction() as db:
            for kind, status in (("invitation", "sent"), ("reminder", "failed")):
                await db.execute(
                    "INSERT INTO invitations (interview_id, kind, status, recipient, due_at,"
                    " created_at, updated_at) VALUES (?, ?, ?, 'a@example.org', '', '', '')",
                    (scene.interview_id, kind, status),
                )
        samples = await scrape(f"http://127.0.0.1:{ops_port}")
    finally:
        await runner.cleanup()
    invitations = {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "nexus_invitations"
    }
    assert invitations == {
        "queued": 0,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "bounced": 0,
        "dropped": 0,
    }
