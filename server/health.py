"""The operations listener: Prometheus metrics, liveness, readiness and drain, on an
address of its own (the ``metrics_listen`` setting), answering only the networks the
``metrics_networks`` setting names. Never on the public pages' port: the figures say
how busy the service is, and a drain would be anyone's to start.

- ``GET /healthz``: the process answers (200).
- ``GET /readyz``: 200 if a new call would work: the store answers a real query, the
  server is not draining, and the media workers it needs are connected and reported
  within `STALE_AFTER_SECONDS`; else 503 with a JSON reason, for a load balancer.
- ``GET /metrics``: the app's registry (`server.metrics`).
- ``POST /drain``: drain mode at once (no new calls; those on finish), as SIGTERM does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from .appkeys import METRICS, ROOMS, SETTINGS, STORE, WORKER_PROCESSES
from .media_plane import LOAD_SECONDS
from .serving import start

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 2 * LOAD_SECONDS
"""A worker that has not reported for longer is not counted as ready (it is taken for
dead at `media_plane.DEAD_AFTER_SECONDS`)."""
STORE_SECONDS = 2.0
DRAIN_POLL_SECONDS = 0.5
SERVER = web.AppKey("server", web.Application)


async def readiness(app: web.Application) -> str | None:
    """Why the server should get no new calls now, or None if it is ready."""
    plane, settings = app[ROOMS], app[SETTINGS]
    if plane.draining:
        return "draining: no new calls"
    try:
        async with asyncio.timeout(STORE_SECONDS):
            async with app[STORE].database.transaction() as db:
                await db.execute_fetchall("SELECT COUNT(*) FROM interviews")
    except Exception as exc:
        return f"the store did not answer: {type(exc).__name__}"
    live = plane.live()
    stale = sorted(link.name for link in live if link.silent_for() > STALE_AFTER_SECONDS)
    if stale:
        return f"media workers not reporting: {', '.join(stale)}"
    fresh = [link for link in live if not link.draining]
    if not fresh:
        return "no media worker is connected and taking calls"
    expected = settings.media_workers if WORKER_PROCESSES in app else 0
    local = [link for link in live if link.name.startswith("local-")]
    if len(local) < expected:
        return f"{len(local)} of {expected} local media workers connected"
    return None


async def drain(app: web.Application, limit: float) -> None:
    """Take no new calls and wait up to ``limit`` seconds for the calls on to end."""
    plane = app[ROOMS]
    if not plane.draining:
        plane.draining = True
        log.info("draining: no new calls; %d calls on", len(plane))
    deadline = time.monotonic() + limit
    # The plane has no event for its last call's end: counting twice a second is cheap.
    while len(plane) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(DRAIN_POLL_SECONDS)
    if len(plane):
        log.warning("drain time is up: ending %d calls", len(plane))


def operations_app(server: web.Application) -> web.Application:
    app = web.Application(middlewares=[_networks_only])
    app[SERVER] = server
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/drain", _drain)
    return app


@web.middleware
async def _networks_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    networks = request.app[SERVER][SETTINGS].metrics_networks
    try:
        address = ipaddress.ip_address((request.remote or "").split("%")[0])
    except ValueError:
        address = None
    if address is None or not any(address in network for network in networks):
        return web.json_response(
            {"error": "this address may not use the operations listener (metrics_networks)"},
            status=403,
        )
    return await handler(request)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    reason = await readiness(request.app[SERVER])
    if reason is not None:
        return web.json_response({"status": "not ready", "reason": reason}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = await request.app[SERVER][METRICS].scrape()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def _drain(request: web.Request) -> web.Response:
    # A page open in a browser on an allowed network could post a form here: a browser
    # sends its Origin, and cannot send JSON to another site without a preflight this
    # listener never answers. An operator's curl does neither.
    if "Origin" in request.headers:
        return web.json_response(
            {"error": "drain is an operator's command, not a web page's"}, status=403
        )
    if request.content_type != "application/json":
        return web.json_response(
            {"error": "send it as JSON: curl -X POST -H 'Content-Type: application/json' "
             "-d '{}' http://HOST:PORT/drain"},
            status=415,
        )  # fmt: skip
    server = request.app[SERVER]
    plane = server[ROOMS]
    if not plane.draining:
        plane.draining = True
        log.info("draining on an operator's request: no new calls; %d calls on", len(plane))
    return web.json_response({"status": "draining", "calls": len(plane)})


async def operations_listener(app: web.Application) -> AsyncIterator[None]:
    """The operations listener while the server runs, if ``metrics_listen`` names one."""
    listen = app[SETTINGS].metrics_listen
    if listen is None:
        yield
        return
    runner = await start(operations_app(app), *listen)
    log.info("operations listener (metrics, health, drain) on %s:%d", *listen)
    yield
    await runner.cleanup()
