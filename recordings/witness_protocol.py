"""The C2SP tlog-witness protocol and C2SP tlog-cosignature/v1, pure: what a client sends
to a witness's ``add-checkpoint``, what the witness checks and answers, and cosignatures
made and verified.

A cosignature/v1 is a note signature line whose key id is computed with the type byte
0x04 and whose signature is an 8-byte big-endian POSIX time followed by an Ed25519
signature over ``cosignature/v1\\ntime <T>\\n`` and the checkpoint's text. The Ed25519
note signature (type 0x01) of `recordings.tlog` says "the log signed this"; a
cosignature says "as of T, this is the largest consistent tree I have seen of this log".
"""

from __future__ import annotations

import base64
import enum
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .tlog import (
    Checkpoint,
    LogError,
    NoteSignature,
    key_id,
    parse_note,
    strict_b64decode,
    valid_key_name,
    verify_consistency,
)

COSIGNATURE_ALGORITHM = b"\x04"
SIZE_CONTENT_TYPE = "text/x.tlog.size"  # the 409 answer's body: the witness's size
MAX_PROOF_LINES = 63
MAX_TIMESTAMP = (1 << 63) - 1
_DASH = "\u2014"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


class ProtocolError(LogError):
    """A request or an answer that does not follow tlog-witness (a witness answers 400)."""


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: a header, the time, then the checkpoint's text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


