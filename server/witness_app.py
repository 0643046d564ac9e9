"""An agency's witness: the C2SP tlog-witness ``add-checkpoint`` endpoint, run as its own
process with its own key (``nexus-interview witness``).

It trusts one interview server's checkpoint key(s) and every origin under its prefixes
(each interview is a log of its own, ``<host>/interview/<id>``, and the server keeps one
log of closed sessions, ``<host>/closed-sessions``: the prefix ``<host>/`` covers them
all, and no other server's logs), and cosigns a checkpoint (cosignature/v1) only if it
extends, by a verified consistency proof, the latest one it cosigned for that origin.
That latest checkpoint is kept per origin in a file of its own under the state
directory, written whole and fsynced before the answer, so a restart forgets nothing and
a log cut back or forked is refused from then on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from recordings.private_files import private_directory, replace_privately
from recordings.tlog import Checkpoint, LogError, NoteVerifier, open_note, parse_note
from recordings.witness_protocol import (
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    Cosigner,
    Refusal,
    WitnessRefused,
    check_extension,
    encode_size,
)

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024  # a note and 63 hashes fit many times over
_STATUS = {
    Refusal.MALFORMED: HTTPStatus.BAD_REQUEST,
    Refusal.OLD_SIZE_ABOVE_CHECKPOINT: HTTPStatus.BAD_REQUEST,
    Refusal.NOT_SIGNED: HTTPStatus.FORBIDDEN,
    Refusal.UNKNOWN_ORIGIN: HTTPStatus.NOT_FOUND,
    Refusal.STALE_OLD_SIZE: HTTPStatus.CONFLICT,
    Refusal.FORK: HTTPStatus.CONFLICT,
    Refusal.BAD_PROOF: HTTPStatus.UNPROCESSABLE_ENTITY,
    Refusal.DAMAGED_STATE: HTTPStatus.SERVICE_UNAVAILABLE,
}


@dataclass(frozen=True)
class WitnessConfig:
    cosigner: Cosigner
    log_keys: Sequence[NoteVerifier]  # the interview server's checkpoint key(s)
    origin_prefixes: Sequence[str]  # e.g. "interviews.example/"; a bare prefix is no log
    state: Path  # directory of the latest cosigned checkpoint per origin


class CheckpointStore:
    """The latest cosigned checkpoint of each origin: one JSON file per origin, named by
    the origin's SHA-256 (origins hold '/' and ':'), replaced whole and fsynced."""

    def __init__(self, directory: Path) -> None:
        self.directory = private_directory(directory)
        private_directory(directory / "refused")

    def _path(self, origin: str) -> Path:
        return self.directory / f"{hashlib.sha256(origin.encode()).hexdigest()}.json"

    def latest(self, origin: str) -> Checkpoint | None:
        """What was last cosigned for ``origin``, None for a log never seen; a file that
        does not hold it (damaged, or put there by hand) is `Refusal.DAMAGED_STATE`: the
        witness could no longer tell a rollback, so it cosigns nothing for that log until
        its operator restores the file, and leaves the file as it found it."""
        path = self._path(origin)
        try:
            held = json.loads(path.read_bytes())
            # Parsed as a checkpoint body, so each field is checked as the log's own are.
            checkpoint = Checkpoint.parse(f"{held['origin']}\n{held['size']}\n{held['root']}\n")
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, LogError):  # not JSON, fields missing or bad
            checkpoint = None
        if checkpoint is None or checkpoint.origin != origin:
            raise WitnessRefused(
                Refusal.DAMAGED_STATE,
                f"this witness's record of {origin} ({path.name}) is damaged: it cosigns "
                "nothing for that log until its operator restores the file from a backup",
            )
        return checkpoint

    def save(self, checkpoint: Checkpoint, note: str, at: int) -> None:
        record = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root).decode(),
            "note": note,
            "cosigned_at": at,
        }
        replace_privately(self._path(checkpoint.origin), json.dumps(record).encode())

    def keep_evidence(self, body: bytes, at: int) -> Path:
        """A request signed by the log that fails its proof may show the log misbehaving."""
        path = self.directory / "refused" / f"{at}-{hashlib.sha256(body).hexdigest()[:16]}"
        replace_privately(path, body)
        return path


class Witness:
    """Checks and cosigns one request at a time: the check against the stored size and
    the update of it are one step, so no two requests can roll each other back."""

    def __init__(self, config: WitnessConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = CheckpointStore(config.state)
        self._clock = clock
        self._one_at_a_time = asyncio.Lock()

    async def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line for the request's checkpoint; raises `WitnessRefused`."""
        try:
            request = AddCheckpoint.parse(body)
            text, _ = parse_note(request.note)
            checkpoint = Checkpoint.parse(text)
        except LogError as exc:
            raise WitnessRefused(Refusal.MALFORMED, exc.message) from None
        origin = checkpoint.origin
        if not any(origin.startswith(p) and origin != p for p in self.config.origin_prefixes):
            raise WitnessRefused(
                Refusal.UNKNOWN_ORIGIN, f"this witness knows no log {checkpoint.origin!r}"
            )
        try:
            open_note(request.note, self.config.log_keys)
        except LogError as exc:
            raise WitnessRefused(Refusal.NOT_SIGNED, exc.message) from None
        async with self._one_at_a_time:
            try:
                latest = await asyncio.to_thread(self.store.latest, checkpoint.origin)
            except WitnessRefused as damaged:
                log.error("%s", damaged.message)
                raise
            now = int(self._clock())
            try:
                check_extension(request, checkpoint, latest)
            except WitnessRefused as refused:
                if refused.kind in (Refusal.BAD_PROOF, Refusal.FORK):
                    kept = await asyncio.to_thread(self.store.keep_evidence, body, now)
                    log.warning("refused %s (%s); kept as %s", checkpoint.origin, refused, kept)
                raise
            await asyncio.to_thread(self.store.save, checkpoint, request.note, now)
        return self.config.cosigner.cosign(text, now)


WITNESS = web.AppKey("witness", Witness)


async def _add_checkpoint(request: web.Request) -> web.Response:
    witness = request.app[WITNESS]
    try:
        line = await witness.add_checkpoint(await request.read())
    except WitnessRefused as refused:
        status = _STATUS[refused.kind]
        if refused.kind is Refusal.STALE_OLD_SIZE and refused.latest_size is not None:
            return web.Response(
                status=status,
                body=encode_size(refused.latest_size),
                content_type=SIZE_CONTENT_TYPE,
            )
        return web.Response(status=status, text=f"{refused.message}\n")
    return web.Response(text=line)


def create_witness_app(
    config: WitnessConfig, clock: Callable[[], float] = time.time
) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[WITNESS] = Witness(config, clock)
    app.router.add_post("/add-checkpoint", _add_checkpoint)
    return app
