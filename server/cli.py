"""`nexus-interview`: the server, the operator's commands and the demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.errors import BadRequest, NexusError
from common.logs import configure_logging
from recordings.keys import read_identity_file
from recordings.tlog import LogError, NoteVerifier
from server.types import InterviewMode, aware_datetime, utc_now

from . import (
    health,
    invitations_cli,
    operations_cli,
    operator,
    records_cli,
    schedule_cli,
    staff_cli,
)
from .app import create_app
from .appkeys import OPERATIONS, RECORDS
from .operations_log import OPERATOR_COMMANDS, OperationsLog, cli_actor, target_of
from .progress import progress_bar
from .serving import serve, settings_tls
from .settings import SETTINGS, Settings, describe, load_settings
from .store import with_store

T = TypeVar("T")
Command = Callable[[argparse.Namespace, Settings], Awaitable[int] | int]


def _settings_flags() -> argparse.ArgumentParser:
    """Every setting as a flag, accepted by every command, on either side of its name."""
    parser = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = parser.add_argument_group("settings (also NEXUS_* environment variables)")
    for setting in SETTINGS:
        group.add_argument(
            setting.flag,
            dest=f"setting_{setting.name}",
            metavar="VALUE",
            help=f"{setting.help} [{setting.env}, default {setting.default!r}]",
        )
    return parser


def build_parser() -> argparse.ArgumentParser:
    flags = _settings_flags()
    parser = argparse.ArgumentParser(
        prog="nexus-interview", description="NEXUS virtual interview server", parents=[flags]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Command, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, parents=[flags], **kwargs)
        sub.set_defaults(run=run)
        return sub

    def group(name: str, help: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        sub = commands.add_parser(name, help=help)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    command("serve", _serve, "run the interview server")
    sub = command(
        "media-worker",
        _media_worker,
        "run a media worker that joins a running server (the secret in NEXUS_MEDIA_WORKER_SECRET)",
    )
    sub.add_argument(
        "--control",
        required=True,
        help="the server's media-plane URL, e.g. wss://interviews.example:8090/media-plane",
    )
    sub.add_argument("--name", default=socket.gethostname(), help="this worker's name")
    sub.add_argument("--ca-file", help="certificate authority that signed the server's TLS key")
    sub = command(
        "audit-console", _audit_console, "run the audit console (holds the audit identity)"
    )
    sub.add_argument("--identity", type=Path, required=True, help="the audit body's identity file")
    records_cli.add_key_arguments(sub)
    sub = command("witness", _witness, "run an agency's witness (C2SP tlog-witness)")
    sub.add_argument("--key", type=Path, required=True, help="the witness's key file")
    sub.add_argument(
        "--new-key", metavar="NAME", help="create the key file first, with this key name"
    )
    sub.add_argument(
        "--log-key",
        action="append",
        required=True,
        help="the server's checkpoint key and its operators' log key; repeatable",
    )
    sub.add_argument(
        "--origin-prefix",
        action="append",
        required=True,
        help="cosign logs whose origin starts with this; repeatable",
    )
    sub.add_argument("--state", type=Path, required=True, help="directory of its checkpoints")
    sub.add_argument("--listen", default="127.0.0.1:8450", help="HOST:PORT to listen on")
    command("demo", _demo, "seed ./demo-data, print the sign-ins and links, and serve")
    command("settings", _settings, "print every setting with its value and help")
    sub = command(
        "turn-config",
        _turn_config,
        "print a coturn configuration that relays only to the media workers (with "
        "--public-peers, to public addresses too), for the credentials joins get (the "
        "secret in NEXUS_TURN_SECRET)",
    )
    sub.add_argument("--realm", required=True, help="the TURN realm, e.g. turn.example.org")
    sub.add_argument(
        "--media-peers",
        required=True,
        help="comma-separated addresses (or networks) of the media workers, the peers the "
        "relay may always send to (the only ones, without --public-peers)",
    )
    sub.add_argument("--listening-ip", help="the address coturn listens on (default: all)")
    sub.add_argument("--external-ip", help="PUBLIC[/PRIVATE] address when coturn is behind NAT")
    sub.add_argument("--cert", help="TLS certificate (PEM): TURN over TLS on port 443")
    sub.add_argument("--pkey", help="private key (PEM) of --cert")
    sub.add_argument(
        "--public-peers",
        action="store_true",
        help="also relay to any public address (the browsers'), never to private, "
        "loopback, link-local or reserved ones: needed by NEXUS_MEDIA_TURN, where the media "
        "workers relay too",
    )

    applications = group("applications", "application records")
    sub = applications.add_parser("import", help="import a CSV or JSON Lines file", parents=[flags])
    sub.add_argument("file", type=Path)
    sub.set_defaults(run=_import)

    staff_cli.add_commands(group, flags)

    sub = command("invite", _invite, "schedule an interview and print the applicant's link")
    sub.add_argument("application_id")
    sub.add_argument("--mode", choices=list(InterviewMode), default=InterviewMode.JOINT)
    sub.add_argument("--starts", type=_aware_datetime, help="window start (ISO 8601, with zone)")
    sub.add_argument("--hours", type=int, help="window length in hours")

    records_cli.add_commands(group, flags)
    schedule_cli.add_commands(group, command, flags)
    invitations_cli.add_commands(group, flags)
    operations_cli.add_commands(group, flags)
    return parser


def _aware_datetime(raw: str) -> datetime:
    try:
        return aware_datetime(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_")
    }
    console = Console(stderr=True)
    try:
        settings = load_settings(os.environ, overrides)
        configure_logging(settings.log_level, settings.log_format)
        if command_name(args) in OPERATOR_COMMANDS:
            return _logged(args, settings)
        result = args.run(args, settings)
        return asyncio.run(result) if asyncio.iscoroutine(result) else int(result)
    except NexusError as exc:
        console.print("[bold red]error:[/]", escape(exc.message), highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130


def command_name(args: argparse.Namespace) -> str:
    """``invite``, ``officers add``: the command and its action, as typed."""
    return " ".join(part for part in (args.command, getattr(args, "action", None)) if part)


def _logged(args: argparse.Namespace, settings: Settings) -> int:
    """Run an operator's command and append it, done, refused or failed, to the operators'
    log (a failure's type only: its message may carry what the log must not)."""
    log = OperationsLog(settings.data_dir, urlsplit(settings.public_url).netloc)
    name, target = command_name(args), target_of(vars(args))
    try:
        result = args.run(args, settings)
        code = asyncio.run(result) if asyncio.iscoroutine(result) else int(result)
    except NexusError as exc:
        log.record(cli_actor(), name, target, outcome="refused", reason=exc.message)
        raise
    except BaseException as exc:  # a crash or Ctrl-C part-way: the log says it was tried
        log.record(cli_actor(), name, target, outcome="failed", reason=type(exc).__name__)
        raise
    log.record(cli_actor(), name, target, outcome="done" if code == 0 else f"exit {code}")
    return code


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    tls = settings_tls(settings)  # before anything starts: a bad certificate stops here
    scheme = "https" if tls else "http"
    print(f"serving on {settings.public_url} (bound to {scheme}://{settings.host}:{settings.port})")
    app = create_app(settings)
    # Public keys, for the agencies' witnesses (`witness --log-key`, one of each) and verifiers.
    print(f"checkpoint key: {app[RECORDS].signer.verifier_key}")
    print(f"operators' log key: {app[OPERATIONS].verifier_key}", flush=True)
    drain = partial(health.drain, app, settings.drain_seconds)
    serve(app, settings.host, settings.port, settings.event_loop, tls, drain=drain)
    return 0


def _media_worker(args: argparse.Namespace, settings: Settings) -> int:
    from media.worker_process import serve_worker

    secret = settings.media_worker_secret.reveal()
    if not secret:
        raise BadRequest("set NEXUS_MEDIA_WORKER_SECRET to the secret the server was started with")
    if not args.control.startswith(("ws://", "wss://")):
        raise BadRequest("--control is a ws:// or wss:// URL, not {url}", url=args.control)
    print(f"media worker {args.name} joining {args.control}", flush=True)
    serve_worker(
        args.control,
        args.name,
        secret.encode(),
        ca_file=args.ca_file,
        event_loop=settings.event_loop,
    )
    return 0


def _audit_console(args: argparse.Namespace, settings: Settings) -> int:
    from .audit_app import create_audit_app

    try:
        server_keys = [NoteVerifier.parse(key) for key in args.keys]
        witnesses = records_cli.witness_keys(args.witnesses)
    except LogError as exc:
        raise BadRequest(exc.message) from None
    tls = settings_tls(settings)
    app = create_audit_app(settings, read_identity_file(args.identity), server_keys, witnesses)
    scheme = "https" if tls else "http"
    print(f"audit console on {scheme}://{settings.host}:{settings.audit_port}")
    serve(app, settings.host, settings.audit_port, settings.event_loop, tls)
    return 0


def _witness(args: argparse.Namespace, settings: Settings) -> int:
    from recordings.witness import generate_cosigner, read_cosigner

    from .witness_app import WitnessConfig, create_witness_app

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise BadRequest("--listen is HOST:PORT, not {listen}", listen=args.listen)
    if args.new_key and not args.key.exists():
        cosigner = generate_cosigner(args.key, args.new_key)
    else:
        cosigner = read_cosigner(args.key)
    try:
        log_keys = [NoteVerifier.parse(key) for key in args.log_key]
    except LogError as exc:
        raise BadRequest(exc.message) from None
    config = WitnessConfig(cosigner, log_keys, args.origin_prefix, args.state)
    print(f"witness {cosigner.verifier_key}")
    prefixes = ", ".join(f"{prefix}*" for prefix in args.origin_prefix)
    print(f"cosigning {prefixes} on http://{host}:{port}/add-checkpoint", flush=True)
    serve(create_witness_app(config), host, int(port), settings.event_loop)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import run_demo

    return run_demo(settings, Console())


def _settings(args: argparse.Namespace, settings: Settings) -> int:
    table = Table("Environment", "Flag", "Value", "Meaning")
    for row in describe(settings):
        table.add_row(*row)
    Console(width=160).print(table)
    return 0


def _turn_config(args: argparse.Namespace, settings: Settings) -> int:
    from .turn import coturn_config, parse_media_peers

    if not settings.turn_secret:
        raise BadRequest(
            "set NEXUS_TURN_SECRET (such as `openssl rand -hex 32`): coturn checks the "
            "participants' credentials with it"
        )
    # The header shows how to make the file again; the secret comes from the environment.
    command = ["nexus-interview", "turn-config", "--realm", args.realm]
    command += ["--media-peers", args.media_peers]
    for flag in ("listening_ip", "external_ip", "cert", "pkey"):
        if getattr(args, flag) is not None:
            command += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    if args.public_peers:
        command.append("--public-peers")
    try:
        text = coturn_config(
            settings.turn_secret,
            args.realm,
            parse_media_peers(args.media_peers),
            listening_ip=args.listening_ip,
            external_ip=args.external_ip,
            cert=args.cert,
            pkey=args.pkey,
            command=shlex.join(command),
            public_peers=args.public_peers,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    sys.stdout.write(text)
    return 0


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    with progress_bar("importing") as update:

        def progress(stored: int, total: int) -> None:
            update(total=total, advance=stored)

        counts = await with_store(
            settings, lambda store: operator.import_applications(store, args.file, progress)
        )
    print(
        f"imported {args.file}: {counts.inserted} new, {counts.updated} updated, "
        f"{counts.unchanged} unchanged"
    )
    return 0


async def _invite(args: argparse.Namespace, settings: Settings) -> int:
    invitation = await with_store(
        settings,
        lambda store: operator.invite(
            store,
            settings,
            args.application_id,
            InterviewMode(args.mode),
            args.starts or utc_now(),
            args.hours,
        ),
    )
    print(
        f"interview {invitation.interview_id}, open {invitation.window_start:%Y-%m-%d %H:%M %Z}"
        f" to {invitation.window_end:%Y-%m-%d %H:%M %Z}"
    )
    if invitation.started_in_the_past(utc_now()):
        Console(stderr=True).print(
            "[bold yellow]warning:[/] this window started in the past; the applicant has"
            f" until {invitation.window_end:%Y-%m-%d %H:%M %Z} to come",
            highlight=False,
            soft_wrap=True,
        )
    if invitation.emailed:
        print("invitation e-mail queued (`nexus-interview invitations list` shows it)")
    print("Send this link to the applicant (it is shown once and cannot be recovered):")
    print(invitation.link.reveal())
    return 0


if __name__ == "__main__":
    sys.exit(main())
