"""How an app is served: aiohttp's runner with our access log (`server.logs`), and our
answer to a request aiohttp cannot parse.

aiohttp answers a malformed request (a bad request line or header, broken chunked
encoding, an over-long line) itself, before any middleware or signal runs: by default
without our security headers, with the parser's message (which quotes the input) as the
body, and with a traceback at ERROR. It offers no hook for that answer, so the connection
class is ours: a `web.RequestHandler` whose `handle_error` answers plainly, made by a
`web.Server` that the runner builds in place of aiohttp's. tests/test_serving.py pins
what this relies on.

With a certificate (the ``tls_cert`` and ``tls_key`` settings) the apps answer HTTPS
themselves: browsers open the camera only to a secure page. Behind a reverse proxy that
terminates TLS (deploy/nginx.conf) they speak plain HTTP to it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod

from common.errors import SettingError

from .logs import AccessLog
from .middleware import SECURITY_HEADERS
from .settings import Settings

log = logging.getLogger(__name__)

MALFORMED = "Bad request: this is not a valid HTTP request.\n"
# A client that stays idle this long is closed (`web.run_app`'s value).
KEEPALIVE_SECONDS = 75.0


class _RequestHandler(web.RequestHandler):
    """An HTTP connection whose error answers carry the security headers, and whose
    answer to a malformed request echoes nothing and logs one line."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status == HTTPStatus.BAD_REQUEST:
            response = self._refuse_malformed(request, exc)
        else:  # 500 and 504 from a failed handler: aiohttp logs the traceback, a bug's
            response = super().handle_error(request, status, exc, message)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-store"
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # After answering, aiohttp drains the body the handler did not read; a body that
        # does not decompress then fails there. The client's fault, answered already: one
        # line, no traceback (which any anonymous client could otherwise write at will).
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError):
            self.logger.info("an unread request body could not be read (%s)", exc)
            return
        super().log_exception(*args, **kw)

    def _refuse_malformed(
        self, request: web.BaseRequest, exc: BaseException | None
    ) -> web.StreamResponse:
        # The parser's message quotes the input, which may hold a token: name its kind only.
        kind = type(exc).__name__ if exc else "unknown"
        # Non-HTTP bytes as a first request are scanners or TLS on the plain port: noise.
        quiet = isinstance(exc, BadHttpMethod) and self._request_count == 1
        log = self.logger.debug if quiet else self.logger.info
        log("refused a malformed request from %s (%s)", request.remote, kind)
        response = web.Response(status=HTTPStatus.BAD_REQUEST, text=MALFORMED)
        response.force_close()  # the parser cannot find where the next request starts
        return response


class _Server(web.Server):
    """aiohttp's connection factory, making our connections."""

    def __call__(self) -> web.RequestHandler:
        return _RequestHandler(self, loop=self._loop, **self._kwargs)

    @classmethod
    def like(cls, made: web.Server) -> _Server:
        """The same server as ``made`` (the application's handler, request factory and
        connection settings), making our connections."""
        return cls(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


class _AppRunner(web.AppRunner):
    __slots__ = ()

    async def _make_server(self) -> web.Server:
        return _Server.like(await super()._make_server())


def runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner every app is served with (``kwargs`` as for `web.AppRunner`)."""
    defaults: dict[str, Any] = {
        "access_log_class": AccessLog,
        "keepalive_timeout": KEEPALIVE_SECONDS,
    }
    return _AppRunner(app, **(defaults | kwargs))


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server's TLS context with ``cert`` (PEM, the chain) and its ``key``: TLS 1.2 at
    least, Python's default ciphers. SettingError, saying which file and why, if they
    cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # an OSError too, so caught first
        raise SettingError(
            f"the TLS certificate {cert} and key {key} are not a PEM certificate chain and "
            f"its private key ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        missing = exc.filename or f"{cert} or {key}"
        raise SettingError(
            f"cannot read the TLS certificate or key {missing}: {exc.strerror}"
        ) from None
    return context


def settings_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context the ``tls_cert`` and ``tls_key`` settings name (None: plain
    HTTP); warns of a setting that contradicts it, as a start is the moment to fix it."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = tls_context(settings.tls_cert, settings.tls_key)
    if not settings.public_url.startswith("https://"):
        log.warning(
            "serving HTTPS, but NEXUS_PUBLIC_URL is %s: applicant links and the socket's "
            "origin check expect an https:// address",
            settings.public_url,
        )
    if not settings.cookie_secure:
        log.warning("serving HTTPS with NEXUS_COOKIE_SECURE off: sessions could leak over HTTP")
    return context


async def start(
    app: web.Application,
    host: str,
    port: int,
    *,
    handle_signals: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """``app`` started and listening on ``host``:``port`` (0 picks a free port: see
    ``runner.addresses``), over TLS with ``ssl_context``. The caller owns the runner and
    calls ``cleanup()``."""
    started = runner(app, handle_signals=handle_signals)
    await started.setup()
    try:
        await web.TCPSite(started, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await started.cleanup()
        raise
    return started


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop named by the ``event_loop`` setting."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def serve(
    app: web.Application,
    host: str,
    port: int,
    event_loop: str = "asyncio",
    ssl_context: ssl.SSLContext | None = None,
    drain: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` (over TLS with ``ssl_context``) on ``event_loop`` (see
    `loop_factory`) until SIGINT or SIGTERM, then ``drain`` it (a second signal cuts the
    drain short), then
    shut it down while everything it runs is still alive: an interview's step under way
    (journaled, not yet stored) completes before the store closes, rather than being
    cancelled with every other task."""
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory(event_loop)) as loop,
    ):
        loop.run(_serve_until_stopped(app, host, port, ssl_context, drain))


async def _serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    drain: Callable[[], Awaitable[None]] | None = None,
) -> None:
    started = await start(app, host, port, ssl_context=ssl_context)
    stopping, forced = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        (forced if stopping.is_set() else stopping).set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, signalled)
    try:
        await stopping.wait()
        if drain is not None:
            draining = asyncio.ensure_future(drain())
            cut_short = asyncio.ensure_future(forced.wait())
            await asyncio.wait((draining, cut_short), return_when=asyncio.FIRST_COMPLETED)
            for task in (draining, cut_short):
                task.cancel()
            await asyncio.gather(draining, cut_short, return_exceptions=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await started.cleanup()
