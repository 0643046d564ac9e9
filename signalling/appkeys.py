"""Typed application keys of the signalling layer."""

from __future__ import annotations

from aiohttp import web

from .rooms import Rooms

ROOMS = web.AppKey("rooms", Rooms)
