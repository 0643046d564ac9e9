"""Agencies' witness keys: each agency may co-sign a session's final checkpoint with its
own Ed25519 key, so the record verifies against keys the interview server never held.

Keys use the signed-note formats (c2sp.org/signed-note, as Go's ``note`` package):
``PRIVATE+KEY+<name>+<key id>+<base64>`` in the private file, ``<name>+<key id>+<base64>``
for verifiers. A witness co-signs only a session that verifies and is complete.
A live witness (`server.witness_app`) holds a key of type 0x04 instead, for C2SP
cosignature/v1 (`generate_cosigner`, `read_cosigner`), never one of these.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from server.secret import Secret

from .errors import KeyFileError
from .keys import write_private_file
from .private_files import replace_privately
from .session_record import CHECKPOINTS, verify_session
from .tlog import ED25519_ALGORITHM, LogError, NoteSigner, NoteVerifier, add_signatures, open_note
from .witness_protocol import COSIGNATURE_ALGORITHM, Cosigner

PRIVATE_PREFIX = "PRIVATE+KEY+"


def signer_key(signer: NoteSigner, key: Ed25519PrivateKey) -> Secret[str]:
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    verifier = signer.verifier_key.split("+")
    raw = base64.b64encode(ED25519_ALGORITHM + seed).decode()
    return Secret(f"{PRIVATE_PREFIX}{verifier[0]}+{verifier[1]}+{raw}")


def generate_witness(path: Path, name: str) -> NoteSigner:
    """Write a new witness key file (mode 0600); returns its signer (for the verifier key)."""
    key = Ed25519PrivateKey.generate()
    signer = NoteSigner(name, key)
    write_private_file(path, signer_key(signer, key).reveal() + "\n")
    return signer


def read_witness(path: Path) -> NoteSigner:
    try:
        text = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the witness key file {path}: {exc}") from exc
    if not text.startswith(PRIVATE_PREFIX):
        raise KeyFileError(f"{path} is not a witness key file (PRIVATE+KEY+name+id+key)")
    try:
        name, key_id, raw_b64 = text.removeprefix(PRIVATE_PREFIX).split("+", 2)
        raw = base64.b64decode(raw_b64, validate=True)
    except ValueError:
        raise KeyFileError(f"{path} is not a witness key file (PRIVATE+KEY+name+id+key)") from None
    if raw[:1] != ED25519_ALGORITHM or len(raw) != 33:
        raise KeyFileError(f"{path} does not hold an Ed25519 witness key")
    try:
        signer = NoteSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    except LogError as exc:
        raise KeyFileError(f"{path}: {exc.message}") from None
    if signer.verifier_key.split("+")[1] != key_id:
        raise KeyFileError(f"{path}: the key id does not match the key")
    return signer


def generate_cosigner(path: Path, name: str) -> Cosigner:
    """Write a new live witness key file (cosignature/v1, type 0x04; mode 0600)."""
    key = Ed25519PrivateKey.generate()
    cosigner = Cosigner(name, key)
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw = base64.b64encode(COSIGNATURE_ALGORITHM + seed).decode()
    write_private_file(path, f"{PRIVATE_PREFIX}{name}+{cosigner.key_id.hex()}+{raw}\n")
    return cosigner


def read_cosigner(path: Path) -> Cosigner:
    """A live witness's key, written by `generate_cosigner`."""
    usage = f"{path} is not a live witness key file (PRIVATE+KEY+name+id+key, type 0x04)"
    try:
        text = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the witness key file {path}: {exc}") from exc
    try:
        name, key_id, raw_b64 = text.removeprefix(PRIVATE_PREFIX).split("+", 2)
        raw = base64.b64decode(raw_b64, validate=True)
    except ValueError:
        raise KeyFileError(usage) from None
    if not text.startswith(PRIVATE_PREFIX) or raw[:1] != COSIGNATURE_ALGORITHM or len(raw) != 33:
        raise KeyFileError(usage)
    try:
        cosigner = Cosigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    except LogError as exc:
        raise KeyFileError(f"{path}: {exc.message}") from None
    if cosigner.key_id.hex() != key_id:
        raise KeyFileError(f"{path}: the key id does not match the key")
    return cosigner


def final_checkpoint(directory: Path) -> Path:
    notes = sorted((directory / CHECKPOINTS).glob("*.note"))
    if not notes:
        raise LogError(f"{directory} holds no checkpoint")
    return notes[-1]


def cosign_session(
    directory: Path, server_keys: Sequence[NoteVerifier], witness: NoteSigner
) -> Path:
    """Add ``witness``'s signature to the session's final checkpoint, once the session
    verifies against ``server_keys`` and is complete; returns the note's path."""
    result = verify_session(directory, server_keys)
    if not result.ok:
        raise LogError(
            "not co-signing a session that does not verify: " + "; ".join(result.problems)
        )
    path = final_checkpoint(directory)
    note = path.read_bytes()  # as written: read_text would turn "\r\n" into "\n"
    own = NoteVerifier.parse(witness.verifier_key)
    try:
        open_note(note, [own])
        return path  # signed already: nothing to add
    except LogError:
        pass
    replace_privately(path, add_signatures(note, [witness]).encode("utf-8"))
    return path
