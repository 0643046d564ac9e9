"""Files the server writes under its data directory are its user's alone: directories it
makes are 0700 and files it creates 0600, whatever the umask (recordings hold hashes of
people's media, decisions and stills; nobody else on the machine needs to list them).

Directories that exist already are left as they are: an operator may have chosen them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """``path`` and any missing parents, each made 0700; returns ``path``."""
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made meanwhile by someone else: theirs, not ours to change
        os.chmod(directory, DIRECTORY_MODE)  # the umask may have taken bits off
    return path


def private_opener(path: str, flags: int) -> int:
    """For ``open(..., opener=private_opener)``: a file it creates is 0600."""
    return os.open(path, flags, FILE_MODE)


def _written_beside(path: Path, data: bytes) -> str:
    """A private (0600, as mkstemp makes it) temporary file beside ``path`` holding
    ``data``, fsynced; its name."""
    descriptor, temporary = tempfile.mkstemp(
        prefix=f"{path.name}.", suffix=".partial", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return temporary


def replace_privately(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole or not at all, and durably: written to a private
    temporary file beside it, fsynced, renamed over ``path``, and the rename fsynced."""
    temporary = _written_beside(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def create_once(path: Path, data: bytes) -> bytes:
    """Put ``data`` at ``path`` unless something is there already, and return what
    ``path`` holds: ours, or what another process put there first. Whole or not at all:
    written to a private temporary file, fsynced, then linked into place (a link never
    replaces), so nobody ever reads a half-written file."""
    private_directory(path.parent)
    temporary = _written_beside(path, data)
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return data
