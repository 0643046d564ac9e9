"""Crypto-shredding a session record at retention expiry: its media stay on disk, listed
and hashed, but no identity can ever open them again, and its log says so."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .age import decode_b64, encode_b64
from .session_record import SessionLog


def _fresh(text: bytes) -> bytes:
    """Random bytes in canonical base64 of the same length as ``text``."""
    return encode_b64(os.urandom(len(decode_b64(text))))


def _random_stanzas(stanzas: bytes) -> bytes:
    """Every share and wrapped key replaced by random bytes of the same encoded length,
    so the header keeps its layout and parses, but no identity can ever open it."""
    out: list[bytes] = []
    body: list[bytes] = []

    def flush() -> None:
        if body:
            fresh = _fresh(b"".join(body))
            widths = [len(line) for line in body]
            for width in widths:
                out.append(fresh[:width])
                fresh = fresh[width:]
            body.clear()

    for line in stanzas.split(b"\n"):
        if line.startswith(b"-> "):
            flush()
            kind, *args = line[3:].split(b" ")
            out.append(b" ".join([b"->", kind, *(_fresh(a) for a in args)]))
        else:
            body.append(line)
    flush()
    return b"\n".join(out)


def shred(directory: Path, log: SessionLog, reason: str) -> list[str]:
    """Crypto-shredding at retention expiry: overwrite, in place, the wrapped file keys in
    every segment's age header, so no identity can ever open them again; then log which
    files were shredded and their new hashes, and sign a checkpoint."""
    shredded = []
    for path in sorted(directory.glob("*.age")):
        with path.open("r+b") as handle:
            head = handle.read(64 * 1024)
            end = head.find(b"\n---")
            if not head.startswith(b"age-encryption.org/v1\n") or end < 0:
                continue
            stanzas = _random_stanzas(head[len(b"age-encryption.org/v1\n") : end])
            handle.seek(len(b"age-encryption.org/v1\n"))
            handle.write(stanzas)
            handle.flush()
            os.fsync(handle.fileno())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        log.append("shred", file=path.name, sha256=digest, reason=reason)
        shredded.append(path.name)
    log.checkpoint()
    return shredded
