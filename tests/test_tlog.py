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
