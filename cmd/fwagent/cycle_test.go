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
	"github.com/fwagent/fwagent/manifest"
)

// startLab starts the demo's world with small images.
func startLab(t *testing.T, extraYAML string) *lab.Lab {
	t.Helper()
	l, err := lab.Start(lab.Options{
		Dir:       t.TempDir(),
		Device:    nvrsim.Config{Model: demoModel, Firmware: demoFirmware, Serial: demoSerial},
		Releases:  demoReleases(64 << 10),
		ExtraYAML: extraYAML,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestCheckShowsTheDecisionAndChangesNothing(t *testing.T) {
	l := startLab(t, "")
	stdout, stderr, code := runFwagent(t, "check", "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("check exited %d, want 0 (an update is available)\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"nvr-custom-4.1.25 (custom 4.1.25) CHOSEN", "standard_firmware_forbidden", "result:   available"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout)
		}
	}
	if l.ImageBytes.Load() != 0 || l.Sim.State().Uploads != 0 {
		t.Fatal("check downloaded or installed something")
	}
	if _, err := os.Stat(filepath.Join(l.StateDir, "journal.json")); err == nil {
		t.Fatal("check wrote a journal")
	}

	stdout, _, code = runFwagent(t, "check", "--json", "--config", l.ConfigPath)
	var out agent.Outcome
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != exitOK || out.Result != agent.ResultAvailable {
		t.Fatalf("check --json: exit %d, result %q, err %v:\n%s", code, out.Result, err, stdout)
	}
}

func TestUpdateInstallsAndStatusShowsIt(t *testing.T) {
	l := startLab(t, "")
	stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("update exited %d\n%s\n%s", code, stdout, stderr)
	}
	if st := l.Sim.State(); st.Installs != 1 || st.Bricked {
		t.Fatalf("simulator: %+v", st)
	}
	stdout, _, code = runFwagent(t, "status", "--config", l.ConfigPath)
	if code != exitOK || !strings.Contains(stdout, "success release nvr-custom-4.1.25") {
		t.Fatalf("status exited %d:\n%s", code, stdout)
	}
	// Up to date now: nothing to do, exit 3 for check and update alike.
	if _, _, code := runFwagent(t, "check", "--config", l.ConfigPath); code != exitNothing {
		t.Fatalf("check after the install exited %d, want %d", code, exitNothing)
	}
	if _, _, code := runFwagent(t, "update", "--config", l.ConfigPath); code != exitNothing {
		t.Fatalf("update after the install exited %d, want %d", code, exitNothing)
	}
}

