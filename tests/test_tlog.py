"""The RFC 9162 tree and proofs against the definition itself, and C2SP signed notes
against the Go reference implementation's published vector."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from recordings.tlog import (
    EMPTY_ROOT,
    Checkpoint,
    LogError,
    MerkleTree,
    NoteSigner,
    NoteVerifier,
    RunningRoot,
    add_signatures,
    leaf_hash,
    open_note,
    root_of,
    sign_note,
    verify_consistency,
    verify_inclusion,
)

# golang.org/x/mod/sumdb/note: the package documentation's example
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = GO_TEXT + (
    "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
    "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 2.1.1 defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])
    ).digest()


def tree_of(n: int) -> tuple[MerkleTree, list[bytes]]:
    data = [f"event {i}".encode() for i in range(n)]
    tree = MerkleTree()
    for item in data:
        tree.append(item)
    return tree, data


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 100])
def test_roots_match_the_rfc_definition(n: int) -> None:
    tree, data = tree_of(n)
    assert tree.root() == reference_root(data)
    assert root_of([leaf_hash(d) for d in data]) == reference_root(data)
    assert MerkleTree().root() == EMPTY_ROOT


def test_every_inclusion_proof_verifies_and_no_altered_one_does() -> None:
    tree, data = tree_of(40)
    for size in range(1, 41):
        root = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            verify_inclusion(leaf_hash(data[index]), index, size, proof, root)
            if proof:
                bad = [*proof[:-1], bytes(32)]
                with pytest.raises(LogError):
                    verify_inclusion(leaf_hash(data[index]), index, size, bad, root)
            with pytest.raises(LogError):
                verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
            if size > 1:
                with pytest.raises(LogError):
                    verify_inclusion(leaf_hash(data[index]), (index + 1) % size, size, proof, root)


def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not() -> None:
    tree, data = tree_of(40)
    forked, _ = tree_of(0)
    for i, item in enumerate(data):
        forked.append(b"rewritten" if i == 3 else item)
    for new in range(1, 41):
        for old in range(1, new + 1):
            proof = tree.consistency_proof(old, new)
            verify_consistency(old, new, tree.root(old), tree.root(new), proof)
            if old > 3 and old < new:
                with pytest.raises(LogError):
                    verify_consistency(old, new, forked.root(old), tree.root(new), proof)


@given(st.integers(1, 300), st.data())
def test_proofs_hold_for_any_sizes(new: int, data: st.DataObject) -> None:
    tree, items = tree_of(new)
    old = data.draw(st.integers(1, new))
    index = data.draw(st.integers(0, new - 1))
    verify_consistency(old, new, tree.root(old), tree.root(), tree.consistency_proof(old, new))
    verify_inclusion(
        leaf_hash(items[index]), index, new, tree.inclusion_proof(index, new), tree.root()
    )


def test_checkpoint_body_round_trips() -> None:
    checkpoint = Checkpoint("nexus.example/interview/iv_1", 12, hashlib.sha256(b"x").digest())
    assert checkpoint.body().count("\n") == 3
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    for bad in ("", "origin\n01\nAAAA\n", "origin\n5\nnot base64!\n", "origin\n5\nAAAA\n"):
        with pytest.raises(LogError):
            Checkpoint.parse(bad)


def test_the_go_reference_note_opens_and_we_sign_it_identically() -> None:
    verifier = NoteVerifier.parse(GO_VKEY)
    assert open_note(GO_NOTE, [verifier]) == (GO_TEXT, ["PeterNeumann"])
    seed = base64.b64decode(GO_SKEY_SEED)[1:]
    signer = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.verifier_key == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE


def test_altered_notes_and_unknown_keys_are_refused() -> None:
    verifier = NoteVerifier.parse(GO_VKEY)
    with pytest.raises(LogError, match="does not match"):
        open_note(GO_NOTE.replace("cryptography", "cryptographi"), [verifier])
    other = NoteSigner("Other", Ed25519PrivateKey.generate())
    with pytest.raises(LogError, match="no signature by a trusted key"):
        open_note(GO_NOTE, [NoteVerifier.parse(other.verifier_key)])
    with pytest.raises(LogError):
        NoteVerifier.parse(GO_VKEY.replace("c74f20a3", "c74f20a4"))


def test_a_witness_cosigns_a_checkpoint() -> None:
    server = NoteSigner("nexus-server", Ed25519PrivateKey.generate())
    witness = NoteSigner("cbsa-witness", Ed25519PrivateKey.generate())
    body = Checkpoint("nexus/iv_1", 3, MerkleTree([leaf_hash(b"a")]).root()).body()
    note = add_signatures(sign_note(body, [server]), [witness])
    verifiers = [NoteVerifier.parse(s.verifier_key) for s in (server, witness)]
    assert open_note(note, verifiers) == (body, ["nexus-server", "cbsa-witness"])
    assert "PRIVATE" not in repr(server)


def test_the_running_root_matches_the_tree_at_every_size() -> None:
    tree, data = tree_of(70)
    running = RunningRoot()
    assert running.root() == EMPTY_ROOT
    for size, item in enumerate(data, start=1):
        running.append(leaf_hash(item))
        assert running.root() == tree.root(size)


def test_verifier_keys_whose_base64_holds_a_plus_sign_parse() -> None:
    # transparency-dev/formats note tests: a key whose base64 contains '+'
    key = NoteVerifier.parse("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert key.name == "TEST"


# --- strict c2sp.org/signed-note parsing --------------------------------------------

SERVER = NoteSigner("nexus.example/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
SERVER_KEY = NoteVerifier.parse(SERVER.verifier_key)
BODY = Checkpoint("nexus.example/interview/iv_1", 3, hashlib.sha256(b"x").digest()).body()


def line(name: str, blob: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


@pytest.mark.parametrize(
    "name",
    ["", "two\u00a0words", "ideographic\u3000space", "plus+sign", "tab\there"],
    ids=["empty", "no-break-space", "ideographic-space", "plus", "tab"],
)
def test_a_signature_line_with_a_malformed_key_name_is_refused(name: str) -> None:
    # the malformed line is another party's, beside a valid one by the trusted key
    note = sign_note(BODY, [SERVER]) + line(name, b"\x01\x02\x03\x04" + bytes(64))
    with pytest.raises(LogError):
        open_note(note, [SERVER_KEY])


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01\x02\x03\x04"], ids=["0", "1", "4"])
def test_a_signature_too_short_to_hold_a_key_id_and_a_signature_is_refused(blob: bytes) -> None:
    note = sign_note(BODY, [SERVER]) + line("other.example/key", blob)
    with pytest.raises(LogError):
        open_note(note, [SERVER_KEY])


@pytest.mark.parametrize(
    "encoded",
    ["AQIDBAU=AQ==", "AQIDBAUG==", "AQIDBAU", "AQIDBA-_", "AQIDBAUG\u00a0"],
    ids=["padding-inside", "excess-padding", "no-padding", "url-alphabet", "trailing-space"],
)
def test_a_signature_that_is_not_standard_padded_base64_is_refused(encoded: str) -> None:
    note = sign_note(BODY, [SERVER]) + f"\u2014 other.example/key {encoded}\n"
    with pytest.raises(LogError):
        open_note(note, [SERVER_KEY])


def test_a_note_splits_at_its_last_blank_line() -> None:
    text = "first paragraph\n\nsecond paragraph\n"
    assert open_note(sign_note(text, [SERVER]), [SERVER_KEY]) == (text, [SERVER.name])
    assert add_signatures(sign_note(text, [SERVER]), []) == sign_note(text, [SERVER])


@pytest.mark.parametrize(
    "cut",
    [
        lambda note: note[:-1],  # no final newline
        lambda note: note + "\n",  # a blank line after the signatures
        lambda note: note + "trailing",  # text after the last signature line
        lambda note: note.replace("\n\n", "\n"),  # no blank line at all
        lambda note: note.replace("\u2014 ", "-- "),  # not an em dash
        lambda note: note.replace("\u2014 ", "\u2014"),  # no space after the dash
    ],
    ids=["no-newline", "blank-after", "trailing-text", "no-blank", "dash", "no-space"],
)
def test_a_note_not_shaped_as_text_blank_line_signatures_is_refused(cut: object) -> None:
    assert callable(cut)
    with pytest.raises(LogError):
        open_note(cut(sign_note(BODY, [SERVER])), [SERVER_KEY])


@pytest.mark.parametrize("control", ["\t", "\r", "\x00", "\x1b"], ids=["tab", "cr", "nul", "esc"])
def test_a_note_holding_a_control_character_is_refused_even_when_its_signature_holds(
    control: str,
) -> None:
    text = f"nexus.example/interview/iv_1{control}\n3\n"
    note = text + "\n" + SERVER.signature_line(text)  # validly signed, but not a note
    with pytest.raises(LogError, match="control character"):
        open_note(note, [SERVER_KEY])
    with pytest.raises(LogError):
        sign_note(text, [SERVER])


def test_invalid_utf8_is_refused() -> None:
    note = sign_note(BODY, [SERVER]).encode()
    assert open_note(note, [SERVER_KEY]) == (BODY, [SERVER.name])
    with pytest.raises(LogError, match="UTF-8"):
        open_note(note.replace(b"iv_1", b"iv_\xff"), [SERVER_KEY])


def test_unknown_keys_are_ignored_but_a_valid_known_signature_is_required() -> None:
    other = NoteSigner("other.example/key", Ed25519PrivateKey.generate())
    twin = NoteSigner(SERVER.name, Ed25519PrivateKey.generate())  # same name, other id
    note = add_signatures(sign_note(BODY, [SERVER]), [other, twin])
    assert open_note(note, [SERVER_KEY]) == (BODY, [SERVER.name])
    # a line with the trusted key's id under another name is another key's
    borrowed = line("borrowed.example/key", SERVER_KEY.key_id + bytes(64))
    assert open_note(note + borrowed, [SERVER_KEY]) == (BODY, [SERVER.name])
    with pytest.raises(LogError, match="no signature by a trusted key"):
        open_note(sign_note(BODY, [other, twin]), [SERVER_KEY])
    with pytest.raises(LogError, match="no signature by a trusted key"):
        open_note(note, [])


def test_a_key_that_signed_twice_counts_once_and_a_wrong_repeat_is_refused() -> None:
    note = sign_note(BODY, [SERVER])
    repeated = note + SERVER.signature_line(BODY)
    assert open_note(repeated, [SERVER_KEY]) == (BODY, [SERVER.name])
    wrong = note + line(SERVER.name, SERVER_KEY.key_id + bytes(64))
    with pytest.raises(LogError, match="does not match"):
        open_note(wrong, [SERVER_KEY])
    # co-signing again replaces the signer's line instead of repeating it
    assert add_signatures(note, [SERVER]) == note


def test_more_than_a_hundred_signatures_are_refused() -> None:
    others = "".join(line(f"w{i}.example", bytes(5 + i)) for i in range(99))
    assert open_note(sign_note(BODY, [SERVER]) + others, [SERVER_KEY])[1] == [SERVER.name]
    with pytest.raises(LogError, match="more than 100"):
        open_note(sign_note(BODY, [SERVER]) + others + line("w.example", bytes(5)), [SERVER_KEY])


def test_verifier_keys_are_read_as_strictly_as_go_reads_them() -> None:
    name, key_id, raw = SERVER.verifier_key.split("+", 2)
    for bad in (
        f"bad\u00a0name+{key_id}+{raw}",
        f"{name}+{key_id[:-1]}+{raw}",
        f"{name}+{key_id}+{raw}==",
        f"{name}+{key_id}",
    ):
        with pytest.raises(LogError):
            NoteVerifier.parse(bad)
    assert NoteVerifier.parse(f"{name}+{key_id.upper()}+{raw}") == SERVER_KEY  # Go takes it


@pytest.mark.parametrize(
    "body",
    [
        "origin\n\u0661\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # Arabic-Indic one
        "origin\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nextension\n",
        "origin\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
        "origin\n9223372036854775808\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    ],
    ids=["non-ascii-size", "empty-extension", "excess-padding", "size-over-int64"],
)
def test_a_checkpoint_body_off_the_tlog_checkpoint_grammar_is_refused(body: str) -> None:
    with pytest.raises(LogError):
        Checkpoint.parse(body)
    good = "origin\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension\n"
    assert Checkpoint.parse(good).size == 3
