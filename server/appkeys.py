"""Typed keys for what `create_app` builds and the views use (no module-level state)."""

from __future__ import annotations

import weakref

from aiohttp import web

from signalling.lobby import Lobby

from .audit_console import AuditConsole
from .audit_trail import AuditTrail
from .auth import LoginThrottle, Principal
from .booking_jobs import BookingJobs
from .i18n import Catalogs
from .invitations import Outbox
from .live_stills import LiveStills
from .lives import Lives
from .media_channel import MediaChannel
from .media_plane import MediaPlane
from .metrics import Metrics
from .operations_log import OperationsLog
from .password_checks import PasswordChecks
from .rate_limits import SlidingWindow
from .session_records import SessionRecords
from .settings import Settings
from .sign_in import StaffSignIn
from .socket_sessions import SocketSessions
from .store import Store
from .types import Clock
from .witnessing import Witnessing
from .worker_processes import WorkerProcesses

SETTINGS = web.AppKey("settings", Settings)
OPERATIONS = web.AppKey("operations", OperationsLog)
BOOKING_JOBS = web.AppKey("booking_jobs", BookingJobs)
"""Booking runs started from the operator's console, one at a time."""
STORE = web.AppKey("store", Store)
THROTTLE = web.AppKey("throttle", LoginThrottle)
DEVICE_CHECKS = web.AppKey("device_checks", SlidingWindow)
"""The device check's requests for relays, counted per invitation."""
PASSWORD_CHECKS = web.AppKey("password_checks", PasswordChecks)
SIGN_IN = web.AppKey("sign_in", StaffSignIn)
SOCKET_SESSIONS = web.AppKey("socket_sessions", SocketSessions)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
LIVES = web.AppKey("lives", Lives)
WITNESSING: web.AppKey[Witnessing | None] = web.AppKey("witnessing")
RECORDS: web.AppKey[SessionRecords] = web.AppKey("records")
CATALOGS = web.AppKey("catalogs", Catalogs)
MEDIA_CHANNEL = web.AppKey("media_channel", MediaChannel)
"""The listener media workers join (absent when the media stays in-process)."""
WORKER_PROCESSES = web.AppKey("worker_processes", WorkerProcesses)
"""This machine's media worker processes (absent when none run)."""
STILLS = web.AppKey("stills", LiveStills)
OUTBOX = web.AppKey("outbox", Outbox)
"""Sends the applicants' invitation e-mails (absent when no sender address is set)."""
AUDIT = web.AppKey("audit", AuditConsole)
TRAIL = web.AppKey("trail", AuditTrail)
ROOMS = web.AppKey("rooms", MediaPlane)
METRICS = web.AppKey("metrics", Metrics)
"""The app's own Prometheus registry and what feeds it (`server.metrics`)."""
LOBBY = web.AppKey("lobby", Lobby)
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")
"""Open signalling sockets, closed with 1001 (going away) when the server shuts down; each
carries the label of the principal that opened it (`SOCKET_PRINCIPAL`), so that a sign-in's
open sockets can be counted."""
SOCKET_PRINCIPAL = web.ResponseKey("socket_principal", str)
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
"""The caller, set by the access middleware on every routed request (None: anonymous)."""