func TestUpdateRefusedByPolicyExits4(t *testing.T) {
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Device:   nvrsim.Config{Model: demoModel, Firmware: demoFirmware},
		Releases: []lab.Release{{ID: "trap", Version: "4.1.30", Variant: "standard"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stdout, _, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath)
	if code != exitRefused || !strings.Contains(stdout, "standard_firmware_forbidden") {
		t.Fatalf("update exited %d, want %d:\n%s", code, exitRefused, stdout)
	}
	if _, _, code := runFwagent(t, "check", "--config", l.ConfigPath); code != exitRefused {
		t.Fatalf("check exited %d, want %d", code, exitRefused)
	}
}

func TestUpdateFromAnOfflineFolder(t *testing.T) {
	l := startLab(t, "")
	// The folder a USB stick would hold: the signed manifest and the images.
	usb := t.TempDir()
	copyFile(t, filepath.Join(l.Dir, "www", "manifest.json"), filepath.Join(usb, "manifest.json"))
	for _, r := range l.Manifest().Releases {
		copyFile(t, l.ImagePath(r.ID), filepath.Join(usb, r.ID+".dav"))
	}
	l.Updates.Close() // the site is offline
	stdout, stderr, code := runFwagent(t, "update", "--now", "--from", usb, "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("update --from exited %d\n%s\n%s", code, stdout, stderr)
	}
	if st := l.Sim.State(); st.Installs != 1 || !strings.Contains(st.Firmware, "4.1.25") {
		t.Fatalf("simulator: %+v", st)
	}
	if _, _, code := runFwagent(t, "update", "--from", filepath.Join(usb, "missing"), "--config", l.ConfigPath); code != exitUsage {
		t.Fatalf("--from a missing folder exited %d, want %d", code, exitUsage)
	}
}

func TestUpdateFromARelativeFolder(t *testing.T) {
	l := startLab(t, "")
	site := t.TempDir()
	usb := filepath.Join(site, "usb")
	if err := os.Mkdir(usb, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(l.Dir, "www", "manifest.json"), filepath.Join(usb, "manifest.json"))
	for _, r := range l.Manifest().Releases {
		copyFile(t, l.ImagePath(r.ID), filepath.Join(usb, r.ID+".dav"))
	}
	l.Updates.Close()
	t.Chdir(site)
	stdout, stderr, code := runFwagent(t, "update", "--now", "--from", "usb", "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("update --from usb (a relative folder) exited %d\n%s\n%s", code, stdout, stderr)
	}
	if st := l.Sim.State(); st.Installs != 1 {
		t.Fatalf("simulator: %+v", st)
	}
}

func TestRunServesStatusAndStopsOnCancel(t *testing.T) {
	addr := testport.Addr(t) // held until the test ends: the daemon listens on it
	l := startLab(t, fmt.Sprintf("status:\n  listen: %s\n", addr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "--config", l.ConfigPath}, &stdout, &stderr) }()

	// The daemon's first cycle installs; wait for it through the simulator.
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if err := l.Sim.Wait(wctx, func(s nvrsim.State) bool { return s.Installs == 1 && !s.Rebooting }); err != nil {
		t.Fatalf("the daemon did not install: %v\n%s", err, stderr.String())
	}
	var st agent.Status
	var body []byte
	for {
		resp, err := http.Get("http://" + addr + "/v1/status")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatalf("status endpoint: %v: %s", err, body)
			}
			// The daemon sets the next poll once the cycle has returned.
			if st.LastResult != nil && !st.NextPoll.IsZero() {
				break
			}
		}
		select {
		case <-wctx.Done():
			t.Fatalf("no result on the status endpoint: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if st.LastResult.Outcome != "success" || st.Identity == nil || st.NextPoll.IsZero() {
		t.Fatalf("status: %+v", st)
	}
	// Privacy by default: the identity is redacted as in the default bundle.
	if st.Identity.Serial != demoSerial || st.Identity.Model != demoModel || st.Identity.Raw["macAddress"] != "[REDACTED:mac]" ||
		st.Identity.Raw["deviceID"] != "[REDACTED:device_id]" || st.Identity.Raw["deviceName"] != "[REDACTED:name]" {
		t.Errorf("status endpoint's identity is not redacted as the bundle is:\n%s", body)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "fwagent_update_attempts_total 1") {
		t.Errorf("metrics:\n%s", metrics)
	}
	// Every metric the operator guide lists is served, with its type.
	for _, row := range docTable(t, "operator-guide.md", "### Metrics") {
		name, _, _ := strings.Cut(names(row[0])[0], "{")
		if want := "# TYPE " + name + " " + row[1]; !strings.Contains(string(metrics), want) {
			t.Errorf("docs/operator-guide.md lists %s (%s); /metrics has no %q:\n%s", name, row[1], want, metrics)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after cancel", err)
	}
}

func TestRunRefusesAPublicStatusAddressWithoutToken(t *testing.T) {
	l := startLab(t, "status:\n  listen: 0.0.0.0:9876\n")
	_, stderr, code := runFwagent(t, "run", "--config", l.ConfigPath)
	if code == exitOK || !strings.Contains(stderr, "token") {
		t.Fatalf("run exited %d with %q; want a refusal naming the token", code, stderr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateWhoseInstallFailsExits5(t *testing.T) {
	l := startLab(t, "")
	l.Sim.SetFaults(nvrsim.Faults{RejectUpload: "badFlash"})
	stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath)
	if code != exitInstallFailed {
		t.Fatalf("update with a recorder refusing the image exited %d, want %d (install failed)\n%s\n%s", code, exitInstallFailed, stdout, stderr)
	}
	if !strings.Contains(stdout, "badFlash") {
		t.Errorf("output does not name the device's code:\n%s", stdout)
	}
	// An error before the device is touched stays exit 1.
	l.Sim.SetFaults(nvrsim.Faults{})
	if _, _, code := runFwagent(t, "update", "--now", "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != exitError {
		t.Errorf("update with a missing config exited %d, want %d", code, exitError)
	}
}

func TestStagesAreNumberedFromOneAsFwctlDoes(t *testing.T) {
	at := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	r := &manifest.Rollout{ID: "r1", Stages: []manifest.Stage{{At: at, Percent: 5}, {At: at.Add(48 * time.Hour), Percent: 25}, {At: at.Add(96 * time.Hour), Percent: 100}}}
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{at.Add(-time.Hour), "before stage 1 of 3"},
		{at, "stage 1 of 3 at 5%"},
		{at.Add(50 * time.Hour), "stage 2 of 3 at 25%"},
	} {
		e := r.Evaluate("SN1", nil, tt.now)
		if got := stageText(&e, r); got != tt.want {
			t.Errorf("at %s: %q, want %q", tt.now, got, tt.want)
		}
		// manifest's own reason and fwctl (rollout preview, inspect) count the same way.
		if e.Stage >= 0 && !strings.Contains(e.Reason, fmt.Sprintf("stage %d ", e.Stage+1)) {
			t.Errorf("reason %q numbers the stage differently from %q", e.Reason, tt.want)
		}
	}
	if got := stageText(&manifest.Eligibility{Stage: -1}, nil); got != "no rollout" {
		t.Errorf("no rollout: %q", got)
	}
}

func TestCheckLogsReadableTextOnAPipe(t *testing.T) {
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Device:   nvrsim.Config{Model: demoModel, Firmware: demoFirmware, Serial: demoSerial},
		Releases: demoReleases(64 << 10),
		Password: "not-the-password",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	_, stderr, code := runFwagent(t, "check", "--config", l.ConfigPath)
	if code != exitError {
		t.Fatalf("check with a wrong password exited %d: %s", code, stderr)
	}
	// The refused login is logged as text a person reads, not JSON.
	if !strings.Contains(stderr, "level=error") || strings.Contains(stderr, `{"`) {
		t.Errorf("check's stderr on a pipe is not readable text:\n%s", stderr)
	}
}
