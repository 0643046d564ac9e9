"""How media workers reach the control plane: a listener of its own (never the public
pages' port) where a worker proves it holds the shared secret (`protocol.proof`), and the
in-process worker that keeps media in this process when no worker processes run.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from common.secret import Secret
from media import protocol as p
from media.worker import MediaWorker

from .media_plane import MediaPlane
from .worker_links import WorkerLink

log = logging.getLogger(__name__)

PATH = "/media-plane"
HELLO_SECONDS = 10.0
REFUSED_CLOSE_CODE = 4403
"""Close code of a channel whose worker did not prove it holds the secret."""


class MediaChannel:
    """The listener media workers connect to; each accepted worker becomes a
    `WorkerLink` of ``plane``."""

    def __init__(
        self,
        plane: MediaPlane,
        welcome: p.Welcome,
        secret: Secret[bytes],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._plane = plane
        self._welcome = welcome
        self._secret = secret
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """Where a worker on this machine connects."""
        scheme = "wss" if self._ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{PATH}"

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._channel)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("media workers connect to port %d", self.port)

    async def close(self) -> None:
        """Close the workers' channels, then the listener (whose clean-up would wait for
        each channel's handler until its heartbeat gave up)."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _channel(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=p.MAX_MESSAGE_BYTES, heartbeat=10)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            return await self._serve(ws, request.remote or "?")
        finally:
            self._sockets.discard(ws)

    async def _serve(self, ws: web.WebSocketResponse, remote: str) -> web.WebSocketResponse:
        nonce = secrets.token_hex(32)
        await ws.send_bytes(p.encode(p.Challenge(nonce=nonce)))
        hello = await self._hello(ws, nonce, remote)
        if hello is None:
            return ws
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        link = WorkerLink(
            hello.worker,
            lambda message: outbox.put_nowait(p.encode(message)),
            hello.cores,
            hang_up=lambda: outbox.put_nowait(None),
        )
        await ws.send_bytes(p.encode(self._welcome))
        self._plane.attach(link)
        writer = asyncio.ensure_future(_write(ws, outbox))
        try:
            async for message in ws:
                if message.type is not WSMsgType.BINARY:
                    break
                try:
                    self._plane.handle(link, p.decode_to_control(message.data))
                except p.ProtocolError as exc:
                    log.error("media worker %s sent an unreadable message: %s", link.name, exc)
                    break
        finally:
            self._plane.lose(link)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await ws.close()
        return ws

    async def _hello(self, ws: web.WebSocketResponse, nonce: str, remote: str) -> p.Hello | None:
        """The worker's hello if it proves it holds the secret; else the channel is closed."""
        try:
            message = await ws.receive(timeout=HELLO_SECONDS)
            hello = p.decode_to_control(message.data) if message.type is WSMsgType.BINARY else None
        except (TimeoutError, p.ProtocolError):
            hello = None
        if not isinstance(hello, p.Hello) or not p.proof_holds(self._secret.reveal(), nonce, hello):
            log.warning("refused a media worker from %s: it did not prove the secret", remote)
            await ws.close(code=REFUSED_CLOSE_CODE, message=b"refused")
            return None
        return hello


async def _write(ws: web.WebSocketResponse, outbox: asyncio.Queue[bytes | None]) -> None:
    while (data := await outbox.get()) is not None:
        await ws.send_bytes(data)
    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"taken for lost")


class LocalWorker:
    """A media worker in this process, spoken to in the same protocol: every message is
    encoded and decoded as it would be on a channel, and delivered on the next turn of the
    loop, in order."""

    def __init__(self, plane: MediaPlane, welcome: p.Welcome) -> None:
        self._plane = plane
        self.link = WorkerLink("in-process", self._later(self._to_worker), local=True)
        self.worker = MediaWorker(welcome, self._later(self._to_control))
        plane.attach(self.link)
        # Its load and traffic reach the plane as a worker process's do (for the metrics).
        self._reporting = asyncio.ensure_future(self._report(welcome.load_seconds))

    async def _report(self, every: float) -> None:
        send = self._later(self._to_control)
        while True:
            worker = self.worker
            send(
                p.Load(
                    rooms=worker.rooms,
                    participants=worker.participants,
                    cpu=0.0,
                    draining=worker.draining,
                    recording_failures=worker.recording_failures,
                    traffic=worker.traffic(),
                )
            )
            await asyncio.sleep(every)

    @staticmethod
    def _later(deliver: Callable[[bytes], None]) -> Callable[[p.Message], None]:
        loop = asyncio.get_running_loop()

        def send(message: p.Message) -> None:
            loop.call_soon(deliver, p.encode(message))

        return send

    def _to_worker(self, raw: bytes) -> None:
        self.worker.receive(p.decode_to_worker(raw))

    def _to_control(self, raw: bytes) -> None:
        self._plane.handle(self.link, p.decode_to_control(raw))

    async def close(self) -> None:
        self._reporting.cancel()
        await asyncio.gather(self._reporting, return_exceptions=True)
        await self.worker.close()
