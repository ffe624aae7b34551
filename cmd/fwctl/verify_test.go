package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	alice, mallory := keygen(t, dir, "alice"), keygen(t, dir, "mallory")
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", alice+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(5)))

	tampered := filepath.Join(dir, "tampered.dsse.json")
	var e map[string]any
	data, _ := os.ReadFile(env)
	json.Unmarshal(data, &e)
	e["payloadType"] = "application/json"
	writeJSON(t, tampered, e)

	later := time.Now().Add(60 * 24 * time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a valid envelope verifies with a one-line summary", []string{"verify", "--pub", alice + ".pub", env}, 0, "ok: serial 5, 1 release(s)"},
		{"an envelope signed by someone else is refused", []string{"verify", "--pub", mallory + ".pub", env}, 1, "threshold_not_met"},
		{"another payload type is refused", []string{"verify", "--pub", alice + ".pub", tampered}, 1, "wrong_payload_type"},
		{"a manifest checked after its expiry is refused", []string{"verify", "--pub", alice + ".pub", "--at", later, env}, 1, "expired"},
		{"a serial below the last one is a rollback", []string{"verify", "--pub", alice + ".pub", "--last-serial", "6", env}, 1, "rollback"},
		{"a threshold above the keys is refused", []string{"verify", "--pub", alice + ".pub", "--threshold", "2", env}, 1, "threshold"},
		{"verify without --pub is a usage error", []string{"verify", env}, 2, "--pub"},
		{"verify with a bad --at is a usage error", []string{"verify", "--pub", alice + ".pub", "--at", "soon", env}, 2, "RFC 3339"},
		{"verify with a zero threshold is a usage error", []string{"verify", "--pub", alice + ".pub", "--threshold", "0", env}, 2, "threshold"},
		{"a private key is refused as trusted key", []string{"verify", "--pub", alice + ".key", env}, 1, "private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			out := r.stdout + r.stderr
			if r.code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d (want %d), output %q (want %q)", r.code, tt.code, out, tt.want)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	alice := keygen(t, dir, "alice")
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", alice+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(9)))
	mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "--group", "pilot",
		"--stages", "5%@2020-01-01T00:00:00Z,25%@2999-01-01T00:00:00Z", env)
	r := mustOK(t, "inspect", env)
	for _, want := range []string{"serial:       10", "release ids-4.1.25", "iDS-9632NXI-I8/16S", "4.1.25 (custom)", "keyid ", "now at 5% (stage 1 of 2)", "groups:   pilot", "valid now"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Run("inspect refuses a file that is not an envelope", func(t *testing.T) {
		notEnv := filepath.Join(dir, "x")
		os.WriteFile(notEnv, []byte("hello"), 0o644)
		if r := fwctl(t, "inspect", notEnv); r.code != 1 || !strings.Contains(r.stderr, "malformed") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
}
