"""Signed notes and checkpoints against Go's reference implementation, both ways: Go's
golang.org/x/mod/sumdb/note and sumdb/tlog (tests/go/notecheck, built from Debian's
packages in GOPATH mode) open what we write, we open what Go signs, and a note one of the
two refuses the other refuses too."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from recordings.session_record import CHECKPOINTS, EVENTS, SessionLog
from recordings.tlog import (
    Checkpoint,
    LogError,
    MerkleTree,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    open_note,
    sign_note,
)
from recordings.witness import signer_key

NOTECHECK_SOURCE = Path(__file__).parent / "go" / "notecheck"
GOPATH = Path("/usr/share/gocode")  # where Debian's golang-*-dev packages put sources
EM = "\u2014"

Notecheck = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def notecheck_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/note").is_dir():
        pytest.fail(
            "Go and golang.org/x/mod are needed: `make system-tools` installs the Debian "
            "packages golang-go and golang-golang-x-mod-dev"
        )
    out = tmp_path_factory.mktemp("notecheck")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(out),
        "GOPATH": str(GOPATH),
        "GO111MODULE": "off",  # GOPATH mode: the Debian sources, never a module download
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOCACHE": str(out / "cache"),
    }
    binary = out / "notecheck"
    subprocess.run(
        [go, "build", "-o", str(binary), "main.go"],
        cwd=NOTECHECK_SOURCE,
        env=env,
        check=True,
        timeout=300,
    )
    return binary


@pytest.fixture
def notecheck(notecheck_binary: Path) -> Notecheck:
    def run(*args: str, stdin: str | bytes = "") -> subprocess.CompletedProcess[str]:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(
            [str(notecheck_binary), *args], input=data, capture_output=True, timeout=30
        )
        assert done.returncode in (0, 1), done.stderr.decode()
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    return run


def go_open_all(notecheck: Notecheck, notes: list[bytes], vkeys: list[str]) -> list[str]:
    """Go's verdict on each note: 'OK <signers>' or 'FAIL <reason>'."""
    batch = json.dumps([base64.b64encode(n).decode() for n in notes])
    done = notecheck("open-batch", *vkeys, stdin=batch)
    results: list[str] = json.loads(done.stdout)
    return results


def our_verdict(note: bytes, verifiers: list[NoteVerifier]) -> str:
    try:
        _, signed_by = open_note(note, verifiers)
    except LogError as exc:
        return f"FAIL {exc}"
    return "OK " + " ".join(signed_by)


def seeded_signer(name: str, seed: int) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


SERVER = seeded_signer("nexus.example/log", 1)
CBSA = seeded_signer("cbsa.example/witness", 2)
CBP_KEY = Ed25519PrivateKey.from_private_bytes(bytes([3]) * 32)
CBP_NAME = "cbp.example/witness"


# --- c2sp.org/tlog-cosignature v1, written out from the spec so Go's own verifier is
# checked against the text of the spec and not against code of ours -------------------


def cosignature_vkey(name: str, key: Ed25519PrivateKey) -> str:
    raw = b"\x04" + key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(raw).decode()}"


def cosignature_line(name: str, key: Ed25519PrivateKey, body: str, timestamp: int) -> str:
    key_id = bytes.fromhex(cosignature_vkey(name, key).split("+")[1])
    signed = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
    blob = key_id + struct.pack(">Q", timestamp) + key.sign(signed)
    return f"{EM} {name} {base64.b64encode(blob).decode()}\n"


# --- Go reads ours ----------------------------------------------------------------------


def test_go_opens_every_checkpoint_of_a_session_log_and_recomputes_its_root(
    tmp_path: Path, notecheck: Notecheck
) -> None:
    log = SessionLog(tmp_path, "nexus.example/interview/iv_1", SERVER)
    for i in range(37):
        log.append("note", text=f"event {i}\n\nwith a blank line")
        if i in (0, 1, 6, 7, 15, 31):
            log.checkpoint()
    log.close()
    leaves = tmp_path / "leaves"
    leaves.write_text(
        "".join(
            base64.b64encode(line).decode() + "\n"
            for line in (tmp_path / EVENTS).read_bytes().splitlines()
        )
    )
    notes = sorted((tmp_path / CHECKPOINTS).glob("*.note"))
    assert len(notes) == 7
    for path in notes:
        cosigned = add_signatures(path.read_text("utf-8"), [CBSA])
        done = notecheck(
            "checkpoint", "-leaves", str(leaves), SERVER.verifier_key, CBSA.verifier_key,
            stdin=cosigned,
        )  # fmt: skip
        assert done.stdout == f"OK {SERVER.name} {CBSA.name}\n", path.name
    # Go's tree hash tells a checkpoint over other events from ours
    leaves.write_text(leaves.read_text().replace("A", "B", 1))
    done = notecheck(
        "checkpoint", "-leaves", str(leaves), SERVER.verifier_key, stdin=notes[-1].read_text()
    )
    assert done.returncode == 1
    assert "is not the tree hash" in done.stdout


