"""ID stills of interviews in progress, kept so that the interview's officers can see them.

The sealed copy in the session record is encrypted to the agencies: the server cannot read
it back. So while the interview lasts each still is also kept here: on disk, not in memory
(a dozen stills of up to 4 MB in each of many rooms), encrypted (AES-256-GCM) under a key
made for that interview and held only in this object's memory. They outlive the end of a
call (the CBP step of a two-step interview shows the CBSA step's stills; an officer decides
after the call); when the interview is over, whoever decides that calls `drop`: the key is
forgotten and the files are deleted. After a crash the files left behind cannot be
decrypted by anyone, and the next start deletes them.

A still whose bytes are already kept for the interview is not kept twice: a double click
or a retried request sends the same image again, and gets the first one's number back.

Files are written and read in a thread, off the event loop that forwards media.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.errors import Conflict, NotFound

MAX_STILLS_PER_INTERVIEW = 12
NONCE_BYTES = 12
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Still:
    number: int
    agency: str


@dataclass(frozen=True)
class Kept:
    """What `LiveStills.add` did: ``new`` is False when the same image was kept before
    and ``still`` is that one. ``recorded`` comes true once the still is in the session
    record (`settle`), false if it never will be (`drop_still`): a repeat answers as the
    first request ends, never "kept" for a still the record refused."""

    still: Still
    new: bool
    recorded: asyncio.Future[bool]


@dataclass
class _Interview:
    """One interview's stills: the key lives here and nowhere else."""

    interview_id: str
    directory: Path
    cipher: AESGCM = field(repr=False)
    stills: dict[int, Still] = field(default_factory=dict)
    numbered: int = 0  # numbers handed out, including to stills being written
    by_digest: dict[bytes, int] = field(default_factory=dict)  # SHA-256 -> number kept
    recorded: dict[int, asyncio.Future[bool]] = field(default_factory=dict)
    # One still kept at a time: the same image sent twice at once waits for the first.
    adding: asyncio.Lock = field(default_factory=asyncio.Lock)

    def path(self, number: int) -> Path:
        return self.directory / f"still-{number:03d}.sealed"

    def context(self, number: int) -> bytes:
        """Binds a file to its interview and number: files cannot be swapped unnoticed."""
        return f"{self.interview_id}/{number}".encode()


