"""Witnesses' public keys as auditors give them to verification, and which of them
signed a checkpoint note.

A witness key is a cosignature/v1 key (type 0x04: what `nexus-interview witness` and
`records cosign` sign with, C2SP tlog-cosignature) or an Ed25519 note key (type 0x01:
the witness lines of notes co-signed before cosignature/v1, still read). Each signs the
checkpoint's text its own way; a line under a given key's name and id must verify,
whatever else the note holds, as C2SP asks of every signature by a known key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature

from .tlog import LogError, NoteSignature, NoteVerifier, parse_note
from .witness_protocol import CosignatureVerifier

WitnessKey = NoteVerifier | CosignatureVerifier


def parse_witness_key(vkey: str) -> WitnessKey:
    """A ``name+keyid+key`` verifier key of either kind; `LogError` if it is neither."""
    for parse in (CosignatureVerifier.parse, NoteVerifier.parse):
        with contextlib.suppress(LogError):
            return parse(vkey)
    raise LogError(
        "not a witness verifier key (name+id+key, cosignature/v1 as `nexus-interview "
        f"witness` prints it, or Ed25519): {vkey!r}"
    )


def _verifies(key: WitnessKey, text: str, signature: NoteSignature) -> bool:
    if isinstance(key, CosignatureVerifier):
        return key.signed(text, signature) is not None
    try:
        key.key.verify(signature.signature, text.encode())
    except InvalidSignature:
        return False
    return True


def cosigned_by(note: str | bytes, witnesses: Sequence[WitnessKey]) -> list[str]:
    """The names of ``witnesses`` whose signature the note carries, each once, in the
    note's order. Raises `LogError` if the note is malformed or a line under a witness
    key's name and id does not verify: a forged or altered cosignature is a fault, not
    an absence."""
    text, signatures = parse_note(note)
    signed: list[str] = []
    for signature in signatures:
        for witness in witnesses:
            if (signature.name, signature.key_id) != (witness.name, witness.key_id):
                continue
            if not _verifies(witness, text, signature):
                raise LogError(f"the cosignature by {witness.name} does not match the checkpoint")
            if witness.name not in signed:
                signed.append(witness.name)
    return signed