def test_go_verifies_a_cosignature_v1_with_its_own_verifier_and_refuses_an_altered_one(
    notecheck: Notecheck,
) -> None:
    body = Checkpoint("nexus.example/interview/iv_2", 5, MerkleTree().root()).body()
    note = sign_note(body, [SERVER]) + cosignature_line(CBP_NAME, CBP_KEY, body, 1_700_000_000)
    vkey = cosignature_vkey(CBP_NAME, CBP_KEY)
    assert notecheck("open", vkey, stdin=note).stdout == f"OK {CBP_NAME}\n"
    assert notecheck("open", SERVER.verifier_key, vkey, stdin=note).stdout == (
        f"OK {SERVER.name} {CBP_NAME}\n"
    )
    # the timestamp is signed: a line claiming another time is refused
    sig = note.splitlines()[-1].split(" ")[-1]
    blob = bytearray(base64.b64decode(sig))
    blob[11] ^= 1
    moved = note.replace(sig, base64.b64encode(bytes(blob)).decode())
    assert notecheck("open", vkey, stdin=moved).stdout.startswith("FAIL invalid signature")
    # nor does a cosignature made for another checkpoint carry over
    other = Checkpoint("nexus.example/interview/iv_2", 6, MerkleTree().root()).body()
    swapped = sign_note(other, [SERVER]) + cosignature_line(CBP_NAME, CBP_KEY, body, 1)
    assert notecheck("open", vkey, stdin=swapped).stdout.startswith("FAIL invalid signature")
    # a plain Ed25519 signature by the same key is not a cosignature/v1
    plain = note + NoteSigner(CBP_NAME, CBP_KEY).signature_line(body)
    assert notecheck("open", vkey, stdin=plain).stdout == f"OK {CBP_NAME}\n"  # other key id
    assert notecheck(
        "open", vkey, stdin=sign_note(body, [NoteSigner(CBP_NAME, CBP_KEY)])
    ).stdout == ("FAIL note has no verifiable signatures\n")


# --- we read Go's -----------------------------------------------------------------------


def test_we_open_notes_go_signs_with_keys_go_generates(notecheck: Notecheck) -> None:
    keys = [notecheck("keygen", name).stdout.split("\n")[:2] for name in ("a.example", "b.x/y")]
    text = "a text\n\nwith blank lines\n\nin it\n"
    note = notecheck("sign", *(skey for skey, _ in keys), stdin=text).stdout
    verifiers = [NoteVerifier.parse(vkey) for _, vkey in keys]
    assert open_note(note, verifiers) == (text, ["a.example", "b.x/y"])
    assert open_note(note, verifiers[1:]) == (text, ["b.x/y"])
    with pytest.raises(LogError, match="does not match"):
        open_note(note.replace("in it", "in is"), verifiers)


def test_go_signs_with_our_key_file_exactly_as_we_do(notecheck: Notecheck) -> None:
    key = Ed25519PrivateKey.generate()
    signer = NoteSigner("nexus.example/log", key)
    body = Checkpoint("nexus.example/interview/iv_3", 2, MerkleTree().root()).body()
    go_note = notecheck("sign", signer_key(signer, key).reveal(), stdin=body).stdout
    assert go_note == sign_note(body, [signer])
    assert open_note(go_note, [NoteVerifier.parse(signer.verifier_key)])[0] == body


# --- both refuse the same notes -----------------------------------------------------------

BODY = Checkpoint("nexus.example/interview/iv_4", 9, hashlib.sha256(b"x").digest()).body()
GOOD = sign_note(BODY, [SERVER])
OTHER = seeded_signer("other.example/key", 4)
TAB_BODY = BODY.replace("iv_4", "iv\t4")  # validly signed, but no note
SERVER_ID = NoteVerifier.parse(SERVER.verifier_key).key_id


def unknown_line(name: str, blob: bytes) -> str:
    return f"{EM} {name} {base64.b64encode(blob).decode()}\n"


MALFORMED: dict[str, bytes] = {
    "empty key name": GOOD.encode() + unknown_line("", bytes(68)).encode(),
    "space in key name": (GOOD + unknown_line("two\u00a0words", bytes(68))).encode(),
    "ideographic space in key name": (GOOD + unknown_line("a\u3000b", bytes(68))).encode(),
    "plus in key name": (GOOD + unknown_line("plus+sign", bytes(68))).encode(),
    "signature of 4 bytes": (GOOD + unknown_line("k.example", bytes(4))).encode(),
    "empty signature": (GOOD + f"{EM} k.example \n").encode(),
    "no signature": (GOOD + f"{EM} k.example\n").encode(),
    "excess base64 padding": (GOOD + f"{EM} k.example AAAAAAAA==\n").encode(),
    "unpadded base64": (GOOD + f"{EM} k.example AAAAAAA\n").encode(),
    "url-safe base64": (GOOD + f"{EM} k.example AAAA-_AA\n").encode(),
    "no final newline": GOOD[:-1].encode(),
    "blank line after signatures": (GOOD + "\n").encode(),
    "no blank line": GOOD.replace("\n\n", "\n").encode(),
    "hyphens for the em dash": GOOD.replace(EM, "--").encode(),
    "tab in text": (TAB_BODY + "\n" + SERVER.signature_line(TAB_BODY)).encode(),
    "carriage return": GOOD.replace("\n", "\r\n").encode(),
    "invalid UTF-8": GOOD.encode().replace(b"iv_4", b"iv\xff4"),
    "101 signatures": (
        GOOD + "".join(unknown_line(f"w{i}.example", bytes(5 + i)) for i in range(100))
    ).encode(),
    "signed by unknown keys only": sign_note(BODY, [OTHER]).encode(),
    "altered text": GOOD.replace("iv_4", "iv_5").encode(),
    "known key, wrong signature": (
        BODY + "\n" + unknown_line(SERVER.name, SERVER_ID + bytes(64))
    ).encode(),
}

