package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/manifest"
)

// result is what one fwctl invocation produced.
type result struct {
	stdout, stderr string
	code           int
}

// fwctl runs the command line in-process, like main does.
func fwctl(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := exitCode(err, &errb)
	return result{out.String(), errb.String(), code}
}

// mustOK fails the test unless the command exited 0.
func mustOK(t *testing.T, args ...string) result {
	t.Helper()
	r := fwctl(t, args...)
	if r.code != 0 {
		t.Fatalf("fwctl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// keygen makes a key pair with fwctl keygen and returns the prefix.
func keygen(t *testing.T, dir, name string) string {
	t.Helper()
	prefix := filepath.Join(dir, name)
	mustOK(t, "keygen", "--out", prefix)
	return prefix
}

// testPayload is a valid manifest payload, fresh relative to the real clock
// (fwctl's commands read time.Now).
func testPayload(serial int) map[string]any {
	now := time.Now().UTC().Truncate(time.Second)
	return map[string]any{
		"schema":  1,
		"serial":  serial,
		"issued":  now.Add(-time.Hour).Format(time.RFC3339),
		"expires": now.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"releases": []any{map[string]any{
			"id":      "ids-4.1.25",
			"models":  []any{"iDS-9632NXI-I8/16S"},
			"version": "4.1.25",
			"variant": "custom",
			"image": map[string]any{
				"urls":   []any{"https://fw.example.com/digicap.dav"},
				"size":   4096,
				"sha256": strings.Repeat("ab", 32),
			},
		}},
	}
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSignWithKeygenKeyVerifiesWithStandardPEM(t *testing.T) {
	dir := t.TempDir()
	alice := keygen(t, dir, "alice")
	payload := writeJSON(t, filepath.Join(dir, "m.json"), testPayload(1))
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", alice+".key", "-o", env, payload)

	// Parse the public key with the standard library only, not with fwctl.
	pemBytes, err := os.ReadFile(alice + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("keygen wrote %q, want a PUBLIC KEY PEM block", pemBytes)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		t.Fatalf("key is %T", k)
	}
	data, _ := os.ReadFile(env)
	if _, err := manifest.Verify(data, manifest.NewTrust(1, pub), manifest.VerifyOptions{Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestSign(t *testing.T) {
	dir := t.TempDir()
	keys := []string{keygen(t, dir, "a"), keygen(t, dir, "b"), keygen(t, dir, "c")}
	payload := writeJSON(t, filepath.Join(dir, "m.json"), testPayload(3))
	env := filepath.Join(dir, "m.dsse.json")
	pubs := []string{"--pub", keys[0] + ".pub", "--pub", keys[1] + ".pub", "--pub", keys[2] + ".pub"}

	t.Run("a payload signed by one person does not meet 2-of-3", func(t *testing.T) {
		mustOK(t, "sign", "--key", keys[0]+".key", "-o", env, payload)
		r := fwctl(t, append(append([]string{"verify", "--threshold", "2"}, pubs...), env)...)
		if r.code != 1 || !strings.Contains(r.stderr, "threshold_not_met") {
			t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
		}
	})
	t.Run("a second person adds a signature and 2-of-3 verifies", func(t *testing.T) {
		mustOK(t, "sign", "--key", keys[1]+".key", "-o", env, env)
		r := mustOK(t, append(append([]string{"verify", "--threshold", "2"}, pubs...), env)...)
		if !strings.HasPrefix(r.stdout, "ok: serial 3") || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("summary %q", r.stdout)
		}
	})
	t.Run("signing again with the same key adds nothing", func(t *testing.T) {
		mustOK(t, "sign", "--key", keys[1]+".key", "-o", env, env)
		data, _ := os.ReadFile(env)
		if n := strings.Count(string(data), `"keyid"`); n != 2 {
			t.Fatalf("%d signatures, want 2", n)
		}
	})
	t.Run("the envelope goes to stdout without -o", func(t *testing.T) {
		r := mustOK(t, "sign", "--key", keys[2]+".key", payload)
		if !strings.Contains(r.stdout, manifest.PayloadType) {
			t.Fatalf("stdout %q", r.stdout)
		}
	})
}

func TestSignRefusals(t *testing.T) {
	dir := t.TempDir()
	key := keygen(t, dir, "a")
	bad := testPayload(1)
	bad["releases"].([]any)[0].(map[string]any)["image"].(map[string]any)["sha256"] = "XYZ"
	badPath := writeJSON(t, filepath.Join(dir, "bad.json"), bad)
	dup := filepath.Join(dir, "dup.json")
	good, _ := json.Marshal(testPayload(1))
	os.WriteFile(dup, bytes.Replace(good, []byte(`"serial":1`), []byte(`"serial":1,"serial":2`), 1), 0o644)
	goodPath := writeJSON(t, filepath.Join(dir, "good.json"), testPayload(1))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a payload with a bad digest is refused with the reason", []string{"sign", "--key", key + ".key", badPath}, 1, "sha256"},
		{"a payload with a duplicate key is refused", []string{"sign", "--key", key + ".key", dup}, 1, "duplicate key"},
		{"a public key is refused as signing key", []string{"sign", "--key", key + ".pub", goodPath}, 1, "public key"},
		{"signing without a key is a usage error", []string{"sign", goodPath}, 2, "--key"},
		{"signing without input is a usage error", []string{"sign", "--key", key + ".key"}, 2, "argument"},
		{"a missing input file is refused", []string{"sign", "--key", key + ".key", filepath.Join(dir, "nope.json")}, 1, "no such file"},
		{"an unknown flag is a usage error", []string{"sign", "--frobnicate", goodPath}, 2, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"keygen"}, {"release"}, {"sign"}, {"verify"}, {"inspect"},
		{"rollout"}, {"rollout", "set"}, {"rollout", "pause"}, {"rollout", "resume"}, {"rollout", "preview"},
	} {
		t.Run(strings.Join(args, " ")+" has --help", func(t *testing.T) {
			r := mustOK(t, append(args, "--help")...)
			if !strings.Contains(r.stdout, "Usage:") {
				t.Fatalf("help: %s", r.stdout)
			}
		})
	}
}

// One signature on a manifest with a release for the protected model: fwctl
// says devices will refuse it until a second integrator co-signs (or they
// pin its digest); after the co-signature it says nothing.
func TestSignNotesTheProtectedModelsSecondProof(t *testing.T) {
	dir := t.TempDir()
	alice, bob := keygen(t, dir, "alice"), keygen(t, dir, "bob")
	payload := writeJSON(t, filepath.Join(dir, "m.json"), testPayload(1))
	env := filepath.Join(dir, "m.dsse.json")
	r := mustOK(t, "sign", "--key", alice+".key", "-o", env, payload)
	if !strings.Contains(r.stderr, "protected_needs_second_proof") || !strings.Contains(r.stderr, "policy.pins") || !strings.Contains(r.stderr, `"ids-4.1.25"`) {
		t.Errorf("no note about the second proof after one signature:\n%s", r.stderr)
	}
	r = mustOK(t, "sign", "--key", alice+".key", "--pub", alice+".pub", "-o", env, env)
	if !strings.Contains(r.stderr, "protected_needs_second_proof") {
		t.Errorf("the same key again is no second proof, but fwctl says nothing:\n%s", r.stderr)
	}
	// fwctl verify counts only the valid signatures of trusted keys.
	r = mustOK(t, "verify", "--pub", alice+".pub", env)
	if !strings.Contains(r.stderr, "protected_needs_second_proof") {
		t.Errorf("fwctl verify says nothing about the missing second signer:\n%s", r.stderr)
	}
	r = mustOK(t, "sign", "--key", bob+".key", "--pub", alice+".pub", "-o", env, env)
	if strings.Contains(r.stderr, "protected_needs_second_proof") {
		t.Errorf("a note although two keys signed:\n%s", r.stderr)
	}
	if r = mustOK(t, "verify", "--pub", alice+".pub", env); !strings.Contains(r.stderr, "protected_needs_second_proof") {
		t.Errorf("fwctl verify trusting only alice counted bob's signature:\n%s", r.stderr)
	}
	if r = mustOK(t, "verify", "--pub", alice+".pub", "--pub", bob+".pub", env); strings.Contains(r.stderr, "protected_needs_second_proof") {
		t.Errorf("fwctl verify notes a missing signer although both signed:\n%s", r.stderr)
	}
	other := testPayload(2)
	other["releases"].([]any)[0].(map[string]any)["models"] = []any{"iDS-9632NXI-I8/S"}
	r = mustOK(t, "sign", "--key", alice+".key", "-o", filepath.Join(dir, "o.dsse.json"), writeJSON(t, filepath.Join(dir, "o.json"), other))
	if strings.Contains(r.stderr, "protected_needs_second_proof") {
		t.Errorf("a note for a look-alike model:\n%s", r.stderr)
	}
}
