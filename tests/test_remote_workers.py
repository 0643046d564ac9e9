"""Media workers on machines of their own: the control plane (`serve --media-workers 0`
with a worker secret) places each call on a worker that joined it over the network, the
participants' media flows to that worker and not through the control plane, two calls
spread over two workers, a worker cut off the network is taken for dead and its call
moves to the other one (an outage in the record), and only a worker holding the secret,
and trusting the control plane's certificate when it speaks TLS, may join.

Every part is a real process or a real aiortc peer on a machine of a `Network`
(tests/netns.py): "control" runs `nexus-interview serve`, "worker-a" and "worker-b" run
`nexus-interview media-worker`, and the participants' HTTP, sockets and peer connections
live on "clients"."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from yarl import URL

from common.names import Seat
from recordings.session_record import verify_session
from server.settings import Settings
from server.store import Store
from server.types import ApplicationStatus, InterviewState

from .certificates import TestCA
from .media import SyntheticParticipant
from .netns import Machine, NamespaceThread, Network
from .served import (
    TEAMS,
    Browser,
    Scene,
    call_started,
    everyone_in_call,
    journal,
    make_scenes,
    server_log,
    server_verifier,
    stop,
    up,
)

T = TypeVar("T")

PORT = 8080
PLANE_PORT = 8090
COMMAND = str(Path(sys.executable).with_name("nexus-interview"))
SERVICE_RESTART = 1012  # the close code of a page whose call's media moved
DEAD_WITHIN_SECONDS = 8.0  # five seconds of silence, checked every second, plus slack
STOP_WITHIN_SECONDS = 5.0


@dataclass
class Interview:
    scene: Scene
    officers: str  # the officers' usernames end with it: cbsa.<officers>, cbp.<officers>


@dataclass
class Site:
    """The machines, the control plane's settings and the interviews ready to start."""

    network: Network
    control: Machine
    clients: NamespaceThread
    settings: Settings
    secret: str
    interviews: list[Interview]
    tmp: Path

    @property
    def base(self) -> URL:
        return URL(self.settings.public_url)

    @property
    def plane_url(self) -> str:
        return f"ws://control:{PLANE_PORT}/media-plane"

    def on_clients(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coroutine`` on the clients' machine, where its sockets live."""
        return self.clients.submit(coroutine).result(timeout=timeout)

    def serve(self, **extra: str) -> subprocess.Popen[bytes]:
        """``serve`` on the control machine: no worker of its own, workers join over the
        network with the secret; ``extra``: more NEXUS_ settings."""
        settings = self.settings
        env = {
            **os.environ,
            "NEXUS_DATA_DIR": str(settings.data_dir),
            "NEXUS_HOST": self.control.address,
            "NEXUS_PORT": str(PORT),
            "NEXUS_PUBLIC_URL": settings.public_url,
            "NEXUS_CBSA_RECIPIENT": settings.cbsa_recipient,
            "NEXUS_CBP_RECIPIENT": settings.cbp_recipient,
            "NEXUS_AUDIT_RECIPIENT": settings.audit_recipient,
            "NEXUS_MEDIA_PEER_NETWORKS": str(self.network.subnet),
            "NEXUS_MEDIA_WORKERS": "0",
            "NEXUS_MEDIA_WORKER_SECRET": self.secret,
            "NEXUS_MEDIA_PLANE_HOST": self.control.address,
            "NEXUS_MEDIA_PLANE_PORT": str(PLANE_PORT),
            **{f"NEXUS_{name.upper()}": value for name, value in extra.items()},
        }
        with server_log(settings).open("ab") as log:
            return self.control.popen([COMMAND, "serve"], env=env, stderr=log, stdout=log)

    def up(self, server: subprocess.Popen[bytes]) -> None:
        self.on_clients(up(self.settings, server))

    def worker(
        self,
        name: str,
        url: str | None = None,
        secret: str | None = None,
        ca_file: Path | None = None,
    ) -> Path:
        """``media-worker`` on the machine called ``name``; returns its log."""
        machine = self.network.machines.get(name) or self.network.machine(name)
        argv = [COMMAND, "media-worker", "--control", url or self.plane_url, "--name", name]
        if ca_file is not None:
            argv += ["--ca-file", str(ca_file)]
        env = {**os.environ, "NEXUS_MEDIA_WORKER_SECRET": secret or self.secret}
        log_path = self.tmp / f"{name}.log"
        with log_path.open("ab") as log:
            machine.popen(argv, env=env, stdout=log, stderr=log)
        return log_path

    def workers_joined(self) -> None:
        """``media-worker`` on worker-a and worker-b, each joined once this returns."""
        for name in ("worker-a", "worker-b"):
            self.worker(name)
            self.wait_in_log(f"media worker {name} joined")

    def log(self) -> str:
        return server_log(self.settings).read_text()

    def wait_in_log(self, text: str, path: Path | None = None, within: float = 20) -> None:
        path = path or server_log(self.settings)
        deadline = time.monotonic() + within
        while text not in path.read_text():
            assert time.monotonic() < deadline, f"{text!r} not in {path.name}:\n{path.read_text()}"
            time.sleep(0.05)

    def address(self, name: str) -> str:
        return self.network.machines[name].address


async def prepare(tmp_path: Path, control: Machine, count: int) -> list[Interview]:
    """A data directory with ``count`` applications, two officers for each and an
    invitation each, and the agencies' identity files outside it."""
    scenes = await make_scenes(tmp_path, count, control.address, PORT, control.name)
    return [Interview(scene, team) for scene, team in zip(scenes, TEAMS, strict=False)]


@pytest.fixture
def network() -> Iterator[Network]:
    with Network() as net:
        yield net


def make_site(network: Network, tmp_path: Path, count: int = 1) -> Site:
    control = network.machine("control")
    clients = network.machine("clients").thread()
    interviews = asyncio.run(prepare(tmp_path, control, count))
    secret = secrets.token_hex(24)
    return Site(
        network, control, clients, interviews[0].scene.settings, secret, interviews, tmp_path
    )


async def in_call(
    interview: Interview, base: URL, people: dict[Seat, SyntheticParticipant]
) -> dict[Seat, Browser]:
    browsers = await call_started(interview.scene, base, interview.officers)
    await everyone_in_call(interview.scene, browsers, people)
    return browsers


async def end_and_decide(interview: Interview, browsers: dict[Seat, Browser]) -> dict[str, Any]:
    """The CBSA officer ends the call; both officers approve. The CBP decision's reply."""
    await browsers[Seat.CBSA].end()
    verdict = {"verdict": "approve", "reason_codes": [], "notes": ""}
    decided: dict[str, Any] = {}
    for seat in (Seat.CBSA, Seat.CBP):
        status, decided = await browsers[seat].post(
            f"/api/interviews/{interview.scene.interview_id}/decision", verdict
        )
        assert status == 201, decided
    return decided


async def close_all(people: list[SyntheticParticipant], browsers: list[Browser]) -> None:
    for person in people:
        await person.close()
    for browser in browsers:
        await browser.close()


def media_addresses(people: dict[Seat, SyntheticParticipant]) -> set[str]:
    """The addresses in the ICE candidates of the answers the participants were given:
    where their media goes."""
    found = set()
    for person in people.values():
        assert person.pc is not None and person.pc.remoteDescription is not None
        for line in person.pc.remoteDescription.sdp.splitlines():
            if line.startswith("a=candidate:"):
                found.add(line.split()[4])
    return found


def record_verifies(site: Site, interview: Interview) -> list[dict[str, Any]]:
    """The interview's record is closed and nothing in it failed; its events."""
    session = site.settings.data_dir / "records" / interview.scene.interview_id
    result = verify_session(session, [server_verifier(site.settings)])
    # closed, but given no witness key: nobody outside the server vouches for its length
    assert result.closed and not result.failed, result.problems
    return journal(session)


async def state_of(site: Site, interview: Interview) -> InterviewState:
    store = await Store(site.settings.database_path).open()
    try:
        return (await store.interviews.get(interview.scene.interview_id)).state
    finally:
        await store.close()


def clean(log: str) -> None:
    assert "Traceback" not in log and "Warning:" not in log, log


def test_a_remote_worker_carries_the_interview_and_its_record_verifies(
    network: Network, tmp_path: Path
) -> None:
    site = make_site(network, tmp_path)
    (interview,) = site.interviews
    server = site.serve()
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    browsers: dict[Seat, Browser] = {}
    try:
        site.up(server)
        site.workers_joined()
        browsers = site.on_clients(in_call(interview, site.base, people))
        carriers = media_addresses(people)
        decided = site.on_clients(end_and_decide(interview, browsers))
    finally:
        site.on_clients(close_all(list(people.values()), list(browsers.values())))
        stop(server)

    # every seat received the others' video (everyone_in_call), from a worker's address
    assert len(carriers) == 1 and carriers <= {site.address("worker-a"), site.address("worker-b")}
    assert site.control.address not in carriers
    assert decided["application_status"] == ApplicationStatus.APPROVED
    events = record_verifies(site, interview)
    assert {e["seat"] for e in events if e["kind"] == "join"} == {seat.value for seat in Seat}
    assert {e["seat"] for e in events if e["kind"] == "segment"} == {seat.value for seat in Seat}
    clean(site.log())
    assert asyncio.run(state_of(site, interview)) is InterviewState.COMPLETED


def test_two_interviews_at_once_are_carried_by_different_workers(
    network: Network, tmp_path: Path
) -> None:
    site = make_site(network, tmp_path, count=2)
    server = site.serve()
    people = [{seat: SyntheticParticipant(seat) for seat in Seat} for _ in site.interviews]
    browsers: list[dict[Seat, Browser]] = []
    try:
        site.up(server)
        site.workers_joined()
        for interview, persons in zip(site.interviews, people, strict=True):
            browsers.append(site.on_clients(in_call(interview, site.base, persons)))
        carriers = [media_addresses(persons) for persons in people]
    finally:
        everyone = [p for persons in people for p in persons.values()]
        site.on_clients(close_all(everyone, [b for seats in browsers for b in seats.values()]))
        stop(server)

    workers = {site.address("worker-a"), site.address("worker-b")}
    assert all(len(found) == 1 for found in carriers), carriers
    assert carriers[0] | carriers[1] == workers, carriers
    clean(site.log())


async def closed_with(browser: Browser) -> tuple[int | None, float]:
    """The code the server closed ``browser``'s socket with, and when."""
    assert browser.ws is not None
    while not browser.ws.closed:
        message = await browser.ws.receive(timeout=30)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            break
    return browser.ws.close_code, time.monotonic()


def test_a_cut_off_worker_is_taken_for_dead_and_its_call_moves_to_the_other(
    network: Network, tmp_path: Path
) -> None:
    site = make_site(network, tmp_path)
    (interview,) = site.interviews
    server = site.serve()
    before = {seat: SyntheticParticipant(seat) for seat in Seat}
    after = {seat: SyntheticParticipant(seat) for seat in Seat}
    browsers: dict[Seat, Browser] = {}
    try:
        site.up(server)
        site.workers_joined()
        browsers = site.on_clients(in_call(interview, site.base, before))
        (first,) = media_addresses(before)
        cut, other = (
            ("worker-a", "worker-b")
            if first == site.address("worker-a")
            else ("worker-b", "worker-a")
        )
        cut_at = time.monotonic()
        site.network.machines[cut].cut()

        async def every_socket_closed() -> list[tuple[int | None, float]]:
            return list(await asyncio.gather(*(closed_with(b) for b in browsers.values())))

        closings = site.on_clients(every_socket_closed())
        site.wait_in_log(f"media worker {cut} lost")
        # each page connects again: a new socket, a join and a new offer
        site.on_clients(everyone_in_call(interview.scene, browsers, after))
        moved_to = media_addresses(after)
        site.on_clients(end_and_decide(interview, browsers))
    finally:
        site.on_clients(close_all([*before.values(), *after.values()], list(browsers.values())))
        stop(server)

    assert [code for code, _ in closings] == [SERVICE_RESTART] * len(Seat), closings
    print("sockets closed", max(at for _, at in closings) - cut_at, "s after the cut")
    assert max(at for _, at in closings) - cut_at < DEAD_WITHIN_SECONDS, closings
    assert moved_to == {site.address(other)}, (moved_to, other)
    events = record_verifies(site, interview)
    kinds = [event["kind"] for event in events]
    assert "outage" in kinds, kinds
    after_outage = events[kinds.index("outage") :]
    assert {e.get("seat") for e in after_outage if e["kind"] == "rejoin"} == {s.value for s in Seat}
    clean(site.log())


def test_over_tls_only_a_worker_trusting_the_ca_and_holding_the_secret_joins(
    network: Network, tmp_path: Path
) -> None:
    site = make_site(network, tmp_path)
    (interview,) = site.interviews
    authority = TestCA.create(tmp_path / "ca")
    ca, issued = authority.cert, authority.issue("control", "control")
    server = site.serve(media_plane_cert=str(issued.cert), media_plane_key=str(issued.key))
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    browsers: dict[Seat, Browser] = {}
    wss = f"wss://control:{PLANE_PORT}/media-plane"
    try:
        site.up(server)
        no_ca = site.worker("worker-b", url=wss)
        wrong = site.worker("worker-c", url=wss, secret=secrets.token_hex(24), ca_file=ca)
        site.worker("worker-a", url=wss, ca_file=ca)
        site.wait_in_log("media worker worker-a joined")
        site.wait_in_log(f"refused a media worker from {site.address('worker-c')}")
        site.wait_in_log("the control plane refused this worker", wrong)
        site.wait_in_log("CERTIFICATE_VERIFY_FAILED", no_ca)
        browsers = site.on_clients(in_call(interview, site.base, people))
        carriers = media_addresses(people)
    finally:
        site.on_clients(close_all(list(people.values()), list(browsers.values())))
        stop(server)

    log = site.log()
    assert "media worker worker-b joined" not in log, log
    assert "media worker worker-c joined" not in log, log
    assert carriers == {site.address("worker-a")}, carriers
    clean(log)


def test_a_clean_stop_with_workers_joined_is_prompt(network: Network, tmp_path: Path) -> None:
    """A service manager's SIGTERM stops the control plane in seconds, remote workers
    joined or not: their channels are closed, not waited out."""
    site = make_site(network, tmp_path)
    server = site.serve()
    site.up(server)
    site.workers_joined()

    asked = time.monotonic()
    server.terminate()
    try:
        server.wait(timeout=STOP_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        server.wait(timeout=60)
    took = time.monotonic() - asked

    assert server.returncode == 0, site.log()
    assert took < STOP_WITHIN_SECONDS, f"the stop took {took:.1f} s"
    clean(site.log())
