package support

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundleNeverHoldsConfigurationBackups: the agent keeps the recorder's
// configuration (which holds its credentials) in state_dir/backups (and
// state_dir/devices/NAME/backups in a site). No bundle, personal data
// included or not, may carry one, whatever the file is called.
func TestBundleNeverHoldsConfigurationBackups(t *testing.T) {
	const secret = "CONFIG-FILE-WITH-CREDENTIALS"
	state, device := t.TempDir(), t.TempDir()
	for _, dir := range []string{state, device} {
		b := filepath.Join(dir, "backups")
		if err := os.MkdirAll(b, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"SER1-20261202T013000.000Z.cfg", "manifest.cfg", "journal.json"} {
			if err := os.WriteFile(filepath.Join(b, name), []byte(secret), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "journal.json"), []byte(`{"version":1}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, personal := range []bool{false, true} {
		var buf bytes.Buffer
		if err := WriteBundle(&buf, BundleInput{StateDir: state, DeviceDirs: map[string]string{"nvr-1": device}, IncludePersonal: personal}); err != nil {
			t.Fatal(err)
		}
		files := untar(t, buf.Bytes())
		if _, ok := files["state/journal.json"]; !ok {
			t.Fatalf("the bundle lacks the journal: %v", keys(files))
		}
		for name, data := range files {
			if strings.Contains(name, "backups") || strings.Contains(data, secret) {
				t.Errorf("personal=%v: %s carries a configuration backup", personal, name)
			}
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
