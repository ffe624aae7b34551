package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testport"
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

// TestASiteStatusEndpointIsRedacted: a site's daemon serves one status per
// recorder, behind its token, each identity redacted as the default bundle.
func TestASiteStatusEndpointIsRedacted(t *testing.T) {
	addr := testport.Addr(t) // held until the test ends: the daemon listens on it
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "status.token")
	if err := os.WriteFile(tokenPath, []byte("s3cret-status-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Start(lab.Options{
		Dir:      dir,
		Releases: demoReleases(16 << 10),
		Site: []lab.SiteDevice{
			{Name: "hall", Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware}},
			{Name: "yard", Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware}},
		},
		ExtraYAML: fmt.Sprintf("status:\n  listen: %s\n  token_file: %s\n", addr, tokenPath),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "--config", l.ConfigPath}, &stdout, &stderr) }()
	defer func() { cancel(); <-done }()

	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	var body []byte
	var sts []struct {
		Device string `json:"device"`
		agent.Status
	}
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer s3cret-status-token")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(body, &sts); err != nil {
				t.Fatalf("status endpoint: %v: %s", err, body)
			}
			if len(sts) == 2 && sts[0].Identity != nil && sts[1].Identity != nil {
				break
			}
		}
		select {
		case <-wctx.Done():
			t.Fatalf("no identities on the site's status endpoint: %v\n%s\n%s", err, body, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, st := range sts {
		id := st.Identity
		if id.Model != demoModel || id.Serial == "" || id.Raw["macAddress"] != "[REDACTED:mac]" ||
			id.Raw["deviceID"] != "[REDACTED:device_id]" || id.Raw["deviceName"] != "[REDACTED:name]" {
			t.Errorf("%s: identity not redacted as the bundle is:\n%s", st.Device, body)
		}
	}
	if strings.Contains(string(body), "c0:56:e3:") {
		t.Errorf("a MAC address on the status endpoint:\n%s", body)
	}
}
