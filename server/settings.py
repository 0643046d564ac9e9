"""Every setting declared once, as data: name, default, help and a typed cast.

A value comes from a command-line flag (``--port 9000``), else from the environment
(``NEXUS_PORT=9000``), else from the default. ``nexus-interview settings`` prints them all
and the README's table lists them (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.errors import SettingError
from common.secret import Secret
from media.address_policy import Network, parse_networks

from .witnessing import parse_witnesses

ENV_PREFIX = "NEXUS_"


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def cast(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a whole number between {low} and {high}")
        return value

    return cast


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false (also accepted: 1/0, yes/no, on/off)")


def _host(raw: str) -> str:
    value = raw.strip()
    if value == "localhost":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("expected an IP address to bind to, such as 127.0.0.1") from None
    return value


def _url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// address")
    return value


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("expected a file system path")
    return Path(raw.strip()).expanduser()


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw.strip() else None


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}")
    return value


EVENT_LOOPS = ("asyncio", "uvloop")


def _event_loop(raw: str) -> str:
    value = raw.strip().lower()
    if value not in EVENT_LOOPS:
        raise ValueError(f"expected one of {', '.join(EVENT_LOOPS)}")
    return value


def _stun_urls(raw: str) -> tuple[str, ...]:
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


def _turn_urls(raw: str) -> tuple[str, ...]:
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


def _turn_secret(raw: str) -> Secret[str]:
    value = raw.strip()
    if value and len(value) < 32:
        raise ValueError("expected at least 32 characters (such as `openssl rand -hex 32`)")
    return Secret(value)


def _worker_count(raw: str) -> int:
    """``auto``: one media worker per core of this machine."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    return _int_between(0, 256)(raw)


def _worker_secret(raw: str) -> Secret[str]:
    value = raw.strip()
    if value and len(value) < 32:
        raise ValueError("expected at least 32 characters (such as `openssl rand -hex 32`)")
    return Secret(value)


def _time_of_day(raw: str) -> time:
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("expected a time of day as HH:MM, such as 17:00") from None


def _time_zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name, such as America/Toronto") from None


def _witnesses(raw: str) -> str:
    try:
        parse_witnesses(raw)
    except SettingError as exc:
        raise ValueError(exc.message) from None
    return raw.strip()


