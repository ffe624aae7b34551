package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/nvrsim"
)

// A site keeps each recorder's backups in its own state folder
// (state_dir/devices/NAME/backups): `fwagent backups list` shows them with
// the recorder's name, and the site's support bundle holds none of them.
func TestASiteListsEveryRecordersBackupsAndBundlesNone(t *testing.T) {
	l := startSiteLab(t)
	if stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath, "--device", "hall,yard"); code != exitOK {
		t.Fatalf("update exited %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code := runFwagent(t, "backups", "list", "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("backups list exited %d: %s", code, stderr)
	}
	for _, name := range []string{"hall", "yard"} {
		dir := filepath.Join(l.StateDir, "devices", name, "backups")
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 {
			t.Fatalf("%s: backups %v, %v; want one", name, ents, err)
		}
		line := ""
		for _, l := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(l, name+" ") {
				line = l
			}
		}
		if !strings.Contains(line, filepath.Join(dir, ents[0].Name())) {
			t.Errorf("backups list has no line for %s's backup %s:\n%s", name, ents[0].Name(), stdout)
		}
	}
	if strings.Contains(stdout, "gate ") {
		t.Errorf("gate got no upload, so no backup, but is listed:\n%s", stdout)
	}

	bundle := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, stderr, code := runFwagent(t, "support-bundle", "--include-personal", "--config", l.ConfigPath, "-o", bundle); code != exitOK {
		t.Fatalf("support-bundle exited %d: %s", code, stderr)
	}
	files := readBundle(t, bundle)
	if _, ok := files["state/devices/hall/journal.json"]; !ok {
		t.Fatalf("the bundle lacks the recorders' state: %v", mapKeys(files))
	}
	for name, body := range files {
		if strings.Contains(name, "backups/") || strings.HasSuffix(name, ".cfg") || strings.Contains(body, nvrsim.ConfigMarker) {
			t.Errorf("the site's bundle holds a configuration backup in %s", name)
		}
	}
}
