package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/manifest"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "alice")
	r := mustOK(t, "keygen", "--out", prefix)
	pub, err := manifest.LoadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(r.stdout) != manifest.KeyID(pub) {
		t.Fatalf("printed %q, want key ID %s", r.stdout, manifest.KeyID(pub))
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"keygen refuses to overwrite a key", []string{"keygen", "--out", prefix}, 1},
		{"keygen without --out is a usage error", []string{"keygen"}, 2},
		{"keygen with an argument is a usage error", []string{"keygen", "--out", prefix + "2", "extra"}, 2},
		{"keygen into a missing directory is refused", []string{"keygen", "--out", filepath.Join(dir, "no", "k")}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := fwctl(t, tt.args...); r.code != tt.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
			}
		})
	}
}
