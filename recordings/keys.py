"""age X25519 keys: identities (private, held by an agency or the audit body, never by the
interview server) and recipients (public, configured on the server).

Strings follow the age spec: ``age1…`` recipients and ``AGE-SECRET-KEY-1…`` identities,
Bech32 over the 32-byte X25519 keys; identity files look like ``age-keygen``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bech32
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from common.secret import Secret

from .errors import KeyFileError
from .private_files import private_directory, private_opener

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
HOLDERS = ("cbsa", "cbp", "audit")


def _encode(hrp: str, key: bytes) -> str:
    words = bech32.convertbits(list(key), 8, 5)
    assert words is not None
    return bech32.bech32_encode(hrp, words)


def _decode(hrp: str, text: str, what: str) -> bytes:
    found_hrp, words = bech32.bech32_decode(text)
    if found_hrp != hrp or words is None:
        raise KeyFileError(f"not a valid {what}")
    key = bech32.convertbits(words, 5, 8, False)
    if key is None or len(key) != 32:
        raise KeyFileError(f"not a valid {what}: wrong key length")
    return bytes(key)


@dataclass(frozen=True)
class Recipient:
    key: X25519PublicKey

    def __str__(self) -> str:
        return _encode(RECIPIENT_HRP, self.key.public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def parse(cls, text: str) -> Recipient:
        text = text.strip()
        if not text.startswith("age1"):
            raise KeyFileError("an age recipient starts with 'age1'")
        return cls(X25519PublicKey.from_public_bytes(_decode(RECIPIENT_HRP, text, "age recipient")))


class Identity:
    """A private X25519 key; its repr and str never show it."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> Identity:
        text = text.strip()
        if not text.startswith("AGE-SECRET-KEY-1"):
            raise KeyFileError("an age identity starts with 'AGE-SECRET-KEY-1'")
        raw = _decode(IDENTITY_HRP, text, "age identity")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._key

    @property
    def recipient(self) -> Recipient:
        return Recipient(self._key.public_key())

    def encoded(self) -> Secret[str]:
        raw = self._key.private_bytes_raw()
        return Secret(_encode(IDENTITY_HRP, raw).upper())

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient})"


def write_identity_file(path: Path, identity: Identity) -> None:
    """An identity file in ``age-keygen``'s layout, mode 0600; never overwrites."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (
        f"# created: {created}\n# public key: {identity.recipient}\n{identity.encoded().reveal()}\n"
    )
    write_private_file(path, text)


def write_private_file(path: Path, text: str) -> None:
    """A new file readable by its owner only (mode 0600); never overwrites."""
    private_directory(path.parent)
    try:
        handle = open(path, "x", encoding="utf-8", opener=private_opener)  # noqa: SIM115
    except FileExistsError:
        raise KeyFileError(f"{path} exists already; it was not overwritten") from None
    with handle:
        handle.write(text)


def read_identity_file(path: Path) -> list[Identity]:
    """Every identity in an age identity file (comments and blank lines skipped)."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the identity file {path}: {exc}") from exc
    identities = []
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.startswith("#"):
            try:
                identities.append(Identity.parse(line))
            except KeyFileError as exc:
                raise KeyFileError(f"{path}, line {number}: {exc.message}") from None
    if not identities:
        raise KeyFileError(f"{path} holds no age identity")
    return identities