class Cosigner:
    """A witness's cosignature/v1 key; its repr never shows the key."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        if not valid_key_name(name):
            raise LogError(f"witness key name {name!r} must be non-empty, without spaces or '+'")
        self.name = name
        self._key = key
        self.public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, COSIGNATURE_ALGORITHM, self.public)

    @property
    def verifier_key(self) -> str:
        """The public ``name+keyid+key`` string (type 0x04) that log operators and
        auditors configure."""
        raw = base64.b64encode(COSIGNATURE_ALGORITHM + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def cosign(self, text: str, timestamp: int) -> str:
        """The signature line cosigning the checkpoint ``text`` as of ``timestamp``."""
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise LogError(f"a cosignature's time {timestamp} is outside 0..2^63-1")
        signature = struct.pack(">Q", timestamp) + self._key.sign(cosigned_message(text, timestamp))
        blob = base64.b64encode(self.key_id + signature).decode()
        return f"{_DASH} {self.name} {blob}\n"

    def __repr__(self) -> str:
        return f"Cosigner({self.verifier_key!r})"


@dataclass(frozen=True)
class CosignatureVerifier:
    name: str
    key_id: bytes
    key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        name, _, rest = vkey.strip().partition("+")
        key_hex, _, raw_b64 = rest.partition("+")
        raw = strict_b64decode(raw_b64)
        if not valid_key_name(name) or not re.fullmatch("[0-9a-fA-F]{8}", key_hex) or not raw:
            raise LogError(f"not a witness verifier key: {vkey!r}")
        claimed = bytes.fromhex(key_hex)
        if (
            raw[:1] != COSIGNATURE_ALGORITHM
            or len(raw) != 33
            or key_id(name, COSIGNATURE_ALGORITHM, raw[1:]) != claimed
        ):
            raise LogError(
                f"not a cosignature/v1 verifier key (type 0x04), or a wrong key id: {vkey!r}"
            )
        return cls(name, claimed, Ed25519PublicKey.from_public_bytes(raw[1:]))

    def signed(self, text: str, signature: NoteSignature) -> int | None:
        """The time ``signature`` cosigned ``text`` at, or None if it is not this key's or
        does not verify."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            return None
        if len(signature.signature) != 8 + 64:
            return None
        (timestamp,) = struct.unpack(">Q", signature.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        try:
            self.key.verify(signature.signature[8:], cosigned_message(text, timestamp))
        except InvalidSignature:
            return None
        return int(timestamp)


def cosignatures(note: str | bytes, verifiers: Sequence[CosignatureVerifier]) -> dict[str, int]:
    """Which of ``verifiers`` cosigned the note, and when. Raises `LogError` if the note is
    malformed or a line under a known key's name and id does not verify (every signature
    by a known key must)."""
    text, signatures = parse_note(note)
    found: dict[str, int] = {}
    for signature in signatures:
        for verifier in verifiers:
            if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
                continue
            timestamp = verifier.signed(text, signature)
            if timestamp is None:
                raise LogError(f"the cosignature by {verifier.name} does not match the checkpoint")
            found.setdefault(verifier.name, timestamp)
    return found


# --- add-checkpoint ------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpoint:
    """An ``add-checkpoint`` request: the size the client believes the witness holds, a
    consistency proof from it, and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def encode(self) -> bytes:
        lines = "".join(base64.b64encode(h).decode() + "\n" for h in self.proof)
        return f"old {self.old_size}\n{lines}\n{self.note}".encode()

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the request is not UTF-8 text") from None
        head, blank, note = text.partition("\n\n")
        if not blank:
            raise ProtocolError(
                "the request is an old size line, proof lines, a blank line, then a checkpoint"
            )
        lines = head.split("\n")
        old = _OLD.fullmatch(lines[0])
        if old is None or int(old.group(1)) > MAX_TIMESTAMP:
            raise ProtocolError("the first line is 'old <size>' in decimal, no leading zeros")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise ProtocolError(f"a consistency proof has at most {MAX_PROOF_LINES} lines")
        proof = []
        for number, line in enumerate(lines[1:], start=2):
            digest = strict_b64decode(line)
            if digest is None or len(digest) != 32:
                raise ProtocolError(f"line {number} is not a base64 SHA-256 hash")
            proof.append(digest)
        return cls(int(old.group(1)), tuple(proof), note)


def encode_size(size: int) -> bytes:
    return f"{size}\n".encode()


def parse_size(body: bytes) -> int:
    """The witness's size from a 409 answer."""
    match = re.fullmatch(rb"(0|[1-9][0-9]{0,18})\n", body)
    if match is None:
        raise ProtocolError(f"a witness's size answer is not a decimal line: {body[:40]!r}")
    return int(match.group(1))


def signature_lines(body: bytes) -> list[str]:
    """The note signature lines of a 200 answer (one or more, each ending in a newline)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("a witness's answer is not UTF-8") from None
    if not text.endswith("\n") or not text.startswith(_DASH + " "):
        raise ProtocolError("a witness's answer is note signature lines")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    # parse them as a note's signature block: the same grammar, the same limits
    parse_note("x\n\n" + "".join(lines))
    return lines


class Refusal(enum.Enum):
    """Why a witness will not cosign; the witness's HTTP edge gives each its status."""

    MALFORMED = "malformed"  # 400
    OLD_SIZE_ABOVE_CHECKPOINT = "old size above the checkpoint's"  # 400
    NOT_SIGNED = "not signed by the log's key"  # 403
    UNKNOWN_ORIGIN = "unknown origin"  # 404
    STALE_OLD_SIZE = "old size is not the witness's"  # 409, with the witness's size
    FORK = "same size, another root"  # 409
    BAD_PROOF = "consistency proof does not verify"  # 422
    DAMAGED_STATE = "the witness's own record of the log is damaged"  # 503


class WitnessRefused(LogError):
    def __init__(self, kind: Refusal, message: str, latest_size: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.latest_size = latest_size


def check_extension(
    request: AddCheckpoint, checkpoint: Checkpoint, latest: Checkpoint | None
) -> None:
    """The witness's rule: cosign ``checkpoint`` only as an append-only extension of the
    ``latest`` one it cosigned for the origin. Raises `WitnessRefused` otherwise."""
    held = latest.size if latest else 0
    if request.old_size > checkpoint.size:
        raise WitnessRefused(
            Refusal.OLD_SIZE_ABOVE_CHECKPOINT,
            f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}",
        )
    if request.old_size != held:
        raise WitnessRefused(
            Refusal.STALE_OLD_SIZE,
            f"this witness holds size {held} for {checkpoint.origin}, not {request.old_size}",
            held,
        )
    if latest is None or held == 0:
        if request.proof:
            raise WitnessRefused(Refusal.BAD_PROOF, "the proof from size 0 must be empty")
        return
    if checkpoint.size == held:
        if request.proof:
            raise WitnessRefused(Refusal.BAD_PROOF, "the proof between equal sizes is empty")
        if checkpoint.root != latest.root:
            raise WitnessRefused(
                Refusal.FORK,
                f"size {held} of {checkpoint.origin} was cosigned with another root hash",
                held,
            )
        return
    try:
        verify_consistency(held, checkpoint.size, latest.root, checkpoint.root, request.proof)
    except LogError as exc:
        raise WitnessRefused(Refusal.BAD_PROOF, exc.message) from None
