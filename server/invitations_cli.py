"""`nexus-interview invitations list`: the e-mail outbox, each message's status and why it
failed. Never a link: links exist only in the messages sent. `invitations bounce`: mail
the mail system returned, marking the messages it reports bounced (`bounces`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from . import bounces
from .invitations import invitation_rows
from .settings import Settings
from .store import Store
from .store.invitations import InvitationStatus

Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]


def add_commands(group: Group, flags: argparse.ArgumentParser) -> None:
    actions = group("invitations", "the applicants' invitation e-mails")
    sub = actions.add_parser(
        "list", help="the e-mails, most recently changed first, and counts", parents=[flags]
    )
    sub.add_argument("--status", choices=[s.value for s in InvitationStatus])
    sub.add_argument("--limit", type=int, default=100, help="how many to list (default 100)")
    sub.set_defaults(run=_list)
    sub = actions.add_parser(
        "bounce",
        help="mark bounced the e-mails that returned messages report undelivered (delivery "
        "status notifications, as files or one on standard input, as a mail system's pipe "
        "delivers it)",
        parents=[flags],
    )
    sub.add_argument("files", nargs="*", type=Path, help="returned messages (default: stdin)")
    sub.set_defaults(run=_bounce)


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    store = await Store(settings.database_path, settings=settings).open()
    try:
        status = InvitationStatus(args.status) if args.status else None
        rows = await invitation_rows(store, status, limit=max(1, args.limit))
        counts = await store.invitations.counts()
    finally:
        await store.close()
    for row in rows:  # one line each, whole, for grep
        sent = f" sent {row['sent_at']}" if row["sent_at"] else ""
        reason = f" ({row['reason']})" if row["reason"] else ""
        print(
            f"{row['id']} {row['interview_id']} {row['kind']} {row['status']}"
            f" to {row['recipient']} tries {row['attempts']} due {row['due_at']}{sent}{reason}"
        )
    print(", ".join(f"{status}: {count}" for status, count in counts.items()))
    return 0


async def _bounce(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 for a message that is no notification too: the mail system that pipes it
    here has nothing better to do with it than drop it, which is what happens."""
    try:
        sources = [(str(path), path.read_bytes()) for path in args.files] or [
            ("standard input", sys.stdin.buffer.read())
        ]
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    store = await Store(settings.database_path, settings=settings).open()
    try:
        for name, raw in sources:
            try:
                marked = await bounces.record(store, raw)
            except bounces.NotABounce as exc:
                print(f"{name}: ignored: {exc}")
                continue
            for row in marked:
                print(
                    f"{name}: e-mail {row.id} ({row.kind} of interview {row.interview_id}) "
                    f"to {row.recipient} bounced: {row.reason}"
                )
            if not marked:
                print(f"{name}: nothing marked: it reports no failure of an e-mail sent")
    finally:
        await store.close()
    return 0
