// Notecheck is the independent side of the signed-note interoperability tests: it reads
// and writes C2SP signed notes and checkpoints with Go's golang.org/x/mod/sumdb/note and
// sumdb/tlog, the reference implementation, so the Python code is checked against it and
// not against itself.
//
// Usage:
//
//	notecheck keygen NAME                 prints a new signer key, then its verifier key
//	notecheck sign SKEY... < TEXT         prints TEXT signed by each key (note.Sign)
//	notecheck open VKEY... < NOTE         prints "OK <signer>..." or "FAIL <reason>"
//	notecheck checkpoint [-leaves FILE] VKEY... < NOTE
//	                                      opens NOTE, parses it as a tlog-checkpoint and,
//	                                      given the leaves (one base64 record a line),
//	                                      recomputes its root hash with tlog.TreeHash
//	notecheck open-batch VKEY... < JSON   opens each base64 note of a JSON array; prints a
//	                                      JSON array of "OK ..."/"FAIL ..." strings
//
// Verifier keys of signature type 0x04 are C2SP tlog-cosignature/v1 keys, which the note
// package does not know: cosignatureVerifier below checks them.
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const algCosignatureV1 = 0x04

// cosignatureVerifier checks c2sp.org/tlog-cosignature Ed25519 cosignatures: the
// signature is an 8-byte big-endian timestamp then an Ed25519 signature over
// "cosignature/v1\ntime <timestamp>\n" followed by the checkpoint body.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }

func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	timestamp := binary.BigEndian.Uint64(sig[:8])
	if timestamp > math.MaxInt64 {
		return false
	}
	signed := fmt.Sprintf("cosignature/v1\ntime %d\n%s", timestamp, msg)
	return ed25519.Verify(v.key, []byte(signed), sig[8:])
}

func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// newVerifier accepts Ed25519 note keys (via the note package) and cosignature/v1 keys.
func newVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) == 3 {
		key, err := base64.StdEncoding.DecodeString(parts[2])
		if err == nil && len(key) > 0 && key[0] == algCosignatureV1 {
			hash, err := strconv.ParseUint(parts[1], 16, 32)
			if err != nil || len(parts[1]) != 8 || len(key) != 1+ed25519.PublicKeySize {
				return nil, fmt.Errorf("malformed cosignature key %q", vkey)
			}
			if uint32(hash) != keyHash(parts[0], key) {
				return nil, fmt.Errorf("cosignature key %q has the wrong key id", vkey)
			}
			return &cosignatureVerifier{parts[0], uint32(hash), ed25519.PublicKey(key[1:])}, nil
		}
	}
	return note.NewVerifier(vkey)
}

func verifiers(vkeys []string) (note.Verifiers, error) {
	list := make([]note.Verifier, 0, len(vkeys))
	for _, vkey := range vkeys {
		v, err := newVerifier(vkey)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return note.VerifierList(list...), nil
}

func open(msg []byte, known note.Verifiers) (*note.Note, string) {
	n, err := note.Open(msg, known)
	if err != nil {
		return nil, "FAIL " + err.Error()
	}
	names := make([]string, 0, len(n.Sigs))
	for _, sig := range n.Sigs {
		names = append(names, sig.Name)
	}
	return n, "OK " + strings.Join(names, " ")
}

// checkCheckpoint applies c2sp.org/tlog-checkpoint to a note's text.
func checkCheckpoint(text string, leaves [][]byte) error {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if !strings.HasSuffix(text, "\n") || len(lines) < 3 {
		return errors.New("a checkpoint has an origin, a size and a root hash")
	}
	for _, line := range lines {
		if line == "" {
			return errors.New("a checkpoint line is empty")
		}
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return fmt.Errorf("tree size %q is not a decimal number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return fmt.Errorf("root hash %q is not a base64 SHA-256 hash", lines[2])
	}
	if leaves == nil {
		return nil
	}
	if int64(len(leaves)) < size {
		return fmt.Errorf("the checkpoint covers %d leaves, %d given", size, len(leaves))
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := int64(0); i < size; i++ {
		hashes, err := tlog.StoredHashes(i, leaves[i], reader)
		if err != nil {
			return err
		}
		stored = append(stored, hashes...)
	}
	tree, err := tlog.TreeHash(size, reader)
	if err != nil {
		return err
	}
	if size == 0 {
		tree = sha256.Sum256(nil) // RFC 9162's empty tree; tlog's is all zeros
	}
	if !bytes.Equal(tree[:], root) {
		return fmt.Errorf("root hash %s is not the tree hash %s of the leaves", lines[2], tree)
	}
	return nil
}

func readLeaves(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	leaves := [][]byte{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		leaf, err := base64.StdEncoding.DecodeString(scanner.Text())
		if err != nil {
			return nil, fmt.Errorf("leaf %d is not base64", len(leaves))
		}
		leaves = append(leaves, leaf)
	}
	return leaves, scanner.Err()
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: notecheck keygen|sign|open|checkpoint|open-batch ...")
	}
	switch args[0] {
	case "keygen":
		if len(args) != 2 {
			return errors.New("usage: notecheck keygen NAME")
		}
		skey, vkey, err := note.GenerateKey(rand.Reader, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n%s\n", skey, vkey)
		return nil
	case "sign":
		text, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		signers := []note.Signer{}
		for _, skey := range args[1:] {
			s, err := note.NewSigner(skey)
			if err != nil {
				return err
			}
			signers = append(signers, s)
		}
		msg, err := note.Sign(&note.Note{Text: string(text)}, signers...)
		if err != nil {
			return err
		}
		_, err = stdout.Write(msg)
		return err
	case "open", "checkpoint":
		flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
		leavesPath := flags.String("leaves", "", "file of base64 leaves")
		if err := flags.Parse(args[1:]); err != nil {
			return err
		}
		known, err := verifiers(flags.Args())
		if err != nil {
			return err
		}
		msg, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		n, result := open(msg, known)
		if n != nil && args[0] == "checkpoint" {
			var leaves [][]byte
			if *leavesPath != "" {
				if leaves, err = readLeaves(*leavesPath); err != nil {
					return err
				}
			}
			if err := checkCheckpoint(n.Text, leaves); err != nil {
				result = "FAIL " + err.Error()
			}
		}
		fmt.Fprintln(stdout, result)
		if !strings.HasPrefix(result, "OK") {
			os.Exit(1)
		}
		return nil
	case "open-batch":
		known, err := verifiers(args[1:])
		if err != nil {
			return err
		}
		var notes [][]byte // JSON base64 strings
		if err := json.NewDecoder(stdin).Decode(&notes); err != nil {
			return err
		}
		results := make([]string, len(notes))
		for i, msg := range notes {
			_, results[i] = open(msg, known)
		}
		return json.NewEncoder(stdout).Encode(results)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "notecheck:", err)
		os.Exit(2)
	}
}
