"""The age v1 file format (c2sp.org/age) with X25519 recipients, on `cryptography`.

Layout: a text header (``age-encryption.org/v1``, one ``-> X25519`` stanza per recipient,
``--- `` and the header's HMAC), a 16-byte nonce, then the payload in STREAM chunks of
64 KiB plaintext, each sealed with ChaCha20-Poly1305 under an 11-byte big-endian counter
and a last-chunk flag. `AgeWriter` encrypts as data arrives; `AgeReader` opens any chunk
on its own (random access) and, for a file cut short by a crash, reports how many chunks
are complete so they can still be read.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
from collections.abc import Iterator, Sequence
from hashlib import sha256
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import AgeError, NoMatchingIdentity, TruncatedFile
from .keys import Identity, Recipient

VERSION_LINE = b"age-encryption.org/v1\n"
X25519_LABEL = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024
TAG = 16
SEALED_CHUNK = CHUNK + TAG
NONCE = 16
MAX_HEADER = 64 * 1024
_ZERO_NONCE = bytes(12)


def encode_b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def decode_b64(text: bytes) -> bytes:
    """Strict: canonical, unpadded standard base64 only."""
    if b"=" in text:
        raise AgeError("padded base64 in the header")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise AgeError("invalid base64 in the header") from None
    if encode_b64(data) != text:
        raise AgeError("non-canonical base64 in the header")
    return data


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt or None, info).derive(ikm)


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _wrap(file_key: bytes, recipient: Recipient) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = _raw(ephemeral.public_key())
    shared = ephemeral.exchange(recipient.key)
    wrap_key = _hkdf(shared, share + _raw(recipient.key), X25519_LABEL)
    body = encode_b64(ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None))
    lines = [body[i : i + 64] for i in range(0, len(body) + 1, 64)]
    return b"-> X25519 " + encode_b64(share) + b"\n" + b"\n".join(lines) + b"\n"


def _unwrap(share: bytes, body: bytes, identity: Identity) -> bytes | None:
    if len(share) != 32 or len(body) != 32:
        raise AgeError("malformed X25519 stanza")
    key = identity.private_key
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:  # cryptography refuses an all-zero shared secret
        raise AgeError("X25519 stanza with a low-order share") from None
    wrap_key = _hkdf(shared, share + _raw(key.public_key()), X25519_LABEL)
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _header_mac(file_key: bytes, header: bytes) -> bytes:
    return hmac.new(_hkdf(file_key, b"", b"header"), header, sha256).digest()


def _chunk_nonce(index: int, last: bool) -> bytes:
    """STREAM: an 11-byte big-endian chunk counter, then 1 for the last chunk, else 0."""
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class AgeWriter:
    """Encrypts a stream for ``recipients``; ``close()`` seals the last chunk."""

    def __init__(self, sink: Sink, recipients: Sequence[Recipient]) -> None:
        if not recipients:
            raise AgeError("an age file needs at least one recipient")
        file_key = os.urandom(16)
        header = VERSION_LINE + b"".join(_wrap(file_key, r) for r in recipients) + b"---"
        nonce = os.urandom(NONCE)
        sink.write(header + b" " + encode_b64(_header_mac(file_key, header)) + b"\n" + nonce)
        self._sink = sink
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False

    def write(self, data: bytes | memoryview) -> int:
        """Seal every full chunk that is surely not the last one (at least one byte is
        always held back: only ``close()`` knows which chunk ends the file)."""
        if self._closed:
            raise ValueError("write to a closed AgeWriter")
        view = memoryview(data)
        used = 0
        if self._buffer and len(self._buffer) + len(view) > CHUNK:
            used = CHUNK - len(self._buffer)
            self._buffer += view[:used]
            self._seal(self._buffer, last=False)
            self._buffer = bytearray()
        while len(view) - used > CHUNK:  # whole chunks straight from the caller's bytes
            self._seal(view[used : used + CHUNK], last=False)
            used += CHUNK
        self._buffer += view[used:]
        return len(view)

    def _seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> None:
        self._sink.write(self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, None))
        self._counter += 1

    @property
    def sealed_chunks(self) -> int:
        return self._counter

    @property
    def unsealed(self) -> int:
        """Bytes written but not yet sealed (lost if the process dies now)."""
        return len(self._buffer)

    def close(self) -> None:
        """Seal what is left as the last chunk; safe to call twice."""
        if not self._closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True


class AgeReader:
    """Opens an age file with one of ``identities``; chunks decrypt independently."""

    def __init__(self, source: BinaryIO, identities: Sequence[Identity]) -> None:
        self._source = source
        file_key, payload_start = self._open_header(identities)
        source.seek(payload_start)
        nonce = source.read(NONCE)
        if len(nonce) != NONCE:
            raise AgeError("the file ends inside the payload nonce")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._start = payload_start + NONCE
        size = source.seek(0, os.SEEK_END) - self._start
        self.chunks = max(1, -(-size // SEALED_CHUNK))
        self._last_size = size - (self.chunks - 1) * SEALED_CHUNK

    def _open_header(self, identities: Sequence[Identity]) -> tuple[bytes, int]:
        self._source.seek(0)
        head = self._source.read(MAX_HEADER)
        end = head.find(b"\n---")
        if not head.startswith(VERSION_LINE) or end < 0:
            raise AgeError("not an age v1 file (or its header is too long)")
        line_end = head.find(b"\n", end + 1)
        if line_end < 0:
            raise AgeError("the header's MAC line is cut off")
        header = head[: end + 4]
        mac_line = head[end + 4 : line_end]
        if not mac_line.startswith(b" "):
            raise AgeError("malformed header MAC line")
        stanzas = self._stanzas(head[len(VERSION_LINE) : end + 1])
        file_key = None
        for identity in identities:
            for args, body in stanzas:
                if args[0] == b"X25519":
                    if len(args) != 2:
                        raise AgeError("malformed X25519 stanza")
                    file_key = _unwrap(decode_b64(args[1]), body, identity)
                    if file_key is not None:
                        break
            if file_key is not None:
                break
        if file_key is None:
            raise NoMatchingIdentity("none of the given identities can open this file")
        if not hmac.compare_digest(_header_mac(file_key, header), decode_b64(mac_line[1:])):
            raise AgeError("the header's MAC does not match: the header was altered")
        return file_key, line_end + 1

    @staticmethod
    def _stanzas(text: bytes) -> list[tuple[list[bytes], bytes]]:
        stanzas: list[tuple[list[bytes], bytes]] = []
        lines = text.split(b"\n")[:-1]
        i = 0
        while i < len(lines):
            if not lines[i].startswith(b"-> "):
                raise AgeError("malformed stanza line in the header")
            args = lines[i][3:].split(b" ")
            body = b""
            i += 1
            while True:
                if i >= len(lines):
                    raise AgeError("a stanza body is cut off")
                line = lines[i]
                i += 1
                if len(line) > 64:
                    raise AgeError("a stanza body line is longer than 64 columns")
                body += line
                if len(line) < 64:
                    break
            stanzas.append((args, decode_b64(body)))
        return stanzas

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk ``index``, authenticated (including its position)."""
        if not 0 <= index < self.chunks:
            raise IndexError(f"chunk {index} of {self.chunks}")
        last = index == self.chunks - 1
        plain = self._open(index, last)
        if plain is None:
            if not last:
                raise AgeError(f"chunk {index} fails authentication: the payload was altered")
            if self._last_size == SEALED_CHUNK and self._open(index, False) is not None:
                raise TruncatedFile("the file ends before its last chunk", index + 1)
            raise TruncatedFile(f"the file ends inside chunk {index} or it was altered", index)
        if last and not plain and index > 0:
            raise AgeError("the last chunk is empty")
        return plain

    def _open(self, index: int, last: bool) -> bytes | None:
        self._source.seek(self._start + index * SEALED_CHUNK)
        sealed = self._source.read(self._last_size if last else SEALED_CHUNK)
        try:
            return self._aead.decrypt(_chunk_nonce(index, last), sealed, None)
        except InvalidTag:
            return None

    def __iter__(self) -> Iterator[bytes]:
        for index in range(self.chunks):
            yield self.chunk(index)

    def recoverable(self) -> Iterator[bytes]:
        """Every complete chunk, stopping quietly where a crash cut the file short."""
        for index in range(self.chunks):
            try:
                yield self.chunk(index)
            except TruncatedFile as exc:
                if exc.complete_chunks > index:
                    recovered = self._open(index, False)
                    assert recovered is not None
                    yield recovered
                return

    def readable_size(self) -> int:
        """Plaintext bytes that can be read: all of them, or those of the complete chunks
        when a crash cut the file short."""
        try:
            last = self.chunk(self.chunks - 1)
        except TruncatedFile as exc:
            return exc.complete_chunks * CHUNK
        return (self.chunks - 1) * CHUNK + len(last)

    def read_range(self, offset: int, length: int) -> bytes:
        """Plaintext bytes [offset, offset + length) without decrypting the rest."""
        out = bytearray()
        index = offset // CHUNK
        skip = offset % CHUNK
        while len(out) < length and index < self.chunks:
            out += self.chunk(index)[skip:]
            skip = 0
            index += 1
        return bytes(out[:length])


def encrypt(data: bytes, recipients: Sequence[Recipient]) -> bytes:
    buffer = io.BytesIO()
    writer = AgeWriter(buffer, recipients)
    writer.write(data)
    writer.close()
    return buffer.getvalue()


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    return b"".join(AgeReader(io.BytesIO(data), identities))
