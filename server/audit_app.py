"""`create_audit_app`: the audit console, a process apart from the interview server. It
holds the audit body's private identity, reads the session records and the application
store without ever writing them, and keeps its own tamper-evident access log."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

from aiohttp import web

import web as web_assets
from recordings.keys import Identity
from recordings.tlog import NoteVerifier
from recordings.witness_keys import WitnessKey

from . import middleware
from .app import serve_pages
from .appkeys import (
    AUDIT,
    CATALOGS,
    CLOCK,
    PASSWORD_CHECKS,
    SETTINGS,
    SIGN_IN,
    STORE,
    THROTTLE,
    TRAIL,
)
from .audit_console import AuditConsole
from .audit_trail import AuditTrail
from .auth import LoginThrottle, Passwords
from .i18n import Catalogs
from .password_checks import PasswordChecks
from .settings import Settings
from .sign_in import StaffSignIn
from .store import Store
from .types import Clock, Role, utc_now
from .views import access, public
from .views import audit_console as views
from .views.routes import Route

AUDIT_COOKIE = "nexus_audit"


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/sessions")


AUDIT_ROUTES: tuple[Route, ...] = (
    Route("GET", "/", _home, access.AUDITOR),
    Route("GET", "/login", public.login_page, access.PUBLIC),
    Route("POST", "/login", views.login, access.PUBLIC),
    Route("POST", "/logout", views.logout, access.PUBLIC),
    Route("POST", "/language", public.choose_language, access.PUBLIC),
    Route("POST", "/api/language", public.switch_language, access.PUBLIC),
    Route("GET", "/sessions", views.sessions_page, access.AUDITOR),
    Route("GET", "/sessions/{interview_id}", views.session_page, access.AUDITOR),
    Route("GET", "/api/statuses", views.statuses, access.AUDITOR),
    Route("GET", "/api/sessions/{interview_id}", views.session_data, access.AUDITOR),
    Route("GET", "/media/{interview_id}/{file}", views.media, access.AUDITOR),
    Route("GET", "/stills/{interview_id}/{number}", views.still, access.AUDITOR),
    Route("GET", "/export/{interview_id}/{seat}", views.export, access.AUDITOR),
)


def create_audit_app(
    settings: Settings,
    identities: Sequence[Identity],
    server_keys: Sequence[NoteVerifier],
    witnesses: Sequence[WitnessKey] = (),
    clock: Clock = utc_now,
    passwords: Passwords | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            middleware.errors,
            middleware.csrf,
            middleware.access_middleware(AUDIT_ROUTES),
        ],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[STORE] = store = Store(settings.database_path, clock, read_only=True, settings=settings)
    checks = app[PASSWORD_CHECKS] = PasswordChecks(
        passwords or Passwords(), settings.password_checks_pending
    )
    app[SIGN_IN] = StaffSignIn(store, checks, clock, frozenset({Role.AUDITOR}))
    app[THROTTLE] = LoginThrottle(settings.login_attempts_per_minute, clock)
    app[CATALOGS] = Catalogs(web_assets.LOCALE)
    app[AUDIT] = AuditConsole(
        settings.data_dir / "records",
        identities,
        server_keys,
        store,
        witnesses,
    )
    app[TRAIL] = AuditTrail(settings.audit_dir, urlsplit(settings.public_url).netloc)
    serve_pages(app, settings, AUDIT_ROUTES, AUDIT_COOKIE, settings.audit_dir / "session.key")
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    console = app[AUDIT]
    checks = asyncio.create_task(console.checks.run())
    console.checks.want(console.recently_written_first())
    yield
    checks.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await checks
    app[TRAIL].close()
    app[PASSWORD_CHECKS].close()
    await app[STORE].close()
