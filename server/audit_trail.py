"""The audit console's access log: every list, open, play and export, appended as a
canonical-JSON event to its own RFC 9162 log with a signed checkpoint after each, exactly
as session records are kept (`recordings.session_record`), so it is tamper-evident too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recordings.session_record import EVENTS, LogCheck, SessionLog, check_log
from recordings.tlog import NoteVerifier

from .session_records import checkpoint_signer

SIGNER_NAME = "nexus-audit-console"


@dataclass(frozen=True)
class Access:
    at: str
    auditor: str
    action: str
    session: str


class AuditTrail:
    def __init__(self, directory: Path, log_name: str) -> None:
        self.directory = directory / "access-log"
        signer = checkpoint_signer(directory / "access-signing.pem", SIGNER_NAME)
        self.origin = f"{log_name}/audit-access"
        self.verifier = NoteVerifier.parse(signer.verifier_key)
        self._log = SessionLog(self.directory, self.origin, signer)

    def record(self, auditor: str, action: str, session: str = "", **detail: Any) -> None:
        self._log.append("access", auditor=auditor, action=action, session=session, **detail)
        self._log.checkpoint()

    def accesses(self, session: str | None = None) -> list[Access]:
        """Who did what, oldest first (of one session, if given)."""
        path = self.directory / EVENTS
        found = []
        for line in path.read_bytes().splitlines() if path.exists() else []:
            event = json.loads(line)
            if event.get("kind") == "access" and session in (None, event.get("session")):
                found.append(
                    Access(event["at"], event["auditor"], event["action"], event["session"])
                )
        return found

    def check(self) -> LogCheck:
        return check_log(self.directory, [self.verifier], lambda origin: origin == self.origin)

    def close(self) -> None:
        self._log.close()
