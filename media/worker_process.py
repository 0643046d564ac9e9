"""A media worker process: joins a control plane over the media-plane protocol and runs
the rooms it is given (`MediaWorker`).

    python -m media.worker_process --control ws://127.0.0.1:8090/media-plane --name w1

The shared secret comes from the environment (`SECRET_ENV`), never from the command
line, which every user of the machine can read. A ``wss://`` control URL is TLS, checked
against the system's certificate authorities or ``--ca-file``.

A worker the control plane started itself (``--local``) exits when the channel closes:
its control plane is gone, or has taken it for dead, and starts another. A worker on
another machine joins again, with a growing pause, for as long as it runs; its rooms end
when the channel closes, since the control plane places them again elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import time

import aiohttp

from common.logs import FORMATS, configure_logging

from . import protocol as p
from .worker import MediaWorker

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SECRET_ENV = "NEXUS_MEDIA_WORKER_SECRET"  # noqa: S105 - the variable's name, not a secret
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)

# By its module's name even when run as ``python -m`` (where ``__name__`` is __main__).
log = logging.getLogger("media.worker_process")


class HandshakeRefused(Exception):
    """The control plane did not welcome us (a wrong secret, another protocol version)."""


async def run_worker(
    control: str,
    name: str,
    secret: bytes,
    *,
    local: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    stop: asyncio.Event | None = None,
    force: asyncio.Event | None = None,
) -> None:
    """Serve the control plane at ``control`` until ``stop`` is set and the rooms on this
    worker have finished, or ``force`` is set (or, ``local``, until the channel closes)."""
    stop = stop or asyncio.Event()
    force = force or asyncio.Event()
    attempt = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.ws_connect(
                    control,
                    ssl=ssl_context if ssl_context is not None else True,
                    max_msg_size=p.MAX_MESSAGE_BYTES,
                    heartbeat=10,
                ) as ws:
                    attempt = 0
                    await _serve(ws, name, secret, stop, force)
            except HandshakeRefused as exc:
                log.error("the control plane refused this worker: %s", exc)
                if local:
                    return
            except (aiohttp.ClientError, OSError) as exc:
                log.warning("cannot reach the control plane at %s: %s", control, exc)
            if local or stop.is_set():
                return
            pause = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)


async def _serve(
    ws: aiohttp.ClientWebSocketResponse,
    name: str,
    secret: bytes,
    stop: asyncio.Event,
    force: asyncio.Event,
) -> None:
    challenge = p.decode_to_worker(await ws.receive_bytes(timeout=10))
    if not isinstance(challenge, p.Challenge):
        raise HandshakeRefused(f"expected a challenge, got {type(challenge).__name__}")
    proof = p.proof(secret, challenge.nonce, name)
    await ws.send_bytes(p.encode(p.Hello(worker=name, proof=proof, cores=os.cpu_count() or 1)))
    message = await ws.receive()
    if message.type is not aiohttp.WSMsgType.BINARY:
        raise HandshakeRefused(str(message.extra or "the channel closed"))
    welcome = p.decode_to_worker(message.data)
    if not isinstance(welcome, p.Welcome):
        raise HandshakeRefused(f"expected a welcome, got {type(welcome).__name__}")
    outbox: asyncio.Queue[bytes] = asyncio.Queue()
    worker = MediaWorker(welcome, lambda reply: outbox.put_nowait(p.encode(reply)))
    log.info("joined the control plane as %s", name)
    tasks = [
        asyncio.ensure_future(_write(ws, outbox)),
        asyncio.ensure_future(_report_load(worker, outbox, welcome.load_seconds)),
        asyncio.ensure_future(_read(ws, worker)),
        asyncio.ensure_future(_drain(worker, outbox, stop, force)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.close()
        await ws.close()


async def _drain(
    worker: MediaWorker, outbox: asyncio.Queue[bytes], stop: asyncio.Event, force: asyncio.Event
) -> None:
    """Once asked to stop: take no new rooms and let the rooms here finish (a deploy), or
    stop at once when asked again."""
    await stop.wait()
    worker.draining = True
    outbox.put_nowait(p.encode(_load(worker, 0.0)))
    if worker.rooms:
        log.info("draining: %d rooms to finish (stop again to end them now)", worker.rooms)
    while worker.rooms and not force.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(force.wait(), 1.0)


def _load(worker: MediaWorker, cpu: float) -> p.Load:
    return p.Load(
        rooms=worker.rooms,
        participants=worker.participants,
        cpu=cpu,
        draining=worker.draining,
        recording_failures=worker.recording_failures,
        traffic=worker.traffic(),
    )


async def _read(ws: aiohttp.ClientWebSocketResponse, worker: MediaWorker) -> None:
    async for message in ws:
        if message.type is not aiohttp.WSMsgType.BINARY:
            break
        try:
            worker.receive(p.decode_to_worker(message.data))
        except p.ProtocolError:
            log.exception("the control plane sent a message this worker cannot read")
            break


async def _write(ws: aiohttp.ClientWebSocketResponse, outbox: asyncio.Queue[bytes]) -> None:
    while True:
        await ws.send_bytes(await outbox.get())


async def _report_load(worker: MediaWorker, outbox: asyncio.Queue[bytes], every: float) -> None:
    before_cpu, before = time.process_time(), time.monotonic()
    while True:
        await asyncio.sleep(every)
        cpu, now = time.process_time(), time.monotonic()
        used = max(cpu - before_cpu, 0.0) / max(now - before, 1e-6)
        before_cpu, before = cpu, now
        outbox.put_nowait(p.encode(_load(worker, used)))


def serve_worker(
    control: str,
    name: str,
    secret: bytes,
    *,
    local: bool = False,
    ca_file: str | None = None,
    event_loop: str = "uvloop",
) -> None:
    """Run a worker until SIGINT or SIGTERM and its rooms have finished (a second signal:
    at once), or, ``local``, until its channel closes."""
    loop_factory = None
    if event_loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        stop, force = asyncio.Event(), asyncio.Event()
        loop = runner.get_loop()

        def signalled() -> None:
            (force if stop.is_set() else stop).set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, signalled)
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        runner.run(
            run_worker(
                control, name, secret, local=local, ssl_context=context, stop=stop, force=force
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media.worker_process")
    parser.add_argument("--control", required=True, help="ws:// or wss:// URL of the control plane")
    parser.add_argument("--name", default=socket.gethostname(), help="this worker's name")
    parser.add_argument("--ca-file", help="certificate authority for a wss:// control plane")
    parser.add_argument("--local", action="store_true", help="exit when the channel closes")
    parser.add_argument("--event-loop", default="uvloop", choices=("uvloop", "asyncio"))
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    parser.add_argument("--log-format", default="text", choices=FORMATS)
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"set {SECRET_ENV} to the control plane's media-worker secret", file=sys.stderr)
        return 2
    configure_logging(args.log_level, args.log_format)
    serve_worker(
        args.control,
        args.name,
        secret.encode(),
        local=args.local,
        ca_file=args.ca_file,
        event_loop=args.event_loop,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
