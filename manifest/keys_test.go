package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenSSLKeysFromTestdataInteroperate(t *testing.T) {
	privPEM := readFile(t, "testdata/openssl.key")
	pubPEM := readFile(t, "testdata/openssl.pub")
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the parsed private key matches the parsed public key", func(t *testing.T) {
		if !pub.Equal(priv.Public()) {
			t.Fatal("public key does not match private key")
		}
	})
	t.Run("marshalling gives back openssl's exact bytes", func(t *testing.T) {
		gotPriv, _ := MarshalPrivateKey(priv)
		gotPub, _ := MarshalPublicKey(pub)
		if !bytes.Equal(gotPriv, privPEM) || !bytes.Equal(gotPub, pubPEM) {
			t.Fatalf("marshal differs from openssl:\n%s%s", gotPriv, gotPub)
		}
	})
	t.Run("openssl's signature verifies and equals ours", func(t *testing.T) {
		msg, sig := readFile(t, "testdata/openssl.msg"), readFile(t, "testdata/openssl.sig")
		if !ed25519.Verify(pub, msg, sig) {
			t.Fatal("openssl signature does not verify")
		}
		if !bytes.Equal(ed25519.Sign(priv, msg), sig) {
			t.Fatal("ed25519 is deterministic: our signature should equal openssl's")
		}
	})
}

func TestKeyParsingRefusesWrongInput(t *testing.T) {
	pubPEM := readFile(t, "testdata/openssl.pub")
	privPEM := readFile(t, "testdata/openssl.key")
	tests := []struct {
		name string
		fn   func() error
	}{
		{"a public key passed as private key is refused", func() error { _, err := ParsePrivateKey(pubPEM); return err }},
		{"a private key passed as public key is refused", func() error { _, err := ParsePublicKey(privPEM); return err }},
		{"garbage is refused as private key", func() error { _, err := ParsePrivateKey([]byte("hello")); return err }},
		{"garbage is refused as public key", func() error { _, err := ParsePublicKey([]byte("hello")); return err }},
		{"a corrupt PEM body is refused", func() error {
			_, err := ParsePublicKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestWriteKeyPairWritesPrivateKeyOwnerOnly(t *testing.T) {
	_, privs := newKeys(t, 1)
	prefix := filepath.Join(t.TempDir(), "signer")
	keyPath, pubPath, err := WriteKeyPair(prefix, privs[0])
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}
	priv, err := LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Equal(privs[0]) || !pub.Equal(privs[0].Public()) {
		t.Fatal("loaded keys differ from written keys")
	}
	t.Run("it names a missing key folder", func(t *testing.T) {
		_, _, err := WriteKeyPair(filepath.Join(t.TempDir(), "keys", "signer"), privs[0])
		if err == nil || !strings.Contains(err.Error(), "does not exist: create it first") {
			t.Fatalf("got %v, want an error naming the missing folder", err)
		}
	})
	t.Run("it refuses to overwrite an existing key", func(t *testing.T) {
		if _, _, err := WriteKeyPair(prefix, privs[0]); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestKeyIDIsHexSHA256OfPKIXDER(t *testing.T) {
	pub, err := ParsePublicKey(readFile(t, "testdata/openssl.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// Computed independently: openssl pkey -pubin -in openssl.pub -outform DER | sha256sum
	want := readFile(t, "testdata/openssl.keyid")
	if got := KeyID(pub); got != string(bytes.TrimSpace(want)) {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
}

// TestOpenSSLSignsAndVerifiesEnvelopes shells out to openssl when present.
func TestOpenSSLSignsAndVerifiesEnvelopes(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed; the testdata interop test still ran")
	}
	dir := t.TempDir()
	keyPath, pubPath := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	run("genpkey", "-algorithm", "ed25519", "-out", keyPath)
	run("pkey", "-in", keyPath, "-pubout", "-out", pubPath)
	pub, err := LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	payload := validPayload(t)
	pae := filepath.Join(dir, "pae")
	if err := os.WriteFile(pae, dsse.PAE(PayloadType, payload), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("an envelope signed by openssl verifies", func(t *testing.T) {
		sigPath := filepath.Join(dir, "sig")
		run("pkeyutl", "-sign", "-inkey", keyPath, "-rawin", "-in", pae, "-out", sigPath)
		sig := readFile(t, sigPath)
		env := dsse.Envelope{PayloadType: PayloadType, Payload: b64(payload), Signatures: []dsse.Signature{{KeyID: KeyID(pub), Sig: b64(sig)}}}
		raw, _ := json.Marshal(env)
		if _, err := Verify(raw, NewTrust(1, pub), VerifyOptions{Now: testNow}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("our signature verifies in openssl", func(t *testing.T) {
		priv, err := LoadPrivateKey(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		raw := mustSign(t, payload, priv)
		var env dsse.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		sigPath := filepath.Join(dir, "oursig")
		if err := os.WriteFile(sigPath, unb64(t, env.Signatures[0].Sig), 0o600); err != nil {
			t.Fatal(err)
		}
		run("pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", pae, "-sigfile", sigPath)
	})
}
