"""Typed application keys of the signalling layer."""

from __future__ import annotations

import weakref

from aiohttp import web

from server.media_plane import MediaPlane

from .lobby import Lobby

ROOMS = web.AppKey("rooms", MediaPlane)
LOBBY = web.AppKey("lobby", Lobby)
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")
"""Open signalling sockets, closed with 1001 (going away) when the server shuts down; each
carries the label of the principal that opened it (`SOCKET_PRINCIPAL`), so that a sign-in's
open sockets can be counted."""
SOCKET_PRINCIPAL = web.ResponseKey("socket_principal", str)
