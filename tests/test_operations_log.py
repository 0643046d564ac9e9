"""The operators' log: every operator command, done or refused, in a signed,
tamper-evident log that the CLI and the server extend together."""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
from pathlib import Path

from recordings.keys import Identity
from recordings.session_record import EVENTS
from server.app import create_app
from server.cli import build_parser
from server.operations_log import OPERATOR_COMMANDS, OperationsLog
from server.settings import Settings

from .fakes import nexus_interview

LOG_NAME = "127.0.0.1:8080"  # the default public URL's host, as the CLI names the log
# Commands that only read, run a service (whose own actions are logged where they happen),
# run at an agency on its own keys, or are the mail system reporting a delivery (a late
# bounce is a message's status, as the server's own sending is, not an operator's act).
NOT_OPERATIONS = frozenset(
    {
        "serve",
        "media-worker",
        "audit-console",
        "witness",
        "demo",
        "settings",
        "turn-config",
        "records verify",
        "records export",
        "records cosign",
        "keys generate",
        "keys witness",
        "roster list",
        "staffing",
        "invitations list",
        "invitations bounce",
        "operations list",
        "operations verify",
    }
)


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                inner = _commands(sub, f"{prefix}{name} ")
                found |= inner or {f"{prefix}{name}"}
    return found


def test_every_command_is_an_operation_or_declared_not_to_be_one() -> None:
    commands = _commands(build_parser())

    assert commands == OPERATOR_COMMANDS | NOT_OPERATIONS, (
        f"unclassified: {commands - OPERATOR_COMMANDS - NOT_OPERATIONS}; "
        f"stale: {(OPERATOR_COMMANDS | NOT_OPERATIONS) - commands}"
    )
    assert not OPERATOR_COMMANDS & NOT_OPERATIONS


def add_officer(data: Path, username: str) -> int:
    done = nexus_interview(
        *("--data-dir", str(data), "officers", "add", "--username", username),
        *("--name", "Jane Doe", "--agency", "CBP", "--password-stdin"),
        stdin="a-long-password-1\n",
    )
    return done.returncode


def test_an_operators_commands_are_logged_done_or_refused_and_the_log_verifies(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert add_officer(data, "jane.doe") == 0
    assert add_officer(data, "jane.doe") == 1  # already there: refused

    log = OperationsLog(data, LOG_NAME)
    done = [(op.action, op.target, op.outcome) for op in log.operations()]
    assert done == [
        ("officers add", "jane.doe", "done"),
        ("officers add", "jane.doe", "refused"),
    ]
    assert all(op.actor.startswith("cli:") for op in log.operations())
    check = log.check()
    assert check.complete and check.last_checkpoint == 2
    held = b"".join(p.read_bytes() for p in log.directory.rglob("*") if p.is_file())
    assert b"a-long-password-1" not in held


def test_an_edited_operation_no_longer_verifies(tmp_path: Path) -> None:
    log = OperationsLog(tmp_path, LOG_NAME)
    log.record("cli:op@host", "records shred", "iv_0123456789abcdef")
    log.record("cli:op@host", "invite", "NX-0001")
    events = log.directory / EVENTS
    events.write_bytes(events.read_bytes().replace(b"records shred", b"records SHRED"))

    check = log.check()

    assert not check.complete and check.problems


def test_the_cli_and_the_server_extend_one_log_at_the_same_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = OperationsLog(data, LOG_NAME)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        commands = [pool.submit(add_officer, data, f"officer.{n}") for n in range(3)]
        for n in range(20):
            log.record("server", "console action", f"target-{n}")
        assert [c.result() for c in commands] == [0, 0, 0]

    check = log.check()
    assert check.complete and check.last_checkpoint == 23
    assert len(log.operations()) == 23


def test_a_change_of_the_keys_in_use_is_logged_when_the_server_starts_with_it(
    settings: Settings, tmp_path: Path
) -> None:
    recipients = {h: str(Identity.generate().recipient) for h in ("cbsa", "cbp", "audit")}
    configured = settings.replace(**{f"{h}_recipient": r for h, r in recipients.items()})
    create_app(configured)
    create_app(configured)  # a restart with the same keys: nothing new
    other = str(Identity.generate().recipient)
    create_app(configured.replace(cbsa_recipient=other))

    log = OperationsLog(settings.data_dir, LOG_NAME)
    keys = [op for op in log.operations() if op.action == "keys in use"]
    assert [(op.actor, op.outcome) for op in keys] == [
        ("server", "first start"),
        ("server", "changed: cbsa_recipient"),
    ]
    last = log.last("keys in use")
    assert last is not None and last["keys"]["cbsa_recipient"] == other
    assert log.check().complete


def operations(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return nexus_interview("--data-dir", str(data), "operations", *args)


def test_operations_list_shows_each_action_with_who_what_and_its_outcome(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert add_officer(data, "jane.doe") == 0
    assert add_officer(data, "jane.doe") == 1  # already there: refused

    listed = operations(data, "list")
    only_refused = operations(data, "list", "--action", "officers add", "--limit", "1")

    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "officers add" in line]
    assert len(rows) == 2
    assert "jane.doe" in rows[0] and "done" in rows[0] and "cli:" in rows[0]
    assert "refused" in rows[1] and "already" in rows[1]  # the reason it was refused
    assert only_refused.returncode == 0, only_refused.stderr
    assert [line for line in only_refused.stdout.splitlines() if "officers add" in line] == [
        rows[1]
    ]
    later = operations(data, "list", "--since", "2999-01-01T00:00:00+00:00")
    assert later.returncode == 0 and "officers add" not in later.stdout


def test_operations_verify_passes_on_a_sound_log_and_fails_on_an_edited_entry(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert add_officer(data, "jane.doe") == 0
    assert add_officer(data, "john.roe") == 0

    sound = operations(data, "verify")
    events = data / "operations-log" / EVENTS
    events.write_bytes(events.read_bytes().replace(b"jane.doe", b"jane.dot"))
    edited = operations(data, "verify")

    assert sound.returncode == 0, sound.stderr
    assert "VERIFIED" in sound.stdout and "2 operations" in sound.stdout
    assert edited.returncode != 0
    assert "FAILED" in edited.stderr and "altered" in edited.stderr


def test_operations_verify_fails_on_a_removed_entry_and_an_unsigned_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("jane.doe", "john.roe"):
        assert add_officer(data, name) == 0
    events = data / "operations-log" / EVENTS
    lines = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(lines[0])  # the second operation removed

    removed = operations(data, "verify")

    assert removed.returncode != 0 and "FAILED" in removed.stderr
    unsigned = tmp_path / "unsigned"
    assert add_officer(unsigned, "jane.doe") == 0
    held = unsigned / "operations-log" / EVENTS
    extra = held.read_bytes().replace(b'"seq":0', b'"seq":1')  # canonical, in order, no checkpoint
    held.write_bytes(held.read_bytes() + extra)
    not_signed = operations(unsigned, "verify")
    assert not_signed.returncode != 0 and "not signed" in not_signed.stderr


def test_operations_verify_without_a_log_says_there_is_none(tmp_path: Path) -> None:
    missing = operations(tmp_path / "empty", "verify")

    assert missing.returncode != 0 and "no operators' log" in missing.stderr
