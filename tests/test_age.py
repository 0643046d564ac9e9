"""Our age v1 implementation against the real `age` command, both ways, and its failure
modes: wrong key, altered header or payload, a file cut short by a crash."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.age import CHUNK, SEALED_CHUNK, AgeReader, AgeWriter, decrypt, encrypt
from recordings.errors import AgeError, NoMatchingIdentity, TruncatedFile
from recordings.keys import Identity, write_identity_file

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 12345]


def age_tool() -> str:
    found = shutil.which("age")
    assert found, "the age command is missing: `make test` installs Debian's age package"
    return found


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def identity_file(tmp_path: Path, identity: Identity) -> Path:
    path = tmp_path / "identity.txt"
    write_identity_file(path, identity)
    return path


@pytest.mark.parametrize("size", SIZES)
def test_the_age_command_decrypts_what_we_encrypt(
    size: int, identity: Identity, identity_file: Path, tmp_path: Path
) -> None:
    data = os.urandom(size)
    sealed = tmp_path / "file.age"
    sealed.write_bytes(encrypt(data, [identity.recipient]))
    done = subprocess.run(
        [age_tool(), "-d", "-i", str(identity_file), str(sealed)], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_what_the_age_command_encrypts(size: int, identity: Identity) -> None:
    data = os.urandom(size)
    done = subprocess.run(
        [age_tool(), "-r", str(identity.recipient)], input=data, capture_output=True, check=True
    )
    assert decrypt(done.stdout, [identity]) == data


def test_several_recipients_each_open_the_file(
    identity_file: Path, tmp_path: Path, identity: Identity
) -> None:
    others = [Identity.generate() for _ in range(2)]
    sealed = encrypt(b"for three holders", [o.recipient for o in others] + [identity.recipient])
    for holder in [*others, identity]:
        assert decrypt(sealed, [holder]) == b"for three holders"
    path = tmp_path / "f.age"
    path.write_bytes(sealed)
    done = subprocess.run(
        [age_tool(), "-d", "-i", str(identity_file), str(path)], capture_output=True, check=True
    )
    assert done.stdout == b"for three holders"


def test_a_stranger_cannot_open_it(identity: Identity) -> None:
    with pytest.raises(NoMatchingIdentity):
        decrypt(encrypt(b"secret", [identity.recipient]), [Identity.generate()])


def test_an_altered_header_is_detected(identity: Identity) -> None:
    sealed = bytearray(encrypt(b"secret", [identity.recipient]))
    sealed[sealed.index(b"---") - 2] ^= 0x01  # inside the stanza body
    with pytest.raises(AgeError):
        decrypt(bytes(sealed), [identity])


def test_an_altered_payload_names_the_chunk(identity: Identity) -> None:
    data = os.urandom(3 * CHUNK + 10)
    sealed = bytearray(encrypt(data, [identity.recipient]))
    payload_start = len(sealed) - (3 * SEALED_CHUNK + 10 + 16)
    sealed[payload_start + 2 * SEALED_CHUNK + 100] ^= 0x80  # inside chunk 2 of 4
    reader = AgeReader(io.BytesIO(bytes(sealed)), [identity])
    assert reader.chunk(0) == data[:CHUNK]
    with pytest.raises(AgeError, match="chunk 2 fails authentication"):
        reader.chunk(2)


def test_chunks_cannot_be_reordered(identity: Identity) -> None:
    sealed = encrypt(os.urandom(3 * CHUNK + 10), [identity.recipient])
    start = len(sealed) - (3 * SEALED_CHUNK + 10 + 16)
    one, two = (sealed[start + i * SEALED_CHUNK : start + (i + 1) * SEALED_CHUNK] for i in (0, 1))
    swapped = sealed[:start] + two + one + sealed[start + 2 * SEALED_CHUNK :]
    with pytest.raises(AgeError):
        decrypt(swapped, [identity])


def test_random_access_reads_only_what_is_asked(identity: Identity) -> None:
    data = os.urandom(5 * CHUNK + 99)
    reader = AgeReader(io.BytesIO(encrypt(data, [identity.recipient])), [identity])
    assert reader.chunks == 6
    for offset, length in (
        (0, 10),
        (CHUNK - 5, 10),
        (3 * CHUNK + 7, CHUNK * 2),
        (len(data) - 3, 50),
    ):
        assert reader.read_range(offset, length) == data[offset : offset + length]


def test_a_file_cut_short_by_a_crash_keeps_every_complete_chunk(
    identity: Identity, identity_file: Path, tmp_path: Path
) -> None:
    sink = io.BytesIO()
    writer = AgeWriter(sink, [identity.recipient])
    data = os.urandom(4 * CHUNK + 500)
    writer.write(data)  # never closed: the process died here
    assert writer.sealed_chunks == 4
    reader = AgeReader(io.BytesIO(sink.getvalue()), [identity])
    with pytest.raises(TruncatedFile) as caught:
        list(reader)
    assert caught.value.complete_chunks == 4
    assert b"".join(reader.recoverable()) == data[: 4 * CHUNK]
    # a partial chunk at the end (the write was cut mid-chunk) is dropped too
    cut = sink.getvalue()[:-1000]
    partial = AgeReader(io.BytesIO(cut), [identity])
    assert b"".join(partial.recoverable()) == data[: 3 * CHUNK]
    # and the standard tool refuses the truncated file rather than pretending
    path = tmp_path / "cut.age"
    path.write_bytes(sink.getvalue())
    done = subprocess.run(
        [age_tool(), "-d", "-i", str(identity_file), str(path)], capture_output=True, check=False
    )
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"not age at all", "not an age v1 file"),
        (lambda b: b.replace(b"-> X25519 ", b"-> X25519 ==", 1), "base64"),
        (lambda b: b[: b.index(b"---") + 3], "MAC line is cut off"),
    ],
)
def test_malformed_files_get_a_clear_error(
    identity: Identity, mangle: object, message: str
) -> None:
    sealed = encrypt(b"x", [identity.recipient])
    with pytest.raises(AgeError, match=message):
        decrypt(mangle(sealed), [identity])  # type: ignore[operator]


@settings(max_examples=40, deadline=None)
@given(pieces=st.lists(st.binary(max_size=3 * CHUNK // 2), max_size=5))
def test_any_way_of_writing_round_trips(pieces: list[bytes]) -> None:
    identity = Identity.generate()
    sink = io.BytesIO()
    writer = AgeWriter(sink, [identity.recipient])
    for piece in pieces:
        writer.write(piece)
    writer.close()
    writer.close()
    assert decrypt(sink.getvalue(), [identity]) == b"".join(pieces)


def test_a_low_order_share_is_refused_with_a_clear_error(identity: Identity) -> None:
    sealed = encrypt(b"x", [identity.recipient])
    line_start = sealed.index(b"-> X25519 ") + len(b"-> X25519 ")
    mangled = sealed[:line_start] + b"A" * 43 + sealed[line_start + 43 :]
    with pytest.raises(AgeError, match="low-order share"):
        decrypt(mangled, [identity])
