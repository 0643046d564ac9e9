"""How each setting's text becomes its value: one cast per kind of value, each raising
`ValueError` with what a person should write instead (`server.settings` adds the name)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from datetime import time
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.errors import SettingError
from common.secret import Secret

from .witnessing import parse_witnesses


def int_between(low: int, high: int) -> Callable[[str], int]:
    def cast(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a whole number between {low} and {high}")
        return value

    return cast


def yes_no(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false (also accepted: 1/0, yes/no, on/off)")


def bind_host(raw: str) -> str:
    value = raw.strip()
    if value == "localhost":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("expected an IP address to bind to, such as 127.0.0.1") from None
    return value


def http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// address")
    return value


def file_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("expected a file system path")
    return Path(raw.strip()).expanduser()


def optional_path(raw: str) -> Path | None:
    return file_path(raw) if raw.strip() else None


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}")
    return value


EVENT_LOOPS = ("asyncio", "uvloop")
LOG_FORMATS = ("text", "json")


def log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}")
    return value


def host_port(raw: str) -> tuple[str, int] | None:
    """``host:port`` (an IPv6 host in brackets), or None for empty."""
    value = raw.strip()
    if not value:
        return None
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise ValueError("expected host:port, such as 127.0.0.1:9100")
    return bind_host(host.strip("[]")), int_between(1, 65535)(port)


def event_loop(raw: str) -> str:
    value = raw.strip().lower()
    if value not in EVENT_LOOPS:
        raise ValueError(f"expected one of {', '.join(EVENT_LOOPS)}")
    return value


def stun_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in raw.split(",") if part.strip())
    for url in urls:
        if not re.fullmatch(r"stuns?:[A-Za-z0-9.-]+(:\d{1,5})?", url):
            raise ValueError(f"{url!r} is not a STUN URL such as stun:stun.example.org:3478")
    return urls


# RFC 7065: turn:host[:port][?transport=udp|tcp], turns:host[:port][?transport=tcp]
# (browsers do not speak TURN over DTLS, so turns: is TCP only).
_TURN_URL = re.compile(
    r"(?P<scheme>turns?):(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:(?P<port>\d{1,5}))?"
    r"(\?transport=(?P<transport>udp|tcp))?"
)


def turn_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in raw.split(",") if part.strip())
    for url in urls:
        match = _TURN_URL.fullmatch(url)
        if match is None:
            raise ValueError(
                f"{url!r} is not a TURN URL such as turn:turn.example.org:3478?transport=udp "
                "or turns:turn.example.org:443?transport=tcp"
            )
        if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
            raise ValueError(f"{url!r}: a port is between 1 and 65535")
        if match["scheme"] == "turns" and match["transport"] == "udp":
            raise ValueError(f"{url!r}: browsers speak turns: over TCP only (transport=tcp)")
    return urls


def turn_secret(raw: str) -> Secret[str]:
    value = raw.strip()
    if value and len(value) < 32:
        raise ValueError("expected at least 32 characters (such as `openssl rand -hex 32`)")
    return Secret(value)


def worker_count(raw: str) -> int:
    """``auto``: one media worker per core of this machine."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    return int_between(0, 256)(raw)


def worker_secret(raw: str) -> Secret[str]:
    value = raw.strip()
    if value and len(value) < 32:
        raise ValueError("expected at least 32 characters (such as `openssl rand -hex 32`)")
    return Secret(value)


def time_of_day(raw: str) -> time:
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("expected a time of day as HH:MM, such as 17:00") from None


def time_zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name, such as America/Toronto") from None


NO_SHOW_RULES = ("return", "re-invite")


def no_show_rule(raw: str) -> str:
    value = raw.strip().lower()
    if value not in NO_SHOW_RULES:
        raise ValueError(f"expected one of {', '.join(NO_SHOW_RULES)}")
    return value


def witness_list(raw: str) -> str:
    try:
        parse_witnesses(raw)
    except SettingError as exc:
        raise ValueError(exc.message) from None
    return raw.strip()


_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def age_recipient(raw: str) -> str:
    value = raw.strip()
    if value and not _AGE_RECIPIENT.fullmatch(value):
        raise ValueError("expected an age X25519 recipient (age1…, 62 characters) or nothing")
    return value


_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def mail_address(raw: str) -> str:
    value = raw.strip()
    if value and not _ADDRESS.fullmatch(value):
        raise ValueError("expected an e-mail address such as nexus@cbsa-asfc.gc.ca, or nothing")
    return value


SMTP_TLS_MODES = ("starttls", "tls", "none")


def smtp_tls(raw: str) -> str:
    value = raw.strip().lower()
    if value not in SMTP_TLS_MODES:
        raise ValueError(f"expected one of {', '.join(SMTP_TLS_MODES)}")
    return value
