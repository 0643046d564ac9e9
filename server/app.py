"""`create_app(settings)`: the only place that wires the interview server together."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import os
import secrets
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage

import web as web_assets
from common.errors import NexusError
from common.names import Agency, RoomId
from common.secret import Secret
from media import protocol as p
from signalling.lobby import Lobby
from signalling.waiting_room import Pairing

from . import appointments, middleware
from .appkeys import (
    BOOKING_JOBS,
    CATALOGS,
    CLOCK,
    DEVICE_CHECKS,
    LIVES,
    LOBBY,
    MEDIA_CHANNEL,
    METRICS,
    OPERATIONS,
    OUTBOX,
    PASSWORD_CHECKS,
    RECORDS,
    ROOMS,
    SETTINGS,
    SIGN_IN,
    SOCKET_SESSIONS,
    SOCKETS,
    STILLS,
    STORE,
    THROTTLE,
    WITNESSING,
    WORKER_PROCESSES,
)
from .auth import LoginThrottle, Passwords
from .booking_jobs import BookingJobs
from .health import operations_listener
from .i18n import Catalogs
from .interview_actions import Seat
from .interview_state import Phase
from .invitations import Outbox, email_enabled, postman_for
from .letters import Letters
from .live_stills import LiveStills
from .lives import Change, Lives, need_of
from .media_channel import LocalWorker, MediaChannel
from .media_plane import LOAD_SECONDS, MediaPlane
from .metrics import Metrics
from .operations_log import OperationsLog
from .operations_witnessing import witness_operations
from .password_checks import PasswordChecks
from .rate_limits import SlidingWindow
from .received_media import ReceivedMedia
from .record_checks import record_checks
from .retention import retention_sweeps
from .session_records import SessionRecords
from .settings import Settings
from .sign_in import StaffSignIn
from .socket_sessions import SocketSessions
from .store import Store
from .types import Clock, Role, utc_now
from .views import device_check
from .views.call_socket import close_sockets
from .views.http import page_context
from .views.routes import ROUTES, STATIC_PREFIX, Route
from .views.stills import MAX_STILL_BYTES
from .witnessing import Witnessing, cosigned_size, newest_checkpoint, parse_witnesses
from .worker_processes import WorkerProcesses

SESSION_COOKIE = "nexus_session"
SWEEP_SECONDS = 30.0
"""How often time-driven transitions (no-shows) are looked for."""

log = logging.getLogger(__name__)


def session_key(path: Path) -> Secret[bytes]:
    """The cookie-encryption key, made on first start (readable by this user only)."""
    if path.exists():
        key = base64.urlsafe_b64decode(path.read_bytes().strip())
        if len(key) != 32:
            raise ValueError(f"{path} does not hold a 32-byte key")
        return Secret(key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = os.urandom(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(base64.urlsafe_b64encode(key))
    return Secret(key)


def serve_pages(
    app: web.Application,
    settings: Settings,
    routes: Sequence[Route],
    cookie_name: str,
    key_path: Path,
) -> None:
    """What both web apps (this server, the audit console) share: the encrypted session
    cookie, the templates with their page context, the routes, static files and headers."""
    storage = EncryptedCookieStorage(
        session_key(key_path).reveal(),
        cookie_name=cookie_name,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="Strict",
        max_age=settings.session_max_age,
    )
    # The session middleware must run outside the others, so it goes first.
    app.middlewares.insert(0, aiohttp_session.session_middleware(storage))
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(web_assets.TEMPLATES),
        autoescape=True,
        context_processors=[page_context],
    )
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_static(STATIC_PREFIX, web_assets.STATIC)
    app.on_response_prepare.append(middleware.security_headers)


def create_app(
    settings: Settings, clock: Clock = utc_now, passwords: Passwords | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=max(settings.max_body_bytes, MAX_STILL_BYTES),
        middlewares=[
            middleware.request_ids,
            middleware.errors,
            middleware.csrf,
            middleware.access_middleware(ROUTES),
        ],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    store = app[STORE] = Store(settings.database_path, clock, settings=settings)
    checks = app[PASSWORD_CHECKS] = PasswordChecks(
        passwords or Passwords(), settings.password_checks_pending
    )
    staff = frozenset({Role.OFFICER, Role.AUDITOR, Role.OPERATOR})
    app[SIGN_IN] = StaffSignIn(store, checks, clock, staff)
    app[SOCKET_SESSIONS] = SocketSessions()
    app[THROTTLE] = LoginThrottle(settings.login_attempts_per_minute, clock)
    app[DEVICE_CHECKS] = SlidingWindow(device_check.CHECKS_PER_HOUR, 3600, clock)
    app[CATALOGS] = Catalogs(web_assets.LOCALE)

    serve_pages(app, settings, ROUTES, SESSION_COOKIE, settings.session_key_path)
    records = SessionRecords(settings)
    app[RECORDS] = records
    operations = app[OPERATIONS] = OperationsLog(
        settings.data_dir, urlsplit(settings.public_url).netloc
    )
    app[BOOKING_JOBS] = BookingJobs(store, settings, operations, clock)
    operations.note_keys(
        {
            "cbsa_recipient": settings.cbsa_recipient,
            "cbp_recipient": settings.cbp_recipient,
            "audit_recipient": settings.audit_recipient,
            "checkpoint_key": records.signer.verifier_key,
            "witnesses": settings.witnesses,
        }
    )
    # Stills outlive a call's end: they go when the interview is over.
    app[STILLS] = LiveStills(settings.data_dir / "live-stills")
    rooms = app[ROOMS] = MediaPlane(
        ReceivedMedia(records),
        on_event=lambda room_id, event: app[LIVES].room_event(room_id, event),
        on_lost=lambda room_id, worker, since, listed: app[LIVES].media_lost(
            room_id, worker, since, listed
        ),
        record=bool(records.recipients),
    )
    witnesses = parse_witnesses(settings.witnesses)
    witnessing = app[WITNESSING] = Witnessing(witnesses) if witnesses else None
    lives = app[LIVES] = Lives(
        store,
        records,
        clock,
        end_call=lambda room_id, detail: rooms.end(room_id, **detail),
        stop_recording=rooms.stop_recording,
        no_show_minutes=settings.no_show_minutes,
        outage_wait_seconds=settings.outage_wait_seconds,
        witness=(lambda room_id: witnessing.submit(records.directory / room_id))
        if witnessing is not None
        else None,
    )
    app[LOBBY] = Lobby(partial(_seat_officers, lives), clock=lambda: clock().timestamp())
    app[METRICS] = Metrics(rooms, app[SIGN_IN], app[LOBBY], store)
    lives.listen(partial(_tell_about, app))
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_sockets)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(witness_operations)  # inside the witnessing's life
    app.cleanup_ctx.append(_booking_jobs_ctx)
    app.cleanup_ctx.append(_outbox_ctx)
    app.cleanup_ctx.append(retention_sweeps)
    app.cleanup_ctx.append(record_checks)
    app.cleanup_ctx.append(_media_ctx)
    app.cleanup_ctx.append(operations_listener)
    app.cleanup_ctx.append(_startup_heap_frozen)
    return app


def _tell_about(app: web.Application, change: Change) -> None:
    """Who must hear of a change in an interview's life, once it is stored."""
    room_id, events = RoomId(change.interview_id), change.events
    lobby, rooms = app[LOBBY], app[ROOMS]
    if isinstance(change.action, Seat):
        lobby.officer_seated(change.action.officer_id, change.action.agency)
    if "call-start" in events:
        lobby.call_started(change.interview_id)
    elif "seat" in events:
        need = need_of(change.after)
        if need is not None:
            lobby.needs_now(change.interview_id, need)
    if "next-step" in events and "end" not in events:
        # CBSA decided after the call ended: the applicant waits for the CBP step now.
        rooms.tell_ended(room_id, by="cbsa", next="cbp")
    for what in ("decision", "still"):
        if what in events:
            rooms.record_updated(room_id, what)
    if change.after.ended:
        app[STILLS].drop(change.interview_id)
        for agency in Agency:  # ended without a decision (a no-show): no form is kept
            app[LIVES].spawn(app[STORE].drafts.discard(change.interview_id, agency))
        if change.before.phase is not Phase.AWAITING_DECISIONS and "close" not in events:
            # Ended without a decision (no-show, interrupted): officers waiting in its
            # call are let go.
            app[LIVES].spawn(rooms.end(room_id, by="server", next="done"))


