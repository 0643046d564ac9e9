"""The operator's commands for staff accounts (officers, auditors, operators: add,
unlock, reset, disable, enable) and their sign-in sessions (revoke)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

import segno
from rich.console import Console

from common.errors import BadRequest
from common.names import Agency
from common.secret import Secret
from server.types import Role

from . import operator
from .auth import Passwords
from .settings import Settings
from .store import with_store

Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]


def add_commands(group: Group, flags: argparse.ArgumentParser) -> None:
    staff = {"officers": Role.OFFICER, "auditors": Role.AUDITOR, "operators": Role.OPERATOR}
    for role in staff:
        actions = group(role, f"{role} accounts")
        sub = actions.add_parser("add", help=f"add one of the {role}", parents=[flags])
        sub.add_argument("--username", required=True)
        sub.add_argument("--name", required=True, help="display name")
        if role == "officers":
            sub.add_argument("--agency", required=True, type=str.upper, choices=list(Agency))
            sub.add_argument("--country", help="ISO code of the country they work from")
            sub.set_defaults(run=_add_officer)
        elif role == "auditors":
            sub.add_argument("--organisation", default="Joint audit body")
            sub.set_defaults(run=_add_auditor)
        else:
            sub.set_defaults(run=_add_operator)
        _password_stdin_flag(sub)
        for action, run, help in (
            ("unlock", _unlock, "lift a sign-in lock before it expires"),
            ("reset-password", _reset_password, "set a new password; ends every session"),
            ("reset-totp", _reset_totp, "enrol a new one-time-code app; ends every session"),
            ("disable", _disable, "refuse every sign-in; ends every session"),
            ("enable", _enable, "allow a disabled account to sign in again"),
        ):
            sub = actions.add_parser(action, help=help, parents=[flags])
            sub.add_argument("username")
            sub.set_defaults(run=run, role=staff[role])
            if action == "reset-password":
                _password_stdin_flag(sub)

    sub = group("sessions", "sign-in sessions").add_parser(
        "revoke", help="end sessions at once, open calls included", parents=[flags]
    )
    chosen = sub.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--user", help="every session of this staff account")
    chosen.add_argument("--interview", help="every session of this interview's applicant")
    chosen.add_argument("--all", action="store_true", help="every session")
    sub.set_defaults(run=_revoke_sessions)


def _password_stdin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of a prompt",
    )


def _read_password(args: argparse.Namespace) -> Secret[str]:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise BadRequest("the two passwords differ")
    else:
        raise BadRequest("no terminal to ask for the password: use --password-stdin")
    return Secret(password)


def print_enrolment(enrolment: operator.Enrolment, console: Console, done: str = "added") -> None:
    console.print(f"{done} {enrolment.username} (account {enrolment.account_id})")
    console.print("Enrol the one-time-code app by scanning this code, or enter the URI:")
    console.print(enrolment.otpauth_uri, soft_wrap=True, highlight=False)
    segno.make(enrolment.otpauth_uri, error="m").terminal(compact=True)


async def _add_officer(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    enrolment = await with_store(
        settings,
        lambda store: operator.add_officer(
            store,
            Passwords(),
            args.username,
            args.name,
            Agency(args.agency),
            args.country,
            password,
        ),
    )
    print_enrolment(enrolment, Console())
    return 0


async def _add_auditor(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    enrolment = await with_store(
        settings,
        lambda store: operator.add_auditor(
            store, Passwords(), args.username, args.name, args.organisation, password
        ),
    )
    print_enrolment(enrolment, Console())
    return 0


async def _add_operator(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    enrolment = await with_store(
        settings,
        lambda store: operator.add_operator(store, Passwords(), args.username, args.name, password),
    )
    print_enrolment(enrolment, Console())
    return 0


async def _unlock(args: argparse.Namespace, settings: Settings) -> int:
    was = await with_store(settings, lambda s: operator.unlock(s, args.username, args.role))
    print(f"unlocked {args.username}" if was else f"{args.username} was not locked")
    return 0


async def _reset_password(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    ended = await with_store(
        settings,
        lambda s: operator.reset_password(s, Passwords(), args.username, args.role, password),
    )
    print(f"new password set for {args.username}; {ended} session(s) ended")
    return 0


async def _reset_totp(args: argparse.Namespace, settings: Settings) -> int:
    enrolment = await with_store(
        settings, lambda s: operator.reset_totp(s, args.username, args.role)
    )
    print_enrolment(enrolment, Console(), done="new one-time-code secret for")
    return 0


async def _disable(args: argparse.Namespace, settings: Settings) -> int:
    ended = await with_store(
        settings, lambda s: operator.set_disabled(s, args.username, args.role, True)
    )
    print(f"disabled {args.username}; {ended} session(s) ended")
    return 0


async def _enable(args: argparse.Namespace, settings: Settings) -> int:
    await with_store(settings, lambda s: operator.set_disabled(s, args.username, args.role, False))
    print(f"enabled {args.username}")
    return 0


async def _revoke_sessions(args: argparse.Namespace, settings: Settings) -> int:
    ended = await with_store(
        settings,
        lambda s: operator.revoke_sessions(s, args.user, args.interview, args.all),
    )
    print(f"{ended} session(s) ended")
    return 0
