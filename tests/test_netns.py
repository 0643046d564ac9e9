"""Network namespaces as machines: machines reach each other by name over TCP and UDP,
the host cannot reach them, a cut machine goes silent and comes back, and nothing of a
Network outlives it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from tests.netns import (
    ETC_NETNS,
    NETNS_DIR,
    Machine,
    NamespaceThread,
    Network,
    in_namespace,
    namespaces,
)

PORT = 8080

# Answers every request with the address it came from, so the client can tell which
# machine the server saw.
SERVER = """
import sys
from aiohttp import web

async def whoami(request):
    return web.Response(text=f"{sys.argv[2]} sees {request.remote}")

app = web.Application()
app.router.add_get("/", whoami)
ready = lambda *_: print("ready", flush=True)
web.run_app(app, host=sys.argv[1], port=int(sys.argv[3]), print=ready)
"""


def serve(machine: Machine) -> subprocess.Popen[str]:
    """An aiohttp server on machine's address, once it listens."""
    process = machine.popen(
        [sys.executable, "-c", SERVER, machine.address, machine.name, str(PORT)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", f"server on {machine.name} did not start: {line!r}"
    return process


async def fetch(url: str) -> str:
    timeout = aiohttp.ClientTimeout(total=3)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return await response.text()


async def can_connect(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _in_subnet(interface_address: str, network: Network) -> bool:
    try:
        return ipaddress.IPv4Interface(interface_address).ip in network.subnet
    except ValueError:
        return False


@pytest.fixture
def network() -> Iterator[Network]:
    with Network() as net:
        yield net


def test_a_client_reaches_a_server_on_another_machine_by_its_name(network: Network) -> None:
    alpha, beta = network.machine("alpha"), network.machine("beta")
    serve(beta)

    text = in_namespace(alpha, fetch, f"http://beta:{PORT}/", timeout=10)

    assert text == f"beta sees {alpha.address}"


def test_the_root_namespace_cannot_reach_a_machine(network: Network) -> None:
    alpha, beta = network.machine("alpha"), network.machine("beta")
    serve(beta)
    assert in_namespace(alpha, can_connect, beta.address, PORT, timeout=10)

    # Where the host's default route leads, something may accept any connection (a
    # sandbox's egress proxy does): what matters is that the server never answers.
    try:
        answer = asyncio.run(fetch(f"http://{beta.address}:{PORT}/"))
    except (OSError, TimeoutError, aiohttp.ClientError):
        answer = ""
    assert not answer.startswith("beta sees"), answer
    root_addresses = subprocess.run(
        ["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True
    ).stdout.split()
    on_subnet = [a for a in root_addresses if "/" in a and _in_subnet(a, network)]
    assert on_subnet == [], "the root namespace has an address on the machines' network"


def test_a_cut_machine_is_unreachable_until_restored(network: Network) -> None:
    alpha, beta = network.machine("alpha"), network.machine("beta")
    server = serve(beta)
    assert in_namespace(alpha, can_connect, "beta", PORT, timeout=10)

    beta.cut()
    assert not in_namespace(alpha, can_connect, "beta", PORT, timeout=10)
    assert server.poll() is None, "cut() stopped the machine's process"

    beta.restore()
    text = in_namespace(alpha, fetch, f"http://beta:{PORT}/", timeout=10)
    assert text == f"beta sees {alpha.address}"


def test_udp_datagrams_travel_between_machines(network: Network) -> None:
    alpha, beta = network.machine("alpha"), network.machine("beta")

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(b"echo " + data, addr)

    async def listen() -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(beta.address, 5000))
        return transport

    async def ask() -> tuple[bytes, str]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[bytes, str]] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                answer.set_result((data, addr[0]))

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("beta", 5000))
        try:
            transport.sendto(b"ping")
            return await asyncio.wait_for(answer, 3)
        finally:
            transport.close()

    server = beta.thread()
    server.submit(listen()).result(timeout=10)

    assert in_namespace(alpha, ask, timeout=10) == (b"echo ping", beta.address)


def test_in_namespace_raises_the_coroutines_exception(network: Network) -> None:
    alpha = network.machine("alpha")

    async def fail() -> None:
        raise LookupError("from the machine")

    with pytest.raises(LookupError, match="from the machine"):
        in_namespace(alpha, fail, timeout=5)


def _net_inode(namespace: str) -> int:
    return (NETNS_DIR / namespace).stat().st_ino


def _processes_in(inodes: set[int]) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            link = os.readlink(proc / "ns" / "net")
        except OSError:
            continue
        if int(link.removeprefix("net:[").removesuffix("]")) in inodes:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("body_raises", [False, True])
def test_nothing_of_a_network_remains_after_it_exits(body_raises: bool) -> None:
    """A namespace lives while a process is in it, and with it its veths and bridge: so
    no namespace file, no /etc/netns dir and no process in any of its namespaces."""
    created: list[str] = []
    inodes: set[int] = set()
    processes: list[subprocess.Popen[bytes]] = []

    class Halfway(Exception):
        pass

    try:
        with Network() as net:
            for name in ("control", "worker-a", "worker-b", "client"):
                machine = net.machine(name)
                processes.append(machine.popen(["sleep", "300"]))
            net.machines["client"].thread()
            created = [net.switch] + [m.namespace for m in net.machines.values()]
            inodes = {_net_inode(ns) for ns in created}
            assert _processes_in(inodes), "the sleeps should be in the namespaces"
            if body_raises:
                raise Halfway
    except Halfway:
        pass

    assert len(created) == 5
    assert not set(created) & set(namespaces())
    assert not [ns for ns in created if (ETC_NETNS / ns).exists()]
    assert all(p.poll() is not None for p in processes)
    assert _processes_in(inodes) == []


def test_a_new_network_sweeps_namespaces_whose_creator_died() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"nxnet-{dead.pid}-abcdef-worker"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    (ETC_NETNS / leftover).mkdir(parents=True)
    (ETC_NETNS / leftover / "hosts").write_text("10.0.0.1 worker\n")

    with Network():
        assert leftover not in namespaces()
        assert not (ETC_NETNS / leftover).exists()


def test_a_live_creators_namespaces_are_not_swept(network: Network) -> None:
    alpha = network.machine("alpha")

    with Network():
        assert alpha.namespace in namespaces()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("os.setuid(65534)", "need root"),
        ("os.environ['PATH'] = '/nonexistent'", "iproute2"),
    ],
)
def test_without_root_or_ip_a_network_fails_saying_why(setup: str, message: str) -> None:
    # The module is imported first: the interpreter may be unreadable once not root.
    code = f"import os\nfrom tests.netns import Network\n{setup}\nNetwork()"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    assert "NetnsUnavailable" in result.stderr
    assert message in result.stderr


