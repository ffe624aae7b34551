package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupsListShowsPathSerialTimeSizeAndDigest(t *testing.T) {
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(bdir, "SER42-20261202T013000.000Z.cfg")
	if err := os.WriteFile(name, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runFwagent(t, "backups", "list", "--state-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{name, "SER42", "2026-12-02T01:30:00Z", " 3 ", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runFwagent(t, "backups", "list", "--state-dir", t.TempDir())
	if code != exitOK || !strings.Contains(out, "no configuration backups") {
		t.Errorf("empty state dir: exit %d, %q", code, out)
	}
}

func TestBackupsListCoversEveryRecorderOfASite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("secret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	entry := func(name, ip string) string {
		return "  - name: " + name + "\n    backend: isapi\n    isapi:\n      url: https://" + ip + "\n      username: admin\n      password_file: pw\n"
	}
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+dir+"/state\ndevices:\n"+entry("nvr-1", "192.0.2.1")+entry("nvr-2", "192.0.2.2")), 0o600); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "state", "devices", "nvr-2", "backups")
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, "SER2-20261202T013000.000Z.cfg"), []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runFwagent(t, "--config", cfg, "backups", "list")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "DEVICE") || !strings.Contains(out, "nvr-2 ") || !strings.Contains(out, "SER2") || strings.Contains(out, "nvr-1 ") {
		t.Errorf("output:\n%s\nwant the nvr-2 backup under a DEVICE column", out)
	}
}
