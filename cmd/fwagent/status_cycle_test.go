package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/reason"
)

// TestStatusShowsACycleThatFailedBeforeAnUpdate: an update whose login the
// recorder refuses never starts an attempt (no journal step, no result);
// fwagent status still names the outcome, its code and the advice, and
// --json carries it in the journal, without the password.
func TestStatusShowsACycleThatFailedBeforeAnUpdate(t *testing.T) {
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Device:   nvrsim.Config{Model: demoModel, Firmware: demoFirmware, Serial: demoSerial},
		Releases: demoReleases(16 << 10),
		Password: "not-the-password",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath)
	if code != exitError {
		t.Fatalf("update with a wrong password exited %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = runFwagent(t, "status", "--config", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("status exited %d\n%s", code, stderr)
	}
	advice := reason.Advice(reason.BadCredentials)
	for _, want := range []string{"in progress:      nothing", "last cycle:", "failed", "[" + string(reason.BadCredentials) + "]", advice} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "not-the-password") {
		t.Errorf("status shows the password:\n%s", stdout)
	}
	stdout, _, code = runFwagent(t, "status", "--json", "--config", l.ConfigPath)
	var v statusView
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != exitOK {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, stdout)
	}
	if c := v.Journal.LastCycle; c == nil || c.Result != "failed" || len(c.Codes) == 0 || c.Codes[0] != string(reason.BadCredentials) || c.Finished.IsZero() {
		t.Errorf("status --json last cycle: %+v", v.Journal.LastCycle)
	}
}

// TestASiteStatusShowsEachRecordersLastCycle: on a site, each recorder's
// status names its own last cycle: the one with wrong credentials its code
// and advice, the other its install.
func TestASiteStatusShowsEachRecordersLastCycle(t *testing.T) {
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Releases: demoReleases(16 << 10),
		Site: []lab.SiteDevice{
			{Name: "hall", Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware}},
			{Name: "yard", Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware}, Password: "not-the-password"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath)
	if code == exitOK {
		t.Fatalf("update of a site with one refused login exited 0\n%s\n%s", stdout, stderr)
	}
	stdout, _, code = runFwagent(t, "status", "--json", "--config", l.ConfigPath)
	var views []statusView
	if err := json.Unmarshal([]byte(stdout), &views); err != nil || code != exitOK || len(views) != 2 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, stdout)
	}
	got := map[string]statusView{}
	for _, v := range views {
		got[v.Device] = v
	}
	if c := got["yard"].Journal.LastCycle; c == nil || c.Result != "failed" || len(c.Codes) == 0 || c.Codes[0] != string(reason.BadCredentials) {
		t.Errorf("yard's last cycle: %+v", c)
	}
	if c := got["hall"].Journal.LastCycle; c == nil || c.Result != "installed" {
		t.Errorf("hall's last cycle: %+v", c)
	}
	stdout, _, _ = runFwagent(t, "status", "--config", l.ConfigPath, "--device", "yard")
	for _, want := range []string{"device:           yard", "[" + string(reason.BadCredentials) + "]", reason.Advice(reason.BadCredentials)} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status --device yard lacks %q:\n%s", want, stdout)
		}
	}
}
