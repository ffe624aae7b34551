package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readBundle returns the files of a tar.gz on disk.
func readBundle(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
}

// siteTime stamps supportSite's log lines: recent, but over an hour ago.
var siteTime = time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)

// supportSite writes a config (password in a file), a log and a state dir.
func supportSite(t *testing.T) (cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	logDir, stateDir := filepath.Join(dir, "log"), filepath.Join(dir, "state")
	os.MkdirAll(logDir, 0o750)
	os.MkdirAll(stateDir, 0o750)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("Device-Pass-77\n"), 0o600)
	cfg := "device:\n  backend: isapi\n  isapi:\n    url: https://192.0.2.10\n    username: nvr-operator\n    password_file: pw\n" +
		"state_dir: " + stateDir + "\nlog:\n  dir: " + logDir + "\n"
	cfgPath = filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	// Lines stamped at siteTime stay within log.retention_days; the ancient one does not.
	now := siteTime.Format(time.RFC3339)
	log := `{"level":"info","msg":"ancient line past the retention","time":"2001-01-01T00:00:00Z"}` + "\n" +
		`{"level":"info","msg":"login nvr-operator with Device-Pass-77 at 192.0.2.10 for jane@example.com","release":"r1","attempt":"a1","time":"` + now + `"}` + "\n" +
		`{"level":"warning","msg":"retry","release":"r2","attempt":"a2","time":"` + now + `"}` + "\n"
	os.WriteFile(filepath.Join(logDir, "fwagent.log"), []byte(log), 0o600)
	os.WriteFile(filepath.Join(stateDir, "journal.json"), []byte(`{"step":"idle"}`), 0o600)
	return cfgPath
}

func TestSupportBundleCommand(t *testing.T) {
	cfg := supportSite(t)
	tests := []struct {
		name    string
		args    []string
		mode    string
		absent  []string
		present []string
	}{
		{"the default bundle has no personal data and no secrets", nil, `"mode": "redacted"`,
			[]string{"Device-Pass-77", "nvr-operator", "192.0.2.10", "jane@example.com", "ancient line"}, []string{"[REDACTED:ip]", "[REDACTED:user]", "older than the 30-day log retention"}},
		{"--include-personal keeps personal data but no secrets", []string{"--include-personal"}, `"mode": "personal"`,
			[]string{"Device-Pass-77", "ancient line"}, []string{"nvr-operator", "192.0.2.10", "jane@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "bundle.tar.gz")
			args := append([]string{"--config", cfg, "support-bundle", "-o", out}, tt.args...)
			stdout, stderr, code := runFwagent(t, args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s %s", code, stdout, stderr)
			}
			files := readBundle(t, out)
			if !strings.Contains(files["index.json"], tt.mode) {
				t.Errorf("index.json lacks %s:\n%s", tt.mode, files["index.json"])
			}
			for _, name := range []string{"logs/fwagent.log", "state/journal.json", "config.yaml", "system.txt"} {
				if _, ok := files[name]; !ok {
					t.Errorf("bundle lacks %s", name)
				}
			}
			all := ""
			for _, c := range files {
				all += c
			}
			for _, s := range tt.absent {
				if strings.Contains(all, s) {
					t.Errorf("bundle contains %q", s)
				}
			}
			for _, s := range tt.present {
				if !strings.Contains(all, s) {
					t.Errorf("bundle lacks %q", s)
				}
			}
			if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("bundle file mode %v, %v; want 0600", st.Mode().Perm(), err)
			}
		})
	}
}

func TestSupportBundleWithoutOutputIsAUsageError(t *testing.T) {
	if _, _, code := runFwagent(t, "support-bundle"); code != exitUsage {
		t.Fatalf("exit %d; want %d", code, exitUsage)
	}
}

func TestSupportBundleWorksWithABrokenConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("device:\n  backend: nonsense\n  isapi:\n    password: inline-secret-1\n"), 0o600)
	out := filepath.Join(dir, "b.tar.gz")
	_, stderr, code := runFwagent(t, "--config", cfg, "support-bundle", "-o", out, "--state-dir", dir, "--log-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	files := readBundle(t, out)
	if !strings.Contains(files["index.json"], "config not loaded") || strings.Contains(files["config.yaml"], "inline-secret-1") || !strings.Contains(files["config.yaml"], "nonsense") {
		t.Fatalf("bundle does not carry the redacted raw config and the error:\n%s\n%s", files["index.json"], files["config.yaml"])
	}
}
