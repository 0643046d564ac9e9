"""A transparency log for session events: the RFC 9162 Merkle tree (SHA-256 with 0x00
leaf and 0x01 node prefixes), inclusion and consistency proofs, and checkpoints in the
C2SP tlog-checkpoint body signed as a C2SP signed note with Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import RecordingError

EMPTY_ROOT = hashlib.sha256(b"").digest()
ED25519_ALGORITHM = b"\x01"
_DASH = "\u2014"  # signature lines start with an em dash


class LogError(RecordingError):
    """A proof, checkpoint or note that does not verify; the message says which."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Leaf hashes in order; roots and proofs for any size up to the current one."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._leaves: list[bytes] = list(leaf_hashes)
        self._cache: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, data: bytes) -> int:
        """Add a leaf (its data); returns its index."""
        self._leaves.append(leaf_hash(data))
        return len(self._leaves) - 1

    def root(self, size: int | None = None) -> bytes:
        size = len(self._leaves) if size is None else size
        if not 0 <= size <= len(self._leaves):
            raise LogError(f"the log has {len(self._leaves)} leaves, not {size}")
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def _hash(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end); perfect subtrees are remembered."""
        n = end - start
        if n == 1:
            return self._leaves[start]
        key = (start, end)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        k = _split(n)
        value = node_hash(self._hash(start, start + k), self._hash(start + k, end))
        if n & (n - 1) == 0:
            self._cache[key] = value
        return value

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size])."""
        if not 0 <= index < size <= len(self._leaves):
            raise LogError(f"no leaf {index} in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._hash(start + k, end)]
        return [*self._path(m - k, start + k, end), self._hash(start, start + k)]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old, D[0:new])."""
        if not 0 < old <= new <= len(self._leaves):
            raise LogError(f"no consistency proof from size {old} to {new}")
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._hash(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self._hash(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._hash(start, start + k)]


class RunningRoot:
    """The root after each appended leaf, keeping only the perfect subtrees' hashes
    (O(log n) memory): what a verifier computes while reading the events it holds."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash."""
        value, width = leaf, 1
        while self._stack and self._stack[-1][0] == width:
            value = node_hash(self._stack.pop()[1], value)
            width *= 2
        self._stack.append((width, value))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    running = RunningRoot()
    for leaf in leaf_hashes:
        running.append(leaf)
    return running.root()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2, for a leaf hash; raises `LogError` unless it holds."""
    if not 0 <= index < size:
        raise LogError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise LogError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise LogError(f"leaf {index} is not in the tree with that root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; raises `LogError` unless the new tree extends the old one."""
    if old == new:
        if proof or old_root != new_root:
            raise LogError("two checkpoints of the same size with different roots")
        return
    if old == 0 or old > new:
        raise LogError(f"no consistency between sizes {old} and {new}")
    if not proof:
        raise LogError("empty consistency proof")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LogError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise LogError(f"the log of size {new} does not extend the checkpoint of size {old}")


# --- checkpoints and signed notes ---------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """c2sp.org/tlog-checkpoint: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not lines[0]:
            raise LogError("a checkpoint body has an origin, a size and a root hash")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isdigit() or (size.startswith("0") and size != "0"):
            raise LogError(f"checkpoint tree size {size!r} is not a decimal number")
        try:
            digest = base64.b64decode(root, validate=True)
        except ValueError:
            raise LogError("checkpoint root hash is not base64") from None
        if len(digest) != 32:
            raise LogError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), digest)


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALGORITHM + public).digest()[:4]


class NoteSigner:
    """An Ed25519 signer for c2sp.org/signed-note; its repr never shows the key."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        if not name or any(c.isspace() for c in name) or "+" in name:
            raise LogError(f"note key name {name!r} must be non-empty, without spaces or '+'")
        self.name = name
        self._key = key
        self.public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def verifier_key(self) -> str:
        """The public ``name+keyid+key`` string auditors configure."""
        raw = base64.b64encode(ED25519_ALGORITHM + self.public).decode()
        return f"{self.name}+{_key_id(self.name, self.public).hex()}+{raw}"

    def signature_line(self, text: str) -> str:
        signature = self._key.sign(text.encode())
        blob = base64.b64encode(_key_id(self.name, self.public) + signature).decode()
        return f"{_DASH} {self.name} {blob}\n"

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier_key!r})"


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    key_id: bytes
    key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        try:
            name, key_hex, raw_b64 = vkey.strip().split("+", 2)  # base64 may hold "+"
            raw = base64.b64decode(raw_b64, validate=True)
            key_id = bytes.fromhex(key_hex)
        except ValueError:
            raise LogError(f"not a note verifier key: {vkey!r}") from None
        if raw[:1] != ED25519_ALGORITHM or len(raw) != 33 or _key_id(name, raw[1:]) != key_id:
            raise LogError(f"not an Ed25519 note verifier key (or a wrong key id): {vkey!r}")
        return cls(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    if not text.endswith("\n"):
        raise LogError("a note's text ends with a newline")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def add_signatures(note: str, signers: Sequence[NoteSigner]) -> str:
    """Co-sign an existing note (a witness adds its line)."""
    text, _ = _split_note(note)
    return note + "".join(s.signature_line(text) for s in signers)


def _split_note(note: str) -> tuple[str, list[str]]:
    text, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise LogError("a signed note is text, a blank line, then signature lines")
    return text + "\n", signatures[:-1].split("\n")


def open_note(note: str, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[str]]:
    """The note's text and the names of the given verifiers that signed it; raises
    `LogError` if a signature line by a known key is wrong, or none is known."""
    text, lines = _split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    signed_by: list[str] = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise LogError(f"malformed signature line {line[:40]!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise LogError("a signature is not base64") from None
        verifier = known.get((parts[1], blob[:4]))
        if verifier is None:
            continue  # another party's signature: not ours to judge
        try:
            verifier.key.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise LogError(f"the signature by {verifier.name} does not match the note") from None
        signed_by.append(verifier.name)
    if not signed_by:
        raise LogError("the note carries no signature by a trusted key")
    return text, signed_by
