"""Agencies' witness keys: each agency cosigns checkpoints with its own key, so a record
verifies against keys the interview server never held.

One kind of key, cosignature/v1 (C2SP tlog-cosignature, type 0x04), whether a live
witness (`server.witness_app`) cosigns each checkpoint as the interview goes or an
agency cosigns a complete, verified record's final checkpoint afterwards
(`cosign_session`): both give the same kind of line, checked the same way. The private
file holds ``PRIVATE+KEY+<name>+<key id>+<base64>`` as Go's ``note`` signer format does;
the verifier key is ``<name>+<key id>+<base64>``. Notes cosigned with the older Ed25519
witness keys (type 0x01) are still read (`recordings.witness_keys`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from common.secret import Secret

from .errors import KeyFileError
from .keys import write_private_file
from .private_files import replace_privately
from .session_record import CHECKPOINTS, verify_session
from .tlog import ED25519_ALGORITHM, LogError, NoteSigner, NoteVerifier, parse_note
from .witness_protocol import COSIGNATURE_ALGORITHM, CosignatureVerifier, Cosigner

PRIVATE_PREFIX = "PRIVATE+KEY+"


def signer_key(signer: NoteSigner, key: Ed25519PrivateKey) -> Secret[str]:
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    verifier = signer.verifier_key.split("+")
    raw = base64.b64encode(ED25519_ALGORITHM + seed).decode()
    return Secret(f"{PRIVATE_PREFIX}{verifier[0]}+{verifier[1]}+{raw}")


def generate_witness(path: Path, name: str) -> Cosigner:
    """An agency's witness key, for `records cosign` or a live witness alike."""
    return generate_cosigner(path, name)


def generate_cosigner(path: Path, name: str) -> Cosigner:
    """Write a new witness key file (cosignature/v1, type 0x04; mode 0600)."""
    key = Ed25519PrivateKey.generate()
    cosigner = Cosigner(name, key)
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw = base64.b64encode(COSIGNATURE_ALGORITHM + seed).decode()
    write_private_file(path, f"{PRIVATE_PREFIX}{name}+{cosigner.key_id.hex()}+{raw}\n")
    return cosigner


def read_cosigner(path: Path) -> Cosigner:
    """A witness's key, written by `generate_cosigner`."""
    usage = f"{path} is not a witness key file (PRIVATE+KEY+name+id+key, type 0x04)"
    try:
        text = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the witness key file {path}: {exc}") from exc
    try:
        name, key_id, raw_b64 = text.removeprefix(PRIVATE_PREFIX).split("+", 2)
        raw = base64.b64decode(raw_b64, validate=True)
    except ValueError:
        raise KeyFileError(usage) from None
    if text.startswith(PRIVATE_PREFIX) and raw[:1] == ED25519_ALGORITHM and len(raw) == 33:
        raise KeyFileError(
            f"{path} holds an Ed25519 witness key (type 0x01), which cosigns no more: make a "
            "cosignature/v1 key with `nexus-interview keys witness` and give auditors its "
            "verifier key (notes the old key signed still verify with the old verifier key)"
        )
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
    directory: Path,
    server_keys: Sequence[NoteVerifier],
    witness: Cosigner,
    clock: Callable[[], float] = time.time,
) -> Path:
    """Add ``witness``'s cosignature/v1 to the session's final checkpoint, once the
    session verifies against ``server_keys`` and has closed; returns the note's path.
    A line of its key that does not verify is replaced, as Go's ``note.Sign`` does."""
    result = verify_session(directory, server_keys)
    if result.failed or not result.closed:
        raise LogError(
            "not co-signing a session that does not verify: " + "; ".join(result.problems)
        )
    path = final_checkpoint(directory)
    note = path.read_bytes()  # as written: read_text would turn "\r\n" into "\n"
    text, signatures = parse_note(note)
    own = CosignatureVerifier.parse(witness.verifier_key)
    mine = [s for s in signatures if (s.name, s.key_id) == (own.name, own.key_id)]
    if any(own.signed(text, s) is not None for s in mine):
        return path  # cosigned already: nothing to add
    kept = "".join(s.line for s in signatures if s not in mine)
    cosigned = text + "\n" + kept + witness.cosign(text, int(clock()))
    replace_privately(path, cosigned.encode("utf-8"))
    return path
