package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// startSiteLab starts a site: two 16S on custom 4.1.20 and a /S look-alike
// on standard firmware, with the demo's manifest.
func startSiteLab(t *testing.T) *lab.Lab {
	t.Helper()
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Releases: demoReleases(16 << 10),
		Site: []lab.SiteDevice{
			{Name: "hall", Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware}},
			{Name: "yard", Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware}},
			{Name: "gate", Device: nvrsim.Config{Model: "iDS-9632NXI-I8/S", Firmware: demoFirmware, Variant: "standard"}},
		},
		ExtraYAML: "install:\n  max_parallel: 2\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestASiteShowsOneLinePerRecorderAndExitsForTheWholeSite(t *testing.T) {
	l := startSiteLab(t)
	stdout, stderr, code := runFwagent(t, "check", "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("check exited %d, want 0\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"hall ", "yard ", "gate ", "available nvr-custom-4.1.25", "available i8s-standard-4.1.30", "iDS-9632NXI-I8/S", "site: 3 recorders: 3 available (exit 0)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(l.StateDir, "devices")); err == nil {
		t.Error("check created the recorders' state folders: it must change nothing")
	}
	stdout, _, code = runFwagent(t, "check", "--config", l.ConfigPath, "--device", "hall", "--json")
	var outs []agent.DeviceOutcome
	if err := json.Unmarshal([]byte(stdout), &outs); err != nil || code != exitOK || len(outs) != 1 || outs[0].Device != "hall" {
		t.Fatalf("check --device hall --json: exit %d, %v:\n%s", code, err, stdout)
	}
	if _, _, code := runFwagent(t, "check", "--config", l.ConfigPath, "--device", "nope"); code != 2 {
		t.Errorf("an unknown --device exited %d, want 2", code)
	}

	stdout, stderr, code = runFwagent(t, "update", "--now", "--config", l.ConfigPath, "--device", "hall,yard")
	if code != exitOK {
		t.Fatalf("update exited %d\n%s\n%s", code, stdout, stderr)
	}
	for _, name := range []string{"hall", "yard"} {
		if st := l.Site.Recorder(name).State(); st.Installs != 1 || !strings.Contains(st.Firmware, "4.1.25") {
			t.Errorf("%s: %+v", name, st)
		}
	}
	if st := l.Site.Recorder("gate").State(); st.Uploads != 0 {
		t.Error("gate was not selected but got an upload")
	}
	if n := l.ImageRequests.Load(); n != 1 {
		t.Errorf("%d image GETs for two recorders, want 1", n)
	}
	// Up to date counts as done for a site: exit 0.
	stdout, _, code = runFwagent(t, "update", "--config", l.ConfigPath, "--device", "hall,yard")
	if code != exitOK || !strings.Contains(stdout, "up_to_date") {
		t.Fatalf("second update exited %d:\n%s", code, stdout)
	}
	stdout, _, code = runFwagent(t, "status", "--config", l.ConfigPath)
	if code != exitOK || strings.Count(stdout, "last result:      ") != 2 || !strings.Contains(stdout, "device:           gate") {
		t.Fatalf("status exited %d:\n%s", code, stdout)
	}
	stdout, _, code = runFwagent(t, "audit", "verify", "--config", l.ConfigPath)
	if code != exitOK || !strings.Contains(stdout, "hall: audit trail intact") || !strings.Contains(stdout, "yard: audit trail intact") {
		t.Fatalf("audit verify exited %d:\n%s", code, stdout)
	}

	bundle := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, stderr, code := runFwagent(t, "support-bundle", "--config", l.ConfigPath, "-o", bundle); code != exitOK {
		t.Fatalf("support-bundle exited %d: %s", code, stderr)
	}
	files := readBundle(t, bundle)
	for _, name := range []string{"hall", "yard"} {
		if _, ok := files["state/devices/"+name+"/journal.json"]; !ok {
			t.Errorf("the bundle lacks %s's journal: %v", name, mapKeys(files))
		}
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Recorders() {
		for name, body := range files {
			if strings.Contains(body, r.Config.Device.ISAPI.Password) {
				t.Errorf("%s carries %s's password", name, r.Name)
			}
		}
	}
}

func mapKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