_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def _recipient(raw: str) -> str:
    value = raw.strip()
    if value and not _AGE_RECIPIENT.fullmatch(value):
        raise ValueError("expected an age X25519 recipient (age1…, 62 characters) or nothing")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting: ``name`` is the attribute on `Settings`; env and flag derive from it."""

    name: str
    default: str
    help: str
    cast: Callable[[str], Any]
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: str, source: str) -> Any:
        try:
            return self.cast(raw)
        except ValueError as exc:
            shown = "(hidden)" if self.secret else repr(raw)
            raise SettingError(f"{source} {shown} is not valid: {exc}") from None


def _setting(default: str, help: str, cast: Callable[[str], Any], secret: bool = False) -> Any:
    """Declare a `Settings` field together with its default, help text and cast."""
    return dataclasses.field(
        metadata={"setting": {"default": default, "help": help, "cast": cast, "secret": secret}}
    )


@dataclass(frozen=True)
class Settings:
    host: str = _setting("127.0.0.1", "Address the server binds to.", _host)
    port: int = _setting("8080", "TCP port the server listens on.", _int_between(1, 65535))
    public_url: str = _setting(
        "http://127.0.0.1:8080",
        "Address applicants and officers use; applicant links start with it.",
        _url,
    )
    data_dir: Path = _setting(
        "nexus-data",
        "Directory for the database, the session key and recordings. Never holds a "
        "recipient's private key.",
        _path,
    )
    database: Path | None = _setting(
        "", "SQLite database file; empty means DATA_DIR/nexus.sqlite3.", _optional_path
    )
    cookie_secure: bool = _setting(
        "true",
        "Mark session cookies Secure (browsers still accept them on http://localhost).",
        _bool,
    )
    tls_cert: Path | None = _setting(
        "",
        "Certificate chain (PEM) that `serve` and `audit-console` answer HTTPS with, given "
        "with its key; empty: plain HTTP (for a reverse proxy that terminates TLS, such as "
        "deploy/nginx.conf).",
        _optional_path,
    )
    tls_key: Path | None = _setting("", "Private key (PEM) of `tls_cert`.", _optional_path)
    trusted_proxies: tuple[Network, ...] = _setting(
        "",
        "Comma-separated networks of the reverse proxies in front of the server (such as "
        "127.0.0.1 or 10.0.0.5): only a request from one of them has its X-Forwarded-For "
        "believed, for the client's address (sign-in throttle, logs); empty: nobody's.",
        parse_networks,
    )
    session_max_age: int = _setting(
        "28800",
        "Seconds a sign-in lasts before it must be repeated.",
        _int_between(60, 7 * 24 * 3600),
    )
    session_idle_seconds: int = _setting(
        "1800",
        "Seconds without any activity (pages, API, an open call's socket) after which a "
        "sign-in ends.",
        _int_between(60, 24 * 3600),
    )
    max_body_bytes: int = _setting(
        "65536", "Largest request body accepted, in bytes.", _int_between(1024, 64 * 1024 * 1024)
    )
    login_max_failures: int = _setting(
        "5", "Wrong sign-ins in a row before an account is locked.", _int_between(1, 100)
    )
    login_lockout_seconds: int = _setting(
        "900", "How long a locked account stays locked, in seconds.", _int_between(1, 86400)
    )
    login_attempts_per_minute: int = _setting(
        "20", "Sign-in attempts allowed per client address per minute.", _int_between(1, 10000)
    )
    password_checks_pending: int = _setting(
        "8",
        "Password checks that may wait or run at once (all addresses together); beyond, a "
        "sign-in is told to retry shortly.",
        _int_between(1, 1000),
    )
    dob_max_failures: int = _setting(
        "5", "Wrong dates of birth before an applicant link locks.", _int_between(1, 100)
    )
    invite_window_hours: int = _setting(
        "72",
        "Default length of an interview window from `invite`, in hours.",
        _int_between(1, 24 * 90),
    )
    check_in_opens_minutes: int = _setting(
        "15",
        "Minutes before an interview's window starts that its link opens check-in (date "
        "of birth, consent, waiting room); earlier, the link says when to come back.",
        _int_between(0, 7 * 24 * 60),
    )
    no_show_minutes: int = _setting(
        "15",
        "Minutes after an interview's appointment (the start of its window) after which "
        "an applicant who has not joined a call is a no-show (the program office can invite "
        "them again).",
        _int_between(1, 7 * 24 * 60),
    )
    decision_due_time: time = _setting(
        "17:00",
        "End of the officers' working day (HH:MM, office time): a decision still missing "
        "then, for a call that ended before it, is offered to the agency's other officers.",
        _time_of_day,
    )
    office_time_zone: ZoneInfo = _setting(
        "America/Toronto",
        "The offices' time zone (IANA name), for the end of the working day.",
        _time_zone,
    )
    outage_wait_seconds: int = _setting(
        "600",
        "After a server restart, seconds an interrupted call waits for its participants "
        "to come back before the interview is marked interrupted.",
        _int_between(1, 24 * 3600),
    )
    witnesses: str = _setting(
        "",
        "The agencies' witnesses that cosign each session record's checkpoints as the "
        "interview goes: comma-separated name=url=key, the key as `nexus-interview witness` "
        "prints it; empty: none (records are then witnessed offline, `records cosign`).",
        _witnesses,
    )
    cbsa_recipient: str = _setting("", "CBSA's age recipient (public key).", _recipient)
    cbp_recipient: str = _setting("", "CBP's age recipient (public key).", _recipient)
    audit_recipient: str = _setting("", "The audit body's age recipient (public key).", _recipient)
    reconnect_grace_seconds: int = _setting(
        "30",
        "How long a participant whose connection failed keeps their seat, in seconds.",
        _int_between(1, 600),
    )
    ice_servers: tuple[str, ...] = _setting(
        "",
        "Comma-separated STUN server URLs for the server's peer connections; empty means "
        "host candidates only (an unreachable STUN server costs each join up to 5 s).",
        _stun_urls,
    )
    turn_urls: tuple[str, ...] = _setting(
        "",
        "Comma-separated TURN server URLs the browsers may relay through (such as "
        "turns:turn.example.org:443?transport=tcp, for networks that allow only TCP 443); "
        "empty: no relay. Needs the TURN secret; a relay on a private address must also be "
        "in the media peer networks.",
        _turn_urls,
    )
    turn_secret: Secret[str] = _setting(
        "",
        "The TURN server's static-auth-secret (at least 32 characters): each join gets "
        "credentials made with it (`nexus-interview turn-config` writes coturn's side).",
        _turn_secret,
        secret=True,
    )
    turn_credential_seconds: int = _setting(
        "600",
        "Seconds a participant's TURN credentials may open a relay (a relay opened in "
        "time lasts the whole call).",
        _int_between(60, 86400),
    )
    media_turn: bool = _setting(
        "false",
        "The media workers' own connections also gather relay candidates on the TURN "
        "relay, with credentials of their own for each participant: for media workers "
        "that browsers cannot reach directly (behind NAT, or a firewall that only the relay "
        "crosses). Needs the TURN URLs and secret, and a relay that may send to the "
        "browsers (`nexus-interview turn-config --public-peers`).",
        _bool,
    )
    media_peer_networks: tuple[Network, ...] = _setting(
        "",
        "Comma-separated networks (such as 10.0.0.0/8 or 127.0.0.1) the server's media "
        "connections may send connectivity checks to besides public addresses; loopback, "
        "private, link-local and reserved addresses are refused unless listed.",
        parse_networks,
    )
    media_workers: int = _setting(
        "auto",
        "Media worker processes `serve` starts on this machine (auto: one per core); 0 "
        "keeps the media in the server's own process, or, with a media worker secret set, "
        "leaves it all to workers on other machines.",
        _worker_count,
    )
    media_plane_host: str = _setting(
        "127.0.0.1",
        "Address the server listens on for media workers (another machine's workers need "
        "an address they can reach).",
        _host,
    )
    media_plane_port: int = _setting(
        "0",
        "TCP port for media workers; 0 picks a free one (enough when every worker runs on "
        "this machine).",
        _int_between(0, 65535),
    )
    media_worker_secret: Secret[str] = _setting(
        "",
        "Shared secret media workers on other machines prove they hold (at least 32 "
        "characters); empty: a new one at each start, known only to this machine's workers.",
        _worker_secret,
        secret=True,
    )
    media_plane_cert: Path | None = _setting(
        "",
        "Certificate (PEM) for the media workers' channel; with its key, workers connect "
        "over TLS (wss://).",
        _optional_path,
    )
    media_plane_key: Path | None = _setting(
        "", "Private key (PEM) of `media_plane_cert`.", _optional_path
    )
    audit_port: int = _setting(
        "8081", "TCP port of the audit console (`audit-console`).", _int_between(1, 65535)
    )
    audit_dir: Path = _setting(
        "nexus-audit",
        "The audit console's own directory: its session key, signing key and access log.",
        _path,
    )
    log_level: str = _setting("INFO", "Logging level: DEBUG, INFO, WARNING or ERROR.", _log_level)
    event_loop: str = _setting(
        "uvloop",
        "The event loop the servers run on: uvloop (libuv; less CPU per media packet) or "
        "asyncio (the standard library's).",
        _event_loop,
    )

    def __post_init__(self) -> None:
        # Without the secret, TURN URLs would quietly give browsers no relay at all.
        if self.turn_urls and not self.turn_secret:
            raise SettingError(
                "NEXUS_TURN_URLS needs NEXUS_TURN_SECRET, the TURN server's "
                "static-auth-secret, to give participants credentials"
            )

        # Without URLs and secret the media workers would quietly gather no relay.
        if self.media_turn and not (self.turn_urls and self.turn_secret):
            raise SettingError(
                "NEXUS_MEDIA_TURN needs NEXUS_TURN_URLS and NEXUS_TURN_SECRET: the media "
                "workers relay through the same TURN server as the browsers"
            )

        # One without the other would quietly serve plain HTTP, or fail deep in OpenSSL.
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingError(
                "NEXUS_TLS_CERT and NEXUS_TLS_KEY go together: give both (HTTPS) or neither "
                "(plain HTTP)"
            )

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "nexus.sqlite3"

    @property
    def session_key_path(self) -> Path:
        return self.data_dir / "session.key"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name=f.name, **f.metadata["setting"]) for f in dataclasses.fields(Settings)
)


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Settings from flags (``overrides``, raw strings by name), then env, then defaults."""
    env = env or {}
    overrides = overrides or {}
    unknown = set(overrides) - {s.name for s in SETTINGS}
    if unknown:
        raise SettingError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in overrides:
            values[setting.name] = setting.parse(overrides[setting.name], setting.flag)
        elif setting.env in env:
            values[setting.name] = setting.parse(env[setting.env], setting.env)
        else:
            values[setting.name] = setting.parse(setting.default, f"default of {setting.name}")
    return Settings(**values)


def describe(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(env, flag, current value, help) for each setting; secret values are hidden."""
    rows = []
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        shown = (
            repr(Secret(str(value))) if setting.secret else ("" if value is None else str(value))
        )
        rows.append((setting.env, setting.flag, shown, setting.help))
    return rows
