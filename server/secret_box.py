"""Small secrets sealed inside the database under a key kept outside it.

TOTP secrets must be readable by the server (it checks codes), so they cannot be hashed
like passwords; sealing them with AES-256-GCM means a copy of the database (a backup, a
stolen file) does not give away anyone's second factor without the key file too. Each
value is bound to what it belongs to (``context``), so sealed values cannot be swapped
between accounts unnoticed.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.errors import NexusError
from common.secret import Secret
from recordings.private_files import create_once

SEALED_PREFIX = "sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBoxError(NexusError):
    """The key file is missing or damaged, or a sealed value does not open."""


class SecretBox:
    def __init__(self, key: Secret[bytes]) -> None:
        if len(key.reveal()) != KEY_BYTES:
            raise SecretBoxError(f"a secret-box key is {KEY_BYTES} bytes")
        self._aead = AESGCM(key.reveal())

    @classmethod
    def at(cls, path: Path, create: bool = True) -> SecretBox:
        """The box whose key is in ``path``, made there (readable by this user only) on
        first use when ``create``."""
        if path.exists():
            try:
                key = base64.urlsafe_b64decode(path.read_bytes().strip())
            except ValueError:
                raise SecretBoxError(f"{path} does not hold a secret-box key") from None
            return cls(Secret(key))
        if not create:
            raise SecretBoxError(f"there is no secret-box key at {path}")
        # two processes starting at once both make one: the first to land is the key
        held = create_once(path, base64.urlsafe_b64encode(os.urandom(KEY_BYTES)))
        return cls(Secret(base64.urlsafe_b64decode(held.strip())))

    def seal(self, value: Secret[str], context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.reveal().encode(), context.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, context: str) -> Secret[str]:
        """The value ``seal`` sealed for ``context``; a value stored before sealing existed
        comes back as it is."""
        if not is_sealed(stored):
            return Secret(stored)
        try:
            raw = base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (ValueError, InvalidTag):
            raise SecretBoxError(
                "a sealed secret does not open with this key (wrong key file, or altered)"
            ) from None
        return Secret(plain.decode())


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)