def test_machine_names_must_be_host_names(network: Network) -> None:
    with pytest.raises(ValueError, match="machine name"):
        network.machine("Not A Host")


def test_a_machines_processes_are_asked_to_terminate_before_being_killed(tmp_path: Path) -> None:
    said = tmp_path / "terminated"
    script = f"trap 'echo bye > {said}; exit 0' TERM; echo up; sleep 300 & wait"
    with Network() as net:
        process = net.machine("worker").popen(["sh", "-c", script], stdout=subprocess.PIPE)
        assert process.stdout is not None and process.stdout.readline() == b"up\n"

    assert process.returncode == 0
    assert said.read_text() == "bye\n"


def _candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def test_aiortc_peers_on_two_machines_connect_over_the_network(network: Network) -> None:
    """ICE gathers only each machine's own address, so the data channel's path is the
    switch's."""
    alpha, beta = network.machine("alpha"), network.machine("beta")
    answerer, offerer = beta.thread(), alpha.thread()
    received: concurrent.futures.Future[str] = concurrent.futures.Future()
    peers: list[tuple[NamespaceThread, RTCPeerConnection]] = []

    async def answer(offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = RTCPeerConnection()
        peers.append((answerer, pc))

        @pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            channel.on("message", received.set_result)

        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription

    async def offer() -> tuple[str, str]:
        pc = RTCPeerConnection()
        peers.append((offerer, pc))
        channel = pc.createDataChannel("hello")
        channel.on("open", lambda: channel.send(f"from {alpha.address}"))
        await pc.setLocalDescription(await pc.createOffer())
        remote = await asyncio.wrap_future(answerer.submit(answer(pc.localDescription)))
        await pc.setRemoteDescription(remote)
        return pc.localDescription.sdp, remote.sdp

    try:
        offer_sdp, answer_sdp = offerer.submit(offer()).result(timeout=20)
        assert received.result(timeout=20) == f"from {alpha.address}"
        assert _candidate_addresses(offer_sdp) == {alpha.address}
        assert _candidate_addresses(answer_sdp) == {beta.address}
    finally:
        for thread, pc in peers:
            thread.submit(pc.close()).result(timeout=10)