class LiveStills:
    def __init__(self, directory: Path | None = None) -> None:
        """Stills are kept under ``directory``, which is emptied now: whatever a previous
        run left there can no longer be decrypted. Without one, a private temporary
        directory is made on first use."""
        self._directory = directory
        self._remove_made: Callable[[], object] | None = None
        self._interviews: dict[str, _Interview] = {}
        self._closed = False
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    @property
    def directory(self) -> Path:
        """Where the stills are kept (made, readable by this user only, on first use)."""
        if self._directory is None:
            made = self._directory = Path(tempfile.mkdtemp(prefix="nexus-live-stills-"))
            # Removed by close(), or else when this object goes or the process exits.
            self._remove_made = weakref.finalize(self, shutil.rmtree, made, True)
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._directory.chmod(0o700)
        return self._directory

    async def add(self, interview_id: str, agency: str, jpeg: bytes) -> Kept:
        """Keep the still, or point to the one kept before with the same bytes."""
        if self._closed:
            raise Conflict("the server is shutting down; the still was not kept")
        digest = await asyncio.to_thread(_sha256, jpeg)
        interview = self._interviews.get(interview_id) or self._open(interview_id)
        async with interview.adding:
            kept_before = interview.by_digest.get(digest)
            if kept_before is not None:
                still = interview.stills[kept_before]
                return Kept(still, new=False, recorded=interview.recorded[kept_before])
            if interview.numbered >= MAX_STILLS_PER_INTERVIEW:
                raise Conflict(
                    "this interview already has {count} ID stills; that is the most kept",
                    count=MAX_STILLS_PER_INTERVIEW,
                )
            # Numbered before the write; a write that fails uses its number up (the thread
            # may still finish it).
            interview.numbered += 1
            number = interview.numbered
            await asyncio.to_thread(_seal, interview, number, jpeg)
            if self._interviews.get(interview_id) is not interview:
                # Dropped while the still was being written: it must not outlive the drop.
                await asyncio.to_thread(shutil.rmtree, interview.directory, True)
                raise Conflict("the interview ended before the still was kept")
            still = interview.stills[number] = Still(number, agency)
            interview.by_digest[digest] = number
            recorded = interview.recorded[number] = asyncio.get_running_loop().create_future()
            return Kept(still, new=True, recorded=recorded)

    async def jpeg(self, interview_id: str, number: int) -> bytes:
        """The still, decrypted."""
        interview = self._interviews.get(interview_id)
        if interview is None or number not in interview.stills:
            raise NotFound("there is no ID still {number} in this interview", number=number)
        try:
            return await asyncio.to_thread(_unseal, interview, number)
        except FileNotFoundError:  # dropped meanwhile
            raise NotFound(
                "there is no ID still {number} in this interview", number=number
            ) from None

    def listing(self, interview_id: str) -> list[dict[str, object]]:
        interview = self._interviews.get(interview_id)
        stills = sorted(interview.stills.values(), key=lambda s: s.number) if interview else []
        return [{"number": still.number, "agency": still.agency} for still in stills]

    def settle(self, interview_id: str, number: int) -> None:
        """The still is in the session record."""
        interview = self._interviews.get(interview_id)
        if interview is not None:
            _answer(interview.recorded.get(number), True)

    def drop_still(self, interview_id: str, number: int) -> None:
        """Forget one still that was kept but could not be recorded."""
        interview = self._interviews.get(interview_id)
        if interview is None or interview.stills.pop(number, None) is None:
            return
        _answer(interview.recorded.pop(number, None), False)
        for digest, kept in list(interview.by_digest.items()):
            if kept == number:
                del interview.by_digest[digest]
        interview.path(number).unlink(missing_ok=True)

    def drop(self, interview_id: str) -> None:
        """The interview is over: forget the key (the files are unreadable from here on)
        and delete the files. A dozen unlinks at most, so done in place. Safe twice."""
        interview = self._interviews.pop(interview_id, None)
        if interview is not None:
            for recorded in interview.recorded.values():
                _answer(recorded, False)
            shutil.rmtree(interview.directory, ignore_errors=True)

    def close(self) -> None:
        """Drop every interview's stills; a closed LiveStills keeps no more. Safe twice."""
        self._closed = True
        for interview_id in list(self._interviews):
            self.drop(interview_id)
        if self._remove_made is not None:
            self._remove_made()

    def _open(self, interview_id: str) -> _Interview:
        if not _SAFE_NAME.fullmatch(interview_id):
            raise NotFound("there is no interview {id}", id=interview_id)
        # Stills can be kept again for an interview once dropped (a capture racing the
        # drop): a directory of its own keeps a still written across the drop from landing
        # among the next one's.
        interview = _Interview(
            interview_id,
            self.directory / f"{interview_id}.{secrets.token_hex(4)}",
            AESGCM(AESGCM.generate_key(bit_length=256)),
        )
        self._interviews[interview_id] = interview
        return interview


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _seal(interview: _Interview, number: int, jpeg: bytes) -> None:
    nonce = os.urandom(NONCE_BYTES)
    sealed = interview.cipher.encrypt(nonce, jpeg, interview.context(number))
    interview.directory.mkdir(mode=0o700, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(interview.path(number), flags, 0o600), "wb") as handle:
        handle.write(nonce + sealed)


def _unseal(interview: _Interview, number: int) -> bytes:
    sealed = interview.path(number).read_bytes()
    return interview.cipher.decrypt(
        sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], interview.context(number)
    )


def _answer(recorded: asyncio.Future[bool] | None, value: bool) -> None:
    if recorded is not None and not recorded.done():
        recorded.set_result(value)
