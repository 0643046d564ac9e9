"""The operators' log: every action an operator takes (import, invite, staff accounts,
sessions ended, records shredded or held, keys made, retention runs), from the CLI or
the server, appended as a canonical-JSON event to an RFC 9162 log with a signed
checkpoint after each, kept like a session record (`recordings.session_record`): an
operator with the database in hand still cannot rewrite what they did without the
checkpoints saying so.

The CLI and the server may write at the same moment, from different processes: each
append takes an exclusive lock on the log and reopens it, so both extend one tree.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recordings.private_files import private_directory, private_opener
from recordings.session_record import EVENTS, LogCheck, SessionLog, check_log
from recordings.tlog import NoteVerifier

from .session_records import checkpoint_signer

DIRECTORY = "operations-log"
SIGNING_KEY = "operations-signing.pem"
SIGNER_NAME = "nexus-operations"
KIND = "operation"

# The CLI commands that are an operator's actions on this server's data, logged whatever
# their outcome. The others only read, run a service, or run at an agency on its own
# keys; tests/test_operations_log.py makes every command one or the other.
OPERATOR_COMMANDS = frozenset(
    {
        "applications import",
        "officers add",
        "officers unlock",
        "officers reset-password",
        "officers reset-totp",
        "officers disable",
        "officers enable",
        "auditors add",
        "auditors unlock",
        "auditors reset-password",
        "auditors reset-totp",
        "auditors disable",
        "auditors enable",
        "operators add",
        "operators unlock",
        "operators reset-password",
        "operators reset-totp",
        "operators disable",
        "operators enable",
        "sessions revoke",
        "invite",
        "records shred",
        "records hold",
        "records release",
        "records retention",
        "roster add",
        "roster remove",
        "roster import",
        "schedule",
    }
)
KEYS_IN_USE = "keys in use"
"""Written when the server starts with other public keys than it last did: the
recipients its records are sealed to, its checkpoint key, the witnesses it asks."""
SERVER_ACTOR = "server"

# Where a command names what it acts on, in this order of preference.
TARGETS = ("username", "application_id", "interview_id", "user", "interview", "file")


@dataclass(frozen=True)
class Operation:
    at: str
    actor: str
    action: str
    target: str
    outcome: str


def cli_actor() -> str:
    """Who runs the CLI: the system account and host (the CLI has no sign-in of its own;
    the host's accounts are who may run it)."""
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def target_of(arguments: dict[str, Any]) -> str:
    """What a command acts on, from its parsed ``arguments`` (``*`` for all of them)."""
    for name in TARGETS:
        if arguments.get(name):
            return str(arguments[name])
    return "*" if arguments.get("all") else ""


class OperationsLog:
    def __init__(self, data_dir: Path, log_name: str) -> None:
        self.directory = data_dir / DIRECTORY
        private_directory(self.directory)
        self._signer = checkpoint_signer(data_dir / SIGNING_KEY, SIGNER_NAME)
        self.origin = f"{log_name}/operations"
        self.verifier = NoteVerifier.parse(self._signer.verifier_key)
        self._listeners: list[Callable[[], None]] = []

    @property
    def verifier_key(self) -> str:
        """The public half of the log's key: what the agencies' witnesses are told
        (``witness --log-key``) and `operations verify --key` checks against."""
        return self._signer.verifier_key

    def listen(self, appended: Callable[[], None]) -> Callable[[], None]:
        """Call ``appended`` after each append this process makes (from the thread that
        made it); returns what stops it."""
        self._listeners.append(appended)
        return lambda: self._listeners.remove(appended)

    def record(
        self, actor: str, action: str, target: str = "", outcome: str = "done", **detail: Any
    ) -> int:
        """Append one operation and sign the log with it; returns its sequence number.
        Blocking (an fsync and a signature): the server calls it from a thread."""
        with self._locked():
            log = SessionLog(self.directory, self.origin, self._signer)
            try:
                seq = log.append(
                    KIND, actor=actor, action=action, target=target, outcome=outcome, **detail
                )
                log.checkpoint()
            finally:
                log.close_file()
        for appended in list(self._listeners):
            appended()
        return seq

    def operations(self) -> list[Operation]:
        """Every operation, oldest first."""
        path = self.directory / EVENTS
        found = []
        for line in path.read_bytes().splitlines() if path.exists() else []:
            event = json.loads(line)
            if event.get("kind") == KIND:
                fields = (event["actor"], event["action"], event["target"], event["outcome"])
                found.append(Operation(event["at"], *fields))
        return found

    def last(self, action: str) -> dict[str, Any] | None:
        """The newest operation ``action``, as logged (every field)."""
        path = self.directory / EVENTS
        for line in reversed(path.read_bytes().splitlines() if path.exists() else []):
            event: dict[str, Any] = json.loads(line)
            if event.get("kind") == KIND and event.get("action") == action:
                return event
        return None

    def note_keys(self, keys: dict[str, str]) -> bool:
        """Log the public keys in use if they are not the ones last logged (a key change
        is an operator's act, even when it is made in the settings); True if logged."""
        before = self.last(KEYS_IN_USE)
        if before is not None and before.get("keys") == keys:
            return False
        changed = sorted(k for k in keys if before is None or before["keys"].get(k) != keys[k])
        outcome = "first start" if before is None else "changed: " + ", ".join(changed)
        self.record(SERVER_ACTOR, KEYS_IN_USE, outcome=outcome, keys=keys)
        return True

    def check(self) -> LogCheck:
        return check_log(self.directory, [self.verifier], lambda origin: origin == self.origin)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / "lock", "ab", opener=private_opener) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
