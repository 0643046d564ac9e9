"""The interview server's side of the witnesses: each session record's newest checkpoint
is brought to every configured witness (C2SP tlog-witness ``add-checkpoint``) with a
consistency proof from the size that witness last cosigned, and each cosignature/v1
that verifies is added to the checkpoint's note on disk.

A witness that is down or refuses does not stop an interview: `Witnessing` retries with
growing delays, and because each attempt carries the newest checkpoint with a proof
from whatever size the witness holds, one answer catches a witness up however far
behind it fell. `unwitnessed` says what is still waiting, and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from common.errors import SettingError
from recordings.errors import RecordingError
from recordings.private_files import replace_privately
from recordings.session_record import CHECKPOINTS, EVENTS
from recordings.tlog import Checkpoint, LogError, MerkleTree, leaf_hash, parse_note
from recordings.witness_protocol import (
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    CosignatureVerifier,
    cosignatures,
    parse_size,
    signature_lines,
)

log = logging.getLogger(__name__)
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s until it answers
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class WitnessEndpoint:
    name: str  # the agency's name for people (CBSA, CBP)
    url: str  # the submission prefix: ``<url>/add-checkpoint``
    key: CosignatureVerifier


def parse_witnesses(value: str) -> list[WitnessEndpoint]:
    """``name=url=vkey,...`` (the vkey holds no '=': 33 bytes are 44 base64 characters)."""
    endpoints = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, rest = item.partition("=")
        url, _, vkey = rest.rpartition("=")
        if not name or not url.startswith(("http://", "https://")) or not vkey:
            raise SettingError(f"a witness is name=url=vkey, not {item!r}")
        try:
            key = CosignatureVerifier.parse(vkey)
        except LogError as exc:
            raise SettingError(f"witness {name}: {exc.message}") from None
        endpoints.append(WitnessEndpoint(name, url.rstrip("/"), key))
    if len({e.name for e in endpoints}) != len(endpoints):
        raise SettingError("two witnesses share a name")
    return endpoints


class WitnessingFailed(RecordingError):
    """A witness that did not cosign; the message says what it answered."""


def newest_checkpoint(directory: Path) -> Path | None:
    notes = sorted((directory / CHECKPOINTS).glob("*.note"))
    return notes[-1] if notes else None


def cosigned_size(directory: Path, witness: CosignatureVerifier) -> int:
    """The largest checkpoint of the record this witness has cosigned (0 if none): where
    its state stands, as far as the record knows, after a restart of ours."""
    for path in sorted((directory / CHECKPOINTS).glob("*.note"), reverse=True):
        with contextlib.suppress(LogError, OSError):
            if witness.name in cosignatures(path.read_bytes(), [witness]):
                return int(path.stem)
    return 0


def _read(directory: Path, note_path: Path) -> tuple[str, str, Checkpoint, MerkleTree]:
    """The note, its text and checkpoint, and the tree of the events it covers."""
    note = note_path.read_text("utf-8")
    text, _ = parse_note(note)
    checkpoint = Checkpoint.parse(text)
    leaves: list[bytes] = []
    with open(directory / EVENTS, "rb") as events:
        for line in events:
            if len(leaves) == checkpoint.size:
                break
            leaves.append(leaf_hash(line.rstrip(b"\n")))
    if len(leaves) < checkpoint.size:
        raise WitnessingFailed(
            f"{directory} holds fewer events than its checkpoint of {checkpoint.size}"
        )
    return note, text, checkpoint, MerkleTree(leaves)


async def add_checkpoint(
    http: aiohttp.ClientSession,
    witness: WitnessEndpoint,
    directory: Path,
    note_path: Path,
    old_size: int,
) -> tuple[str, int]:
    """Submit the checkpoint at ``note_path``; returns the verified cosignature line and
    the size the witness now holds. A 409 naming another size is followed once, with a
    proof from that size (the witness restarted elsewhere, or our memory was lost)."""
    note, text, checkpoint, tree = await asyncio.to_thread(_read, directory, note_path)
    for _ in range(2):
        if old_size > checkpoint.size:
            raise WitnessingFailed(
                f"witness {witness.name} has cosigned {old_size} events of {checkpoint.origin}"
                f" but the record holds {checkpoint.size}: the log was cut back"
            )
        proof = tree.consistency_proof(old_size, checkpoint.size) if old_size > 0 else []
        body = AddCheckpoint(old_size, tuple(proof), note).encode()
        async with http.post(f"{witness.url}/add-checkpoint", data=body) as response:
            answer = await response.read()
            if response.status == 200:
                return _verified_line(witness, text, answer), checkpoint.size
            if response.status == 409 and response.content_type == SIZE_CONTENT_TYPE:
                old_size = parse_size(answer)
                continue
            reason = answer.decode("utf-8", "replace").strip()[:200]
            raise WitnessingFailed(f"witness {witness.name} answered {response.status}: {reason}")
    raise WitnessingFailed(f"witness {witness.name} keeps changing its size of {checkpoint.origin}")


def _verified_line(witness: WitnessEndpoint, text: str, answer: bytes) -> str:
    try:
        lines = signature_lines(answer)
    except LogError as exc:
        raise WitnessingFailed(f"witness {witness.name}: {exc.message}") from None
    for line in lines:
        with contextlib.suppress(LogError):
            if witness.key.name in cosignatures(text + "\n" + line, [witness.key]):
                return line
    raise WitnessingFailed(f"witness {witness.name} answered no valid cosignature by its key")


def add_cosignature(note_path: Path, line: str) -> None:
    """Add a verified cosignature line to the note, once."""
    note = note_path.read_text("utf-8")
    if line not in note:
        replace_privately(note_path, (note + line).encode("utf-8"))


@dataclass
class _Pending:
    attempts: int = 0
    next_try: float = 0.0
    problem: str = "not yet submitted"


@dataclass
class _Record:
    witnesses: dict[str, _Pending] = field(default_factory=dict)


class Witnessing:
    """Owns the task that submits records' newest checkpoints to the witnesses; call
    `submit` whenever a record gains a checkpoint worth witnessing."""

    def __init__(
        self, witnesses: Sequence[WitnessEndpoint], delays: Sequence[float] = RETRY_DELAYS
    ) -> None:
        self.witnesses = list(witnesses)
        self._delays = list(delays)
        self._records: dict[Path, _Record] = {}
        self._sizes: dict[tuple[str, Path], int] = {}  # what each witness holds, as last heard
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._idle.set()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        self._task = asyncio.create_task(self._run(), name="witnessing")

    def submit(self, directory: Path) -> None:
        if self._closed:
            raise RecordingError("witnessing is closed")
        record = self._records.setdefault(directory, _Record())
        for witness in self.witnesses:
            pending = record.witnesses.setdefault(witness.name, _Pending())
            pending.next_try = 0.0  # news: try now, whatever the back-off said
        self._idle.clear()
        self._wake.set()

    def unwitnessed(self) -> dict[Path, dict[str, str]]:
        """Each record with a witness that has not cosigned its newest checkpoint: why."""
        return {
            path: {name: p.problem for name, p in record.witnesses.items()}
            for path, record in self._records.items()
            if record.witnesses
        }

    async def settled(self) -> None:
        """Until every submitted checkpoint is cosigned by every witness."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop trying (what is unwitnessed stays so, and is retried after a restart by
        whoever submits the record again); safe twice."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            for directory, record in list(self._records.items()):
                for witness in self.witnesses:
                    pending = record.witnesses.get(witness.name)
                    if pending is not None and pending.next_try <= now:
                        await self._attempt(directory, record, witness, pending)
            waits = [p.next_try for r in self._records.values() for p in r.witnesses.values()]
            if not waits:
                self._idle.set()
            self._wake.clear()
            timeout = max(0.0, min(waits) - time.monotonic()) if waits else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _attempt(
        self, directory: Path, record: _Record, witness: WitnessEndpoint, pending: _Pending
    ) -> None:
        assert self._http is not None
        note_path = newest_checkpoint(directory)
        if note_path is None:
            del record.witnesses[witness.name]
            return
        key = (witness.name, directory)
        try:
            if key not in self._sizes:
                self._sizes[key] = await asyncio.to_thread(cosigned_size, directory, witness.key)
            if self._sizes[key] < int(note_path.stem) or not await asyncio.to_thread(
                _cosigned, note_path, witness.key
            ):
                line, size = await add_checkpoint(
                    self._http, witness, directory, note_path, self._sizes[key]
                )
                await asyncio.to_thread(add_cosignature, note_path, line)
                self._sizes[key] = size
        except (OSError, aiohttp.ClientError, TimeoutError, RecordingError) as exc:
            pending.problem = str(exc) or type(exc).__name__
            delay = self._delays[min(pending.attempts, len(self._delays) - 1)]
            pending.attempts += 1
            pending.next_try = time.monotonic() + delay
            log.warning("%s: not witnessed by %s (%s)", directory.name, witness.name, exc)
            return
        if newest_checkpoint(directory) == note_path:
            del record.witnesses[witness.name]
        else:  # the log moved on meanwhile: the newer checkpoint, at once
            pending.attempts, pending.next_try = 0, 0.0
            pending.problem = "a newer checkpoint to submit"
        if not record.witnesses:
            del self._records[directory]


def _cosigned(note_path: Path, key: CosignatureVerifier) -> bool:
    try:
        return key.name in cosignatures(note_path.read_bytes(), [key])
    except LogError:
        return False
