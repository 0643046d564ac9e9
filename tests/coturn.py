"""A real coturn on a netns machine (tests/netns.py), configured as an operator configures
it: by `nexus-interview turn-config`, with the shared secret in its environment; and the
UDP echo that stands in for a media worker behind it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from .certificates import Issued
from .netns import Machine

ECHO_PORT = 9999
EXE = Path(sys.executable).parent / "nexus-interview"


def turn_config(secret: str, *args: str) -> str:
    """The config `turn-config` prints; no NEXUS_ setting of the caller's leaks into it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env["NEXUS_TURN_SECRET"] = secret
    command = [str(EXE), "turn-config", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def start_coturn(
    turn: Machine,
    directory: Path,
    secret: str,
    realm: str,
    media_peer: str,
    cert: Issued,
    options: Sequence[str] = (),
) -> Path:
    """Start coturn on ``turn``'s address (3478, and TLS on 443 with ``cert``), relaying
    to ``media_peer`` alone, with more command-line ``options``; returns its log. The
    caller waits for the ports it needs."""
    args = ["--realm", realm, "--media-peers", media_peer, "--listening-ip", turn.address]
    args += ["--cert", str(cert.cert), "--pkey", str(cert.key)]
    config = directory / "turnserver.conf"
    config.write_text(turn_config(secret, *args))
    # Line-buffered, so a test reads what coturn has written so far.
    coturn = ["stdbuf", "-oL", "turnserver", "-c", str(config)]
    coturn += ["--pidfile", str(directory / "turnserver.pid"), "--db", str(directory / "turndb")]
    coturn += options
    log = directory / "coturn.log"
    with open(log, "wb") as out:
        turn.popen(coturn, stdout=out, stderr=subprocess.STDOUT)
    return log


async def listening(host: str, port: int, within: float) -> None:
    """Return once ``host:port`` accepts a TCP connection; raise after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


async def echo(address: str) -> None:
    """A media worker's stand-in on ``address``: it answers each datagram to ECHO_PORT."""
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(address, ECHO_PORT))


class Inbox(asyncio.DatagramProtocol):
    """What arrives through a TURN client's relay, for the test to read."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


async def permission_codes(
    protocol: TurnClientUdpProtocol, peers: Sequence[str], port: int
) -> dict[str, int | None]:
    """Per peer address, the error code coturn answers a CreatePermission for it with (None:
    granted), all on the one allocation, which is released afterwards."""
    codes: dict[str, int | None] = {}
    try:
        for peer in peers:
            request = stun.Message(
                message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
            )
            request.attributes["XOR-PEER-ADDRESS"] = (peer, port)
            try:
                await protocol.request_with_retry(request)
                codes[peer] = None
            except stun.TransactionFailed as refused:
                codes[peer] = refused.response.error_code
    finally:
        await protocol.delete()
    return codes
