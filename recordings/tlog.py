"""A transparency log for session events: the RFC 9162 Merkle tree (SHA-256 with 0x00
leaf and 0x01 node prefixes), inclusion and consistency proofs, and checkpoints in the
C2SP tlog-checkpoint body signed as a C2SP signed note with Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
import re
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

# Standard base64 (RFC 4648 section 4) with its padding and nothing else, as Go's
# base64.StdEncoding reads it: Python's decoder also takes excess padding ("AAAA==").
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control but newline
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")  # ASCII: str.isdigit takes other digits
MAX_SIGNATURES = 100  # Go's note.Open refuses more; C2SP asks verifiers to take 16


def strict_b64decode(value: str) -> bytes | None:
    """The bytes of padded standard base64 (whole 4-character groups, "=" only at the
    end), or None."""
    if not _BASE64.fullmatch(value):
        return None
    return base64.b64decode(value)


@dataclass(frozen=True)
class Checkpoint:
    """c2sp.org/tlog-checkpoint: origin, tree size, root hash (extension lines, which
    the spec allows, are checked and then ignored: nothing here writes any)."""

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
        if not _SIZE.fullmatch(size) or int(size) >= 1 << 63:
            raise LogError(f"checkpoint tree size {size!r} is not a decimal number")
        digest = strict_b64decode(root)
        if digest is None:
            raise LogError("checkpoint root hash is not base64")
        if len(digest) != 32:
            raise LogError("checkpoint root hash is not 32 bytes")
        if "" in lines[3:-1]:
            raise LogError("a checkpoint's extension lines may not be empty")
        return cls(origin, int(size), digest)


def valid_key_name(name: str) -> bool:
    """c2sp.org/signed-note: non-empty, no Unicode space, no plus sign."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, algorithm: bytes, public: bytes) -> bytes:
    """c2sp.org/signed-note's key id: the first 4 bytes of SHA-256 over the key's name, a
    newline, its signature type byte and its public key."""
    return hashlib.sha256(name.encode() + b"\n" + algorithm + public).digest()[:4]


class NoteSigner:
    """An Ed25519 signer for c2sp.org/signed-note; its repr never shows the key."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        if not valid_key_name(name):
            raise LogError(f"note key name {name!r} must be non-empty, without spaces or '+'")
        self.name = name
        self._key = key
        self.public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, ED25519_ALGORITHM, self.public)

    @property
    def verifier_key(self) -> str:
        """The public ``name+keyid+key`` string auditors configure."""
        raw = base64.b64encode(ED25519_ALGORITHM + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def signature_line(self, text: str) -> str:
        signature = self._key.sign(text.encode())
        blob = base64.b64encode(self.key_id + signature).decode()
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
        name, _, rest = vkey.strip().partition("+")
        key_hex, _, raw_b64 = rest.partition("+")  # the base64 may hold "+"
        raw = strict_b64decode(raw_b64)
        if not valid_key_name(name) or not re.fullmatch("[0-9a-fA-F]{8}", key_hex) or not raw:
            raise LogError(f"not a note verifier key: {vkey!r}")
        claimed = bytes.fromhex(key_hex)
        if (
            raw[:1] != ED25519_ALGORITHM
            or len(raw) != 33
            or key_id(name, ED25519_ALGORITHM, raw[1:]) != claimed
        ):
            raise LogError(f"not an Ed25519 note verifier key (or a wrong key id): {vkey!r}")
        return cls(name, claimed, Ed25519PublicKey.from_public_bytes(raw[1:]))


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: the key's name and id, and the signature proper."""

    name: str
    key_id: bytes
    signature: bytes
    line: str  # as written, with its newline


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note by the c2sp.org/signed-note grammar, as Go's ``note.Open``
    does, without checking any signature: the text (up to the LAST blank line, with its
    final newline) and every signature line. Raises `LogError` on anything malformed,
    whoever's key signed it: a note standard tooling refuses must not open here."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise LogError("a signed note is not valid UTF-8") from None
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise LogError("a signed note is not valid UTF-8") from None
    if _CONTROL.search(note):
        raise LogError("a signed note holds a control character other than newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise LogError("a signed note is text, a blank line, then signature lines")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise LogError("a signed note ends with a signature line and its newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise LogError(f"a signed note carries more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_DASH + " "):
            raise LogError(f"signature line {number} does not start with an em dash and a space")
        name, _, encoded = line[2:].partition(" ")
        if not valid_key_name(name):
            raise LogError(f"signature line {number} has no valid key name: {name!r}")
        blob = strict_b64decode(encoded)
        if blob is None:
            raise LogError(f"the signature on line {number} (by {name}) is not base64")
        if len(blob) < 5:
            raise LogError(f"the signature on line {number} (by {name}) holds no signature")
        signatures.append(NoteSignature(name, blob[:4], blob[4:], line + "\n"))
    return text, signatures


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    if not text.endswith("\n"):
        raise LogError("a note's text ends with a newline")
    if _CONTROL.search(text):
        raise LogError("a note's text may hold no control character other than newline")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def add_signatures(note: str | bytes, signers: Sequence[NoteSigner]) -> str:
    """Co-sign an existing note (a witness adds its line). A signer's earlier line is
    replaced, not repeated, as Go's ``note.Sign`` does."""
    text, signatures = parse_note(note)
    new = {(s.name, s.key_id) for s in signers}
    kept = "".join(sig.line for sig in signatures if (sig.name, sig.key_id) not in new)
    return text + "\n" + kept + "".join(s.signature_line(text) for s in signers)


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[str]]:
    """The note's text and the names of the given verifiers that signed it (each once).
    Raises `LogError` if the note is malformed (`parse_note`), if any signature by a
    known key is wrong (C2SP: every one MUST be verified, so a bad repeat is refused
    too), or if no known key signed it. Signatures by other keys, even ones sharing a
    known key's name or id but not both, are someone else's and ignored."""
    text, signatures = parse_note(note)
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for given in verifiers:
        same = known.setdefault((given.name, given.key_id), given)
        if _raw(same.key) != _raw(given.key):
            raise LogError(f"two verifier keys share the name and id of {given.name}")
    message = text.encode()
    signed_by: list[str] = []
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        try:
            verifier.key.verify(signature.signature, message)
        except InvalidSignature:
            raise LogError(f"the signature by {verifier.name} does not match the note") from None
        if verifier.name not in signed_by:
            signed_by.append(verifier.name)
    if not signed_by:
        raise LogError("the note carries no signature by a trusted key")
    return text, signed_by


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
