"""`nexus-interview operations …`: read the operators' log and verify it. Reading only:
neither command appends, so neither is itself an operation.

The signing key sits on this host, so the log's own signatures show it was not edited by
anyone without that key; against the operator who holds it, only the agencies' witnesses
vouch (`--witness-key`): they cosign a checkpoint only if it extends the last they
cosigned, so a rewritten log carries no cosignature on its newest checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.errors import BadRequest
from recordings.session_record import EVENTS, check_log
from recordings.tlog import LogError, NoteVerifier
from recordings.witness_keys import WitnessKey, cosigned_by

from . import records_cli
from .operations_log import DIRECTORY, KIND, SIGNER_NAME, SIGNING_KEY
from .operations_witnessing import WATCH_SECONDS
from .session_records import checkpoint_signer
from .settings import Settings
from .types import aware_datetime
from .witnessing import newest_checkpoint

Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
FAILED = 3  # as `records verify`


def add_commands(group: Group, flags: argparse.ArgumentParser) -> None:
    operations = group("operations", "the operators' log: list and verify what operators did")
    sub = operations.add_parser(
        "list", help="print the operators' actions, oldest first", parents=[flags]
    )
    sub.add_argument("--since", type=_aware, help="only from this time (ISO 8601, with zone)")
    sub.add_argument("--action", help="only this action, as logged (e.g. 'officers add')")
    sub.add_argument("--limit", type=int, help="only the newest N of them")
    sub.set_defaults(run=_list)
    sub = operations.add_parser(
        "verify",
        help="check the operators' log: its tree, every checkpoint's signature, the order "
        "of its entries and, with --witness-key, the witnesses' cosignatures",
        parents=[flags],
    )
    sub.add_argument(
        "--key",
        help="the log's checkpoint key (as `serve` logs it at start); default: the public "
        "half of DATA_DIR/operations-signing.pem",
    )
    sub.add_argument(
        "--witness-key",
        dest="witness_keys",
        action="append",
        default=[],
        help="an agency witness's verifier key (as `nexus-interview witness` prints it); "
        "repeatable",
    )
    sub.add_argument(
        "--min-witnesses",
        type=int,
        help="how many of them must have cosigned the newest checkpoint (default: all)",
    )
    sub.set_defaults(run=_verify)


def _aware(raw: str) -> datetime:
    try:
        return aware_datetime(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _logged(directory: Path) -> list[dict[str, Any]]:
    path = directory / EVENTS
    events = []
    for line in path.read_bytes().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError):  # `operations verify` says what is wrong
            event = json.loads(line)
            if isinstance(event, dict) and event.get("kind") == KIND:
                events.append(event)
    return events


def _list(args: argparse.Namespace, settings: Settings) -> int:
    events = _logged(settings.data_dir / DIRECTORY)
    if args.action:
        events = [e for e in events if e.get("action") == args.action]
    if args.since:
        events = [e for e in events if (_at(e) or args.since) >= args.since]
    if args.limit is not None:
        events = events[-args.limit :] if args.limit > 0 else []
    for event in events:
        outcome = str(event.get("outcome", ""))
        if event.get("reason"):
            outcome += f" ({event['reason']})"
        fields = (event.get("at"), event.get("actor"), event.get("action"), event.get("target"))
        print("  ".join(str(field or "-") for field in (*fields, outcome)))
    if not events:
        print("no operations logged" + (" that match" if args.action or args.since else ""))
    return 0


def _at(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event.get("at")))
    except ValueError:
        return None


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    directory = settings.data_dir / DIRECTORY
    origin = f"{urlsplit(settings.public_url).netloc}/operations"
    if not (directory / EVENTS).is_file():
        print(
            f"FAILED: no operators' log at {directory} (a server that has started keeps one: "
            "if this is its data directory, the log was removed)",
            file=sys.stderr,
        )
        return FAILED
    try:
        verifier = NoteVerifier.parse(args.key or _own_key(settings))
        witnesses = records_cli.witness_keys(args.witness_keys)
    except LogError as exc:
        raise BadRequest(exc.message) from None
    needed = len(witnesses) if args.min_witnesses is None else args.min_witnesses
    if needed > len(witnesses):
        raise BadRequest(
            "--min-witnesses {needed} asks for more witnesses than the {given} --witness-key given",
            needed=needed,
            given=len(witnesses),
        )
    check = check_log(directory, [verifier], lambda found: found == origin)
    print(
        f"operators' log {origin}: {len(check.events)} operations, {check.checkpoints} "
        f"signed checkpoints (last covers {check.last_checkpoint}), key {verifier.name}"
    )
    problems = list(check.problems)
    if not problems and check.last_checkpoint < len(check.events):
        problems.append(
            f"operations {check.last_checkpoint} to {len(check.events) - 1} are not signed "
            "by any checkpoint: they were added to the log by hand, or the process writing "
            "them stopped between the entry and its checkpoint"
        )
    if not problems and witnesses:
        problems += _witnessed(directory, check.last_checkpoint, witnesses, needed)
    if problems:
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        return FAILED
    print("VERIFIED: signatures, tree, entries in order" + (", witnesses" if witnesses else ""))
    return 0


def _own_key(settings: Settings) -> str:
    path = settings.data_dir / SIGNING_KEY
    if not path.is_file():
        raise BadRequest("no key at {path}: give the log's checkpoint key with --key", path=path)
    return checkpoint_signer(path, SIGNER_NAME).verifier_key


def _witnessed(directory: Path, size: int, witnesses: list[WitnessKey], needed: int) -> list[str]:
    newest = newest_checkpoint(directory)
    if newest is None:
        return ["the log has no checkpoint for a witness to have cosigned"]
    try:
        signed = cosigned_by(newest.read_bytes(), witnesses)
    except LogError as exc:
        return [f"the newest checkpoint ({size} operations): {exc.message}"]
    print(f"newest checkpoint cosigned by: {', '.join(signed) or 'none of the witnesses given'}")
    if len(signed) >= needed:
        return []
    return [
        f"the newest checkpoint ({size} operations) is cosigned by {len(signed)} of the "
        f"witnesses given, {needed} needed. If the server was just running, wait for it to "
        f"submit (it looks every {WATCH_SECONDS:.0f} s) and verify again; if a witness "
        "refused it (the server's log says `not witnessed by`; a 409 or 422 is a fork: the "
        "log was rewritten after the witness cosigned it), treat every entry as suspect "
        "and compare with the witness's state"
    ]