async def _seat_officers(lives: Lives, pairing: Pairing) -> bool:
    """The waiting room paired them: seat the officers in the interview."""
    try:
        for agency, officer_id in pairing.officers.items():
            await lives.act(pairing.interview_id, Seat(agency, officer_id))
    except NexusError:
        return False
    return True


async def _startup_heap_frozen(app: web.Application) -> AsyncIterator[None]:
    """What is alive once the app has started (modules, routes, catalogs) lives as long as
    the process. Full garbage collections pause forwarding in every room (about 20 ms for
    this heap alone, docs/PERFORMANCE.md): keep them from walking it each time."""
    gc.freeze()
    yield
    gc.unfreeze()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store opens first and closes last: rooms write their final events to it. In
    between, interviews a stop or a crash cut off resume, and time does its part."""
    await app[STORE].open()
    witnessing = app[WITNESSING]
    if witnessing is not None:
        await witnessing.start()
        for directory in await asyncio.to_thread(_not_yet_witnessed, app[RECORDS], witnessing):
            witnessing.submit(directory)
    lives = app[LIVES]
    await lives.resume()
    no_shows = partial(appointments.follow_up_no_shows, app[STORE], app[SETTINGS])
    sweeping = asyncio.ensure_future(_keep_sweeping(lives, lambda: no_shows(app[CLOCK]())))
    yield
    sweeping.cancel()
    await asyncio.gather(sweeping, return_exceptions=True)
    lives.close()
    await app[LOBBY].close()
    app[STILLS].close()
    await lives.drain()
    await app[RECORDS].close_all()
    if witnessing is not None:
        await witnessing.close()  # what is not cosigned yet is taken again at the next start
    app[PASSWORD_CHECKS].close()
    await app[STORE].close()


async def _booking_jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """A booking run under way when the server stops is cancelled (the booking it was
    writing rolls back) and logged as interrupted, before the store closes."""
    yield
    await app[BOOKING_JOBS].close()


async def _outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """The invitation e-mails' sender, when a sender address is set: after the store
    opens, closed before it (a message being sent is let finish and marked)."""
    settings = app[SETTINGS]
    if not email_enabled(settings):
        yield
        return
    letters = Letters(app[CATALOGS], settings)
    outbox = app[OUTBOX] = Outbox(app[STORE], settings, letters, postman_for(settings), app[CLOCK])
    await outbox.start()
    yield
    await outbox.close()


def media_welcome(settings: Settings, records: SessionRecords) -> p.Welcome:
    """What every media worker is told when it joins: public recipients only."""
    return p.Welcome(
        recipients=[str(recipient) for recipient in records.recipients],
        grace_seconds=float(settings.reconnect_grace_seconds),
        ice_servers=list(settings.ice_servers),
        peer_networks=[str(network) for network in settings.media_peer_networks],
        load_seconds=LOAD_SECONDS,
    )


async def _media_ctx(app: web.Application) -> AsyncIterator[None]:
    """The media plane: a worker in this process (``media_workers`` 0, no worker secret),
    or the workers' listener and this machine's worker processes. Closed before the store:
    ending the calls writes their last events."""
    settings, plane = app[SETTINGS], app[ROOMS]
    welcome = media_welcome(settings, app[RECORDS])
    remote = bool(settings.media_worker_secret.reveal())
    local = LocalWorker(plane, welcome) if settings.media_workers == 0 and not remote else None
    channel = processes = None
    if settings.media_workers > 0 or remote:
        secret = settings.media_worker_secret.reveal() or secrets.token_hex(32)
        channel = app[MEDIA_CHANNEL] = MediaChannel(
            plane, welcome, Secret(secret.encode()), _channel_tls(settings)
        )
        await channel.start(settings.media_plane_host, settings.media_plane_port)
        if settings.media_workers > 0:
            processes = app[WORKER_PROCESSES] = WorkerProcesses(
                settings.media_workers,
                channel.url,
                Secret(secret),
                settings.event_loop,
                settings.log_level,
                settings.log_format,
            )
            processes.start()
    yield
    await plane.close()
    if processes is not None:
        await processes.stop()
    if channel is not None:
        await channel.close()
    if local is not None:
        await local.close()


def _channel_tls(settings: Settings) -> ssl.SSLContext | None:
    if settings.media_plane_cert is None or settings.media_plane_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.media_plane_cert, settings.media_plane_key)
    return context


def _not_yet_witnessed(records: SessionRecords, witnessing: Witnessing) -> list[Path]:
    """Records whose newest checkpoint some witness has not cosigned (a witness that was
    down, a stop before it answered)."""
    if not records.directory.is_dir():
        return []
    waiting = []
    for directory in sorted(records.directory.iterdir()):
        newest = newest_checkpoint(directory)
        if newest is None:
            continue
        size = int(newest.stem)
        if any(cosigned_size(directory, w.key) < size for w in witnessing.witnesses):
            waiting.append(directory)
    return waiting


async def _keep_sweeping(lives: Lives, no_shows: Callable[[], Awaitable[object]]) -> None:
    """Time's transitions, then the operator's rule for the no-shows they made."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await lives.sweep()
            await no_shows()
        except Exception:
            log.exception("the interviews' sweep failed")
