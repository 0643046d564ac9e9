"""Every setting declared once, as data: name, default, help and a typed cast.

A value comes from a command-line flag (``--port 9000``), else from the environment
(``NEXUS_PORT=9000``), else from the default. ``nexus-interview settings`` prints them all
and the README's table lists them (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common.errors import SettingError
from common.secret import Secret
from media.address_policy import Network, parse_networks
from signalling.waiting_room import DEFAULT_INTERVIEW_SECONDS

from . import setting_casts as cast

ENV_PREFIX = "NEXUS_"


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
    host: str = _setting("127.0.0.1", "Address the server binds to.", cast.bind_host)
    port: int = _setting("8080", "TCP port the server listens on.", cast.int_between(1, 65535))
    public_url: str = _setting(
        "http://127.0.0.1:8080",
        "Address applicants and officers use; applicant links start with it.",
        cast.http_url,
    )
    data_dir: Path = _setting(
        "nexus-data",
        "Directory for the database, the session key and recordings. Never holds a "
        "recipient's private key.",
        cast.file_path,
    )
    database: Path | None = _setting(
        "", "SQLite database file; empty means DATA_DIR/nexus.sqlite3.", cast.optional_path
    )
    cookie_secure: bool = _setting(
        "true",
        "Mark session cookies Secure (browsers still accept them on http://localhost).",
        cast.yes_no,
    )
    tls_cert: Path | None = _setting(
        "",
        "Certificate chain (PEM) that `serve` and `audit-console` answer HTTPS with, given "
        "with its key; empty: plain HTTP (for a reverse proxy that terminates TLS, such as "
        "deploy/nginx.conf).",
        cast.optional_path,
    )
    tls_key: Path | None = _setting("", "Private key (PEM) of `tls_cert`.", cast.optional_path)
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
        cast.int_between(60, 7 * 24 * 3600),
    )
    session_idle_seconds: int = _setting(
        "1800",
        "Seconds without any activity (pages, API, an open call's socket) after which a "
        "sign-in ends.",
        cast.int_between(60, 24 * 3600),
    )
    max_body_bytes: int = _setting(
        "65536",
        "Largest request body accepted, in bytes.",
        cast.int_between(1024, 64 * 1024 * 1024),
    )
    login_max_failures: int = _setting(
        "5", "Wrong sign-ins in a row before an account is locked.", cast.int_between(1, 100)
    )
    login_lockout_seconds: int = _setting(
        "900", "How long a locked account stays locked, in seconds.", cast.int_between(1, 86400)
    )
    login_attempts_per_minute: int = _setting(
        "20", "Sign-in attempts allowed per client address per minute.", cast.int_between(1, 10000)
    )
    password_checks_pending: int = _setting(
        "8",
        "Password checks that may wait or run at once (all addresses together); beyond, a "
        "sign-in is told to retry shortly.",
        cast.int_between(1, 1000),
    )
    dob_max_failures: int = _setting(
        "5", "Wrong dates of birth before an applicant link locks.", cast.int_between(1, 100)
    )
    invite_window_hours: int = _setting(
        "72",
        "Default length of an interview window from `invite`, in hours.",
        cast.int_between(1, 24 * 90),
    )
    check_in_opens_minutes: int = _setting(
        "15",
        "Minutes before an interview's window starts that its link opens check-in (date "
        "of birth, consent, waiting room); earlier, the link says when to come back.",
        cast.int_between(0, 7 * 24 * 60),
    )
    no_show_minutes: int = _setting(
        "15",
        "Minutes after an interview's appointment (the start of its window) after which "
        "an applicant who has not joined a call is a no-show (the program office can invite "
        "them again).",
        cast.int_between(1, 7 * 24 * 60),
    )
    no_show_rule: str = _setting(
        "return",
        "What becomes of an applicant who missed their interview: `return` (the "
        "application goes back to the queue, pending, for the next `schedule`) or "
        "`re-invite` (a new appointment in the next free slot, up to NO_SHOW_RE_INVITES "
        "times, then back to the queue).",
        cast.no_show_rule,
    )
    no_show_re_invites: int = _setting(
        "1",
        "How many times one application is re-invited after missing an interview, when "
        "NO_SHOW_RULE is `re-invite`.",
        cast.int_between(0, 10),
    )
    slot_minutes: int = _setting(
        str(DEFAULT_INTERVIEW_SECONDS // 60),
        "Length of one officer's interview slot in minutes: `schedule` books each joint "
        "interview into one slot of a CBSA and one of a CBP officer (two-step: a CBSA slot, "
        "then the CBP slot after it).",
        cast.int_between(5, 240),
    )
    appointment_grace_minutes: int = _setting(
        "60",
        "Minutes a scheduled appointment's link stays open after its slot ends, for "
        "officers running late.",
        cast.int_between(0, 24 * 60),
    )
    applicant_time_zone: ZoneInfo = _setting(
        "America/Toronto",
        "Applicants' time zone (IANA name) when their application gives none: their "
        "appointment's times are shown in it.",
        cast.time_zone,
    )
    mail_from: str = _setting(
        "",
        "Sender address of the applicants' invitation and reminder e-mails; empty: no "
        "e-mail is sent (`invite` prints the link only).",
        cast.mail_address,
    )
    bounce_address: str = _setting(
        "",
        "Envelope sender (Return-Path) of the e-mails, where the mail system returns those "
        "it cannot deliver; deliver that mailbox to `nexus-interview invitations bounce` "
        "to mark them bounced. Empty: the sender address.",
        cast.mail_address,
    )
    smtp_host: str = _setting(
        "",
        "SMTP server the e-mails go through; empty: they are written to a Maildir, "
        "DATA_DIR/mail, and nothing leaves the machine.",
        str.strip,
    )
    smtp_port: int = _setting("587", "The SMTP server's TCP port.", cast.int_between(1, 65535))
    smtp_tls: str = _setting(
        "starttls",
        "How the SMTP connection is secured: starttls (upgrade after connecting, usually "
        "port 587), tls (TLS from the start, usually port 465) or none.",
        cast.smtp_tls,
    )
    smtp_ca_file: Path | None = _setting(
        "",
        "CA certificates (PEM) the SMTP server's certificate must chain to, for a relay "
        "with a certificate of a private CA; empty: the system's trusted CAs.",
        cast.optional_path,
    )
    smtp_username: str = _setting(
        "", "User name for the SMTP server; empty: no authentication.", str.strip
    )
    smtp_password: Secret[str] = _setting(
        "", "Password for the SMTP user name.", Secret, secret=True
    )
    mail_attempts: int = _setting(
        "5",
        "Tries per e-mail while the SMTP server answers 'try again later' (4xx) or cannot "
        "be reached, with waits growing between them; then it is marked failed.",
        cast.int_between(1, 20),
    )
    reminder_hours: int = _setting(
        "24",
        "Hours before an appointment that a reminder e-mail is sent (0: none).",
        cast.int_between(0, 24 * 14),
    )
    schedule_notice_hours: int = _setting(
        "24",
        "`schedule` books appointments no sooner than this many hours ahead, so that the "
        "invitation gives the applicant notice (a no-show's re-invitation too).",
        cast.int_between(0, 24 * 14),
    )
    change_until_hours: int = _setting(
        "24",
        "Applicants may reschedule or cancel their appointment from their link until this "
        "many hours before it.",
        cast.int_between(0, 24 * 30),
    )
    max_reschedules: int = _setting(
        "2",
        "How many times an applicant may move their appointment from their link (0: never).",
        cast.int_between(0, 20),
    )
    reschedule_days: int = _setting(
        "14",
        "How many days ahead an applicant's link offers free slots to move to.",
        cast.int_between(1, 90),
    )
    decision_due_time: time = _setting(
        "17:00",
        "End of the officers' working day (HH:MM, office time): a decision still missing "
        "then, for a call that ended before it, is offered to the agency's other officers.",
        cast.time_of_day,
    )
    office_time_zone: ZoneInfo = _setting(
        "America/Toronto",
        "The offices' time zone (IANA name), for the end of the working day.",
        cast.time_zone,
    )
    outage_wait_seconds: int = _setting(
        "600",
        "After a server restart, seconds an interrupted call waits for its participants "
        "to come back before the interview is marked interrupted.",
        cast.int_between(1, 24 * 3600),
    )
    witnesses: str = _setting(
        "",
        "The agencies' witnesses that cosign each session record's checkpoints as the "
        "interview goes: comma-separated name=url=key, the key as `nexus-interview witness` "
        "prints it; empty: none (records are then witnessed offline, `records cosign`).",
        cast.witness_list,
    )
    cbsa_recipient: str = _setting("", "CBSA's age recipient (public key).", cast.age_recipient)
    cbp_recipient: str = _setting("", "CBP's age recipient (public key).", cast.age_recipient)
    audit_recipient: str = _setting(
        "", "The audit body's age recipient (public key).", cast.age_recipient
    )
    reconnect_grace_seconds: int = _setting(
        "30",
        "How long a participant whose connection failed keeps their seat, in seconds.",
        cast.int_between(1, 600),
    )
    ice_servers: tuple[str, ...] = _setting(
        "",
        "Comma-separated STUN server URLs for the server's peer connections; empty means "
        "host candidates only (an unreachable STUN server costs each join up to 5 s).",
        cast.stun_urls,
    )
    turn_urls: tuple[str, ...] = _setting(
        "",
        "Comma-separated TURN server URLs the browsers may relay through (such as "
        "turns:turn.example.org:443?transport=tcp, for networks that allow only TCP 443); "
        "empty: no relay. Needs the TURN secret; a relay on a private address must also be "
        "in the media peer networks.",
        cast.turn_urls,
    )
    turn_secret: Secret[str] = _setting(
        "",
        "The TURN server's static-auth-secret (at least 32 characters): each join gets "
        "credentials made with it (`nexus-interview turn-config` writes coturn's side).",
        cast.turn_secret,
        secret=True,
    )
    turn_credential_seconds: int = _setting(
        "600",
        "Seconds a participant's TURN credentials may open a relay (a relay opened in "
        "time lasts the whole call).",
        cast.int_between(60, 86400),
    )
    media_turn: bool = _setting(
        "false",
        "The media workers' own connections also gather relay candidates on the TURN "
        "relay, with credentials of their own for each participant: for media workers "
        "that browsers cannot reach directly (behind NAT, or a firewall that only the relay "
        "crosses). Needs the TURN URLs and secret, and a relay that may send to the "
        "browsers (`nexus-interview turn-config --public-peers`).",
        cast.yes_no,
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
        cast.worker_count,
    )
    media_plane_host: str = _setting(
        "127.0.0.1",
        "Address the server listens on for media workers (another machine's workers need "
        "an address they can reach).",
        cast.bind_host,
    )
    media_plane_port: int = _setting(
        "0",
        "TCP port for media workers; 0 picks a free one (enough when every worker runs on "
        "this machine).",
        cast.int_between(0, 65535),
    )
    media_worker_secret: Secret[str] = _setting(
        "",
        "Shared secret media workers on other machines prove they hold (at least 32 "
        "characters); empty: a new one at each start, known only to this machine's workers.",
        cast.worker_secret,
        secret=True,
    )
    media_plane_cert: Path | None = _setting(
        "",
        "Certificate (PEM) for the media workers' channel; with its key, workers connect "
        "over TLS (wss://).",
        cast.optional_path,
    )
    media_plane_key: Path | None = _setting(
        "", "Private key (PEM) of `media_plane_cert`.", cast.optional_path
    )
    audit_port: int = _setting(
        "8081", "TCP port of the audit console (`audit-console`).", cast.int_between(1, 65535)
    )
    audit_dir: Path = _setting(
        "nexus-audit",
        "The audit console's own directory: its session key, signing key and access log.",
        cast.file_path,
    )
    retention_years_cbsa: int = _setting(
        "5",
        "Years CBSA keeps a session record after the interview's decisions (or its end, "
        "without decisions). A record is crypto-shredded once every agency's period has "
        "passed and no legal hold is on it.",
        cast.int_between(1, 100),
    )
    retention_years_cbp: int = _setting(
        "5",
        "Years CBP keeps a session record after the interview's decisions (or its end).",
        cast.int_between(1, 100),
    )
    retention_sweep_hours: int = _setting(
        "24",
        "How often `serve` looks for records past retention and shreds them "
        "(`records retention` runs the same at once).",
        cast.int_between(1, 24 * 7),
    )
    log_level: str = _setting(
        "INFO", "Logging level: DEBUG, INFO, WARNING or ERROR.", cast.log_level
    )
    log_format: str = _setting(
        "text",
        "Log lines as text, or json: one JSON object a line with time, level, logger, "
        "message, and the request and interview ids when known.",
        cast.log_format,
    )
    metrics_listen: tuple[str, int] | None = _setting(
        "",
        "host:port of the operations listener (Prometheus /metrics, /healthz, /readyz, "
        "POST /drain), never the pages' port; empty: none.",
        cast.host_port,
    )
    metrics_networks: tuple[Network, ...] = _setting(
        "127.0.0.1,::1",
        "Comma-separated networks whose clients the operations listener answers (others "
        "are refused with 403).",
        parse_networks,
    )
    drain_seconds: int = _setting(
        "0",
        "On SIGTERM, `serve` drains first: no new calls (/readyz answers 503 at once), "
        "and it waits up to this many seconds for the calls on to end before stopping "
        "(a second SIGTERM stops at once).",
        cast.int_between(0, 24 * 3600),
    )
    event_loop: str = _setting(
        "uvloop",
        "The event loop the servers run on: uvloop (libuv; less CPU per media packet) or "
        "asyncio (the standard library's).",
        cast.event_loop,
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

        # Logging in on a connection without TLS would send the password in clear.
        if self.smtp_username and self.smtp_tls == "none":
            raise SettingError(
                "NEXUS_SMTP_USERNAME with NEXUS_SMTP_TLS=none would send the SMTP password "
                "in clear: use starttls or tls"
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