WELL_FORMED: dict[str, bytes] = {
    "plain": GOOD.encode(),
    "unknown keys beside": add_signatures(GOOD, [OTHER, seeded_signer(SERVER.name, 5)]).encode(),
    "unknown short signature": (GOOD + unknown_line("k.example", bytes(5))).encode(),
    "blank lines in the text": sign_note("a\n\nb\n\n\nc\n", [SERVER]).encode(),
    "same line twice": (GOOD + SERVER.signature_line(BODY)).encode(),
    "100 signatures": (
        GOOD + "".join(unknown_line(f"w{i}.example", bytes(5 + i)) for i in range(99))
    ).encode(),
    "non-canonical trailing base64 bits": (GOOD + f"{EM} k.example AAAAAAB=\n").encode(),
    "next line and no-break space in the text": sign_note("\u0085\u00a0\n", [SERVER]).encode(),
}


def test_go_and_we_refuse_the_same_malformed_notes_and_accept_the_same_good_ones(
    notecheck: Notecheck,
) -> None:
    verifiers = [NoteVerifier.parse(SERVER.verifier_key)]
    cases = {**MALFORMED, **WELL_FORMED}
    verdicts = go_open_all(notecheck, list(cases.values()), [SERVER.verifier_key])
    go = dict(zip(cases, verdicts, strict=True))
    ours = {name: our_verdict(note, verifiers) for name, note in cases.items()}
    for name in MALFORMED:
        assert go[name].startswith("FAIL"), (name, go[name])
        assert ours[name].startswith("FAIL"), (name, ours[name])
    for name in WELL_FORMED:
        assert go[name] == ours[name] == f"OK {SERVER.name}", (name, go[name], ours[name])


# Characters that matter to the grammar, and ones that differ between Go's and Python's
# ideas of space, control and text.
PALETTE = [
    "\n", "\n\n", " ", "+", "=", "/", "A", EM, EM + " ", "\t", "\r", "\x1f", "\x7f",
    "\u0085", "\u00a0", "\u1680", "\u180e", "\u200b", "\u2028", "\u3000", "\ufeff", "\ufffd",
]  # fmt: skip


def mutate(note: bytes, rng: random.Random) -> bytes:
    """One or two edits, mostly in the signature block (an edit of the text only ever
    breaks the signature)."""
    out = note
    for _ in range(rng.randint(1, 2)):
        block = max(out.rfind(b"\n\n"), 0)
        at = rng.randrange(block if rng.random() < 0.8 else 0, len(out) + 1)
        piece = rng.choice(PALETTE).encode() if rng.random() < 0.9 else b"\xff"
        match rng.randrange(3):
            case 0:
                out = out[:at] + piece + out[at:]
            case 1:
                out = out[:at] + out[at + rng.randint(1, 3) :]
            case _:
                out = out[:at] + piece + out[at + 1 :]
    return out


def test_go_and_we_give_every_mutated_note_the_same_verdict(notecheck: Notecheck) -> None:
    rng = random.Random(20240601)
    witness = seeded_signer("cbsa.example/witness", 6)
    unknown = [OTHER, seeded_signer("w.example/a", 7), seeded_signer("x", 8)]
    bases = [
        add_signatures(GOOD, [unknown[0], witness, *unknown[1:]]).encode(),
        sign_note("text\n\nwith a blank line\n", [*unknown, SERVER]).encode(),
    ]
    notes = [mutate(rng.choice(bases), rng) for _ in range(1500)]
    vkeys = [SERVER.verifier_key, witness.verifier_key]
    verifiers = [NoteVerifier.parse(k) for k in vkeys]
    go = go_open_all(notecheck, notes, vkeys)
    ok = 0
    for note, go_verdict in zip(notes, go, strict=True):
        ours = our_verdict(note, verifiers)
        assert ours.split(" ")[0] == go_verdict.split(" ")[0], (note, ours, go_verdict)
        if ours.startswith("OK"):
            assert ours == go_verdict, note
            ok += 1
    assert 20 < ok < len(notes) - 200  # both kinds of verdict were tried many times
