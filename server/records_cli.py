"""`nexus-interview records …` and `keys …`: what agencies and auditors run on session
records (verify, export, co-sign, shred) and the key material they hold."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from common.errors import BadRequest
from recordings.closed_sessions import CLOSED_SESSIONS, check_record, read_closed_sessions
from recordings.export import Exported, export_session
from recordings.keys import HOLDERS, Identity, read_identity_file, write_identity_file
from recordings.session_record import Verification, verify_session
from recordings.tlog import LogError, NoteVerifier
from recordings.witness import cosign_session, generate_cosigner, read_cosigner
from recordings.witness_keys import WitnessKey, parse_witness_key

from .operations_log import OperationsLog, cli_actor
from .progress import progress_bar
from .retention import REASON, RetentionPolicy, run_retention, shred_claimed
from .session_records import SessionRecords
from .settings import Settings
from .store import Store
from .types import utc_now

Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
AGENCY_HOLDERS = ("cbsa", "cbp")


def add_key_arguments(command: argparse.ArgumentParser) -> None:
    """--key (the server's checkpoint keys) and --witness (agencies' keys that must have
    cosigned the final checkpoint), for every command that verifies sessions."""
    command.add_argument(
        "--key",
        dest="keys",
        action="append",
        required=True,
        help="a trusted checkpoint verifier key (name+id+key); repeatable",
    )
    command.add_argument(
        "--witness",
        dest="witnesses",
        action="append",
        default=[],
        help="an agency witness's verifier key (as `nexus-interview witness` or `keys "
        "witness` prints it, or an older Ed25519 one) that must have cosigned the final "
        "checkpoint; repeatable",
    )


def add_commands(group: Group, flags: argparse.ArgumentParser) -> None:
    records = group("records", "session records: verify, export, co-sign, shred")
    sub = records.add_parser("verify", help="verify a session record directory", parents=[flags])
    sub.add_argument("session", type=Path, help="the session's directory")
    add_key_arguments(sub)
    sub.set_defaults(run=_records_verify)
    sub = records.add_parser(
        "export", help="decrypt a session's media, one file per participant", parents=[flags]
    )
    sub.add_argument("session", type=Path, help="the session's directory")
    sub.add_argument("--identity", type=Path, required=True, help="an age identity file")
    sub.add_argument("--out", type=Path, required=True, help="directory for the WebM files")
    sub.add_argument(
        "--composite",
        action="store_true",
        help="also write composite.webm: everyone side by side, audio mixed (re-encoded)",
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="export a record that fails verification, with a warning on every file",
    )
    add_key_arguments(sub)
    sub.set_defaults(run=_records_export)
    sub = records.add_parser(
        "cosign",
        help="an agency co-signs a verified, complete session's final checkpoint",
        parents=[flags],
    )
    sub.add_argument("session", type=Path, help="the session's directory")
    sub.add_argument("--witness-key", type=Path, required=True, help="the agency's witness key")
    sub.add_argument(
        "--key",
        dest="keys",
        action="append",
        required=True,
        help="the interview server's checkpoint verifier key; repeatable",
    )
    sub.set_defaults(run=_records_cosign)
    sub = records.add_parser(
        "shred", help="destroy a session's key material (retention)", parents=[flags]
    )
    sub.add_argument("interview_id", help="the interview whose record to shred")
    sub.add_argument("--reason", default=REASON)
    sub.set_defaults(run=_records_shred)
    sub = records.add_parser(
        "hold", help="keep a session record past retention (legal hold)", parents=[flags]
    )
    sub.add_argument("interview_id", help="the interview whose record to keep")
    sub.add_argument("--reason", required=True, help="why: a case, an order, a request")
    sub.set_defaults(run=_records_hold)
    sub = records.add_parser("release", help="lift a legal hold", parents=[flags])
    sub.add_argument("interview_id", help="the interview whose hold to lift")
    sub.set_defaults(run=_records_release)
    sub = records.add_parser(
        "retention",
        help="shred every record past its agencies' retention and under no hold",
        parents=[flags],
    )
    sub.add_argument("--dry-run", action="store_true", help="list them, shred nothing")
    sub.set_defaults(run=_records_retention)

    keys = group("keys", "key material for agencies and the audit body")
    sub = keys.add_parser("generate", help="write a new age identity file", parents=[flags])
    sub.add_argument("--for", dest="holder", required=True, choices=HOLDERS)
    sub.add_argument("--out", type=Path, required=True, help="identity file to create")
    sub.set_defaults(run=_keys_generate)
    sub = keys.add_parser(
        "witness", help="write a new witness key for co-signing checkpoints", parents=[flags]
    )
    sub.add_argument("--for", dest="holder", required=True, choices=AGENCY_HOLDERS)
    sub.add_argument("--out", type=Path, required=True, help="witness key file to create")
    sub.set_defaults(run=_keys_witness)


def witness_keys(values: list[str]) -> list[WitnessKey]:
    """The --witness keys, of either kind (`recordings.witness_keys`)."""
    return [parse_witness_key(value) for value in values]


def _verification(args: argparse.Namespace) -> Verification:
    """The session verified as `records verify` does, its summary printed."""
    session: Path = args.session
    if not (session / "events.jsonl").is_file():
        raise BadRequest("{session} is not a session record (no events.jsonl)", session=session)
    try:
        server_keys = [NoteVerifier.parse(key) for key in args.keys]
        witnesses = witness_keys(args.witnesses)
    except LogError as exc:
        raise BadRequest(exc.message) from None
    listing, about_the_log = _closed_sessions(session, server_keys, witnesses)
    result = verify_session(session, server_keys, witnesses=witnesses, listing=listing)
    print(
        f"{session.name}: {result.events} events, {result.checkpoints} signed checkpoints "
        f"(last covers {result.last_checkpoint}), {result.segments} segments verified"
    )
    if result.witnessed_by:
        print(f"final checkpoint cosigned by: {', '.join(result.witnessed_by)}")
    for line in about_the_log:
        print(line)
    for warning in result.warnings:
        print(f"WARNING: {warning}")
    if result.shredded_files:
        print(
            f"SHREDDED ({'; '.join(result.shred_reasons)}): the key material of "
            f"{', '.join(result.shredded_files)} was destroyed; nobody can decrypt them"
        )
    return result


def _closed_sessions(
    session: Path, server_keys: list[NoteVerifier], witnesses: list[WitnessKey]
) -> tuple[Callable[[Path], list[str]] | None, list[str]]:
    """The server's log of closed sessions, when it sits beside the record (a record in
    the server's records directory, or copied with it): what it holds against the
    record, and lines about the log itself, which concern every session it lists."""
    records = session.resolve().parent
    if not (records / CLOSED_SESSIONS).is_dir():
        return None, []
    closed = read_closed_sessions(records, server_keys, witnesses)
    said = [f"closed-sessions log: {len(closed.entries)} sessions listed"]
    entry = closed.entries.get(session.resolve().name)
    if entry is not None:
        said[0] += f", {entry.interview_id} with {entry.size} events"
    said += [f"WARNING: {problem}" for problem in closed.problems]
    return (lambda directory: check_record(closed, directory, server_keys)), said


def _records_verify(args: argparse.Namespace, settings: Settings) -> int:
    result = _verification(args)
    if result.ok:
        print("VERIFIED: signatures, hash chain, segments, consent and completeness")
        return 0
    for problem in result.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 3


def _records_export(args: argparse.Namespace, settings: Settings) -> int:
    session: Path = args.session
    result = _verification(args)
    warning = ""
    for problem in result.problems:
        print(f"{'FAILED' if result.failed else 'NOTE'}: {problem}", file=sys.stderr)
    if result.failed and not args.force:
        print(
            f"not exported: {session.name} does not verify (--force exports it anyway, "
            "with a warning on every file)",
            file=sys.stderr,
        )
        return 3
    if result.failed:
        warning = f"UNVERIFIED: {session.name} failed verification: {'; '.join(result.problems)}"
    media = [name for name in result.shredded_files if name.endswith(".webm.age")]
    if media:
        raise BadRequest(
            "the media of {session} were shredded ({files}): none of the given identities "
            "can open them, nor any other",
            session=session.name,
            files=", ".join(media),
        )
    identities = read_identity_file(args.identity)
    with progress_bar("decrypting") as update:
        exported = export_session(
            session,
            identities,
            args.out,
            lambda done, total: update(completed=done, total=total),
            composite=args.composite,
            warning=warning,
        )
    if not exported:
        raise BadRequest("{session} holds no media segments", session=session)
    flag = " [UNVERIFIED: the record failed verification; see above]" if warning else ""
    for item in exported:
        print(
            f"{item.path}: {item.segments} segments, {item.video_frames} video and "
            f"{item.audio_frames} audio frames{_cut_short(item, result)}{flag}"
        )
    if args.composite:
        print(f"{args.out / 'composite.webm'}: everyone side by side, audio mixed{flag}")
    return 0


def _cut_short(item: Exported, result: Verification) -> str:
    """Which segments did not decrypt to their end, and why as far as the record tells."""
    if not item.cut_short:
        return ""
    names = ", ".join(item.cut_short)
    if result.failed:
        return f" ({names} does not decrypt to its end: exported up to where it stops)"
    return f" ({names} was cut short by a crash: recovered up to it)"


async def _records_shred(args: argparse.Namespace, settings: Settings) -> int:
    records = SessionRecords(settings)
    store = await Store(settings.database_path, settings=settings).open()
    try:
        shredded = await shred_claimed(store, records, args.interview_id, args.reason)
    finally:
        await store.close()
    print(
        f"shredded the key material of {len(shredded)} file(s) of {args.interview_id}; "
        "they can no longer be decrypted by anyone, and the log records it"
    )
    return 0


async def _records_hold(args: argparse.Namespace, settings: Settings) -> int:
    reason = args.reason.strip()
    if not 1 <= len(reason) <= 500:
        raise BadRequest("a legal hold needs a reason of 1 to 500 characters (--reason)")
    store = await Store(settings.database_path, settings=settings).open()
    try:
        placed = await store.retention.hold(args.interview_id, reason, cli_actor())
    finally:
        await store.close()
    print(
        f"{args.interview_id} is under a legal hold: its record is kept past retention"
        if placed
        else f"{args.interview_id} was already under a legal hold (kept as it was)"
    )
    return 0


async def _records_release(args: argparse.Namespace, settings: Settings) -> int:
    store = await Store(settings.database_path, settings=settings).open()
    try:
        released = await store.retention.release(args.interview_id)
    finally:
        await store.close()
    print(
        f"the legal hold on {args.interview_id} is lifted: retention applies again"
        if released
        else f"{args.interview_id} was not under a legal hold"
    )
    return 0


async def _records_retention(args: argparse.Namespace, settings: Settings) -> int:
    policy = RetentionPolicy.of(settings)
    store = await Store(settings.database_path, settings=settings).open()
    try:
        operations = OperationsLog(settings.data_dir, urlsplit(settings.public_url).netloc)
        expired = await run_retention(
            store, SessionRecords(settings), operations, policy, utc_now(), args.dry_run
        )
    finally:
        await store.close()
    verb = "would shred" if args.dry_run else "shredded"
    for item in expired:
        began = item.began.strftime("%Y-%m-%d")
        if item.problem:
            print(f"{item.interview_id} (retention from {began}): NOT shredded: {item.problem}")
        elif args.dry_run:
            print(f"{item.interview_id} (retention from {began}): {verb}")
        else:
            print(f"{item.interview_id} (retention from {began}): {verb} {item.files} file(s)")
    kept = policy.longest
    print(f"{len(expired)} record(s) past {kept} years of retention; {verb} those listed")
    return 1 if any(item.problem for item in expired) else 0


def _outside_data_dir(out: Path, settings: Settings) -> Path:
    if out.resolve().is_relative_to(settings.data_dir.resolve()):
        raise BadRequest(
            f"{out} is inside the interview server's data directory, which must never hold "
            "a private key; write it somewhere the server cannot read"
        )
    return out


def _keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    out = _outside_data_dir(args.out, settings)
    identity = Identity.generate()
    write_identity_file(out, identity)
    print(f"wrote the {args.holder} identity to {out} (mode 0600)")
    print(f"its recipient, for NEXUS_{args.holder.upper()}_RECIPIENT: {identity.recipient}")
    return 0


def _keys_witness(args: argparse.Namespace, settings: Settings) -> int:
    out = _outside_data_dir(args.out, settings)
    cosigner = generate_cosigner(out, f"{args.holder}-witness")
    print(f"wrote the {args.holder} witness key (cosignature/v1) to {out} (mode 0600)")
    print(f"its verifier key, for `records verify --witness`: {cosigner.verifier_key}")
    return 0


def _records_cosign(args: argparse.Namespace, settings: Settings) -> int:
    session: Path = args.session
    if not (session / "events.jsonl").is_file():
        raise BadRequest(f"{session} is not a session record (no events.jsonl)")
    witness = read_cosigner(args.witness_key)
    try:
        note = cosign_session(session, [NoteVerifier.parse(key) for key in args.keys], witness)
    except LogError as exc:
        raise BadRequest(exc.message) from None
    print(f"{note}: co-signed by {witness.name}")
    return 0
