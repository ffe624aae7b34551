package agent_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/reports"
)

// fastHealth makes the health check after the install poll every
// millisecond and give up after timeout.
func fastHealth(timeout string) string {
	return "confirm:\n  health_timeout: " + timeout + "\n  health_poll: 2ms\n"
}

func TestAFormattingDiskDefersTheInstall(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("5s"),
		Device: nvrsim.Config{Disks: []nvrsim.Disk{{Status: "ok"}, {Status: "formating"}}}})
	agent.SetMaxStepEntries(w.agent, 3)
	// More deferrals than the crash-loop cap allows step entries: a
	// deferral is no crash.
	for i := 0; i < 5; i++ {
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultDeferred || !hasCode(out, agent.CodeDiskBusy) || !strings.Contains(out.Message, "disk 2 (hdd2) is formating") {
			t.Fatalf("cycle %d: %s %v %q, want deferred with disk_busy naming disk 2", i, out.Result, out.Codes, out.Message)
		}
	}
	w.assertUntouched(t)
	js := w.agent.Journal.State()
	if js.Current == nil || js.Current.Step != journal.StepWaitWindow || js.Current.Attempts != 1 || len(js.Attempts) != 0 || len(js.Quarantine) != 0 {
		t.Fatalf("journal %+v: want the update kept at wait_window, no attempt counted, nothing quarantined", js)
	}
	if n := w.state().ConfigExports; n != 0 {
		t.Errorf("%d configuration exports while deferring, want none (the backup comes after the health check)", n)
	}

	// The disk finished formatting: the next cycle installs.
	w.lab.Sim.SetFaults(nvrsim.Faults{DiskStatus: map[string]string{"2": "ok"}})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("after formatting: %s %v %s", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
}

func TestARunningUpgradeDefersTheInstall(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("5s")})
	w.agent.Device = upgradingDevice{w.agent.Device}
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultDeferred || !hasCode(out, agent.CodeUpgradeRunning) {
		t.Fatalf("%s %v %s, want deferred with upgrade_running", out.Result, out.Codes, out.Message)
	}
	w.assertUntouched(t)
}

func TestAFailedRequiredBackupDefersTheInstall(t *testing.T) {
	tests := []struct {
		name   string
		cfg    nvrsim.Config
		faults nvrsim.Faults
		code   string
	}{
		{"an export answering 500 defers", nvrsim.Config{}, nvrsim.Faults{ExportFails: true}, agent.CodeBackupFailed},
		{"an export answering notSupport defers, naming the setting", nvrsim.Config{}, nvrsim.Faults{ExportNotSupported: true}, agent.CodeBackupNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: tt.cfg, ExtraYAML: fastHealth("5s")})
			w.fast(t, 0)
			w.lab.Sim.SetFaults(tt.faults)
			out := w.cycle(t, agent.ModeUpdateNow)
			if out.Result != agent.ResultDeferred || !hasCode(out, tt.code) || !strings.Contains(out.Message, "install.config_backup") {
				t.Fatalf("%s %v %q, want deferred with %s naming install.config_backup", out.Result, out.Codes, out.Message, tt.code)
			}
			w.assertUntouched(t)
			js := w.agent.Journal.State()
			if js.Current == nil || len(js.Attempts) != 0 {
				t.Fatalf("journal %+v: want the update kept, no attempt counted", js)
			}
			if bs, _ := agent.ListBackups(w.lab.StateDir); len(bs) != 0 {
				t.Errorf("backups %+v after a failed export", bs)
			}
			if ents, _ := os.ReadDir(filepath.Join(w.lab.StateDir, agent.BackupDir)); len(ents) != 0 {
				t.Errorf("a partial backup was left behind: %v", ents)
			}
			w.lab.Sim.SetFaults(nvrsim.Faults{})
			if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
				t.Fatalf("once the export works: %s %v %s", out.Result, out.Codes, out.Message)
			}
		})
	}
}

func TestABestEffortBackupFailureDoesNotStopTheInstall(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: "install:\n  config_backup: best_effort\n" + fastHealth("5s")})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{ExportFails: true})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v %s, want installed", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
}

func TestABackupIsWrittenBeforeEveryUploadAndNeverBundled(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("5s"),
		Device: nvrsim.Config{Serial: "BKP0001", ConfigSize: 200000}})
	w.fast(t, 0)
	// Right before each upload the journal holds the baseline and the
	// backup's digest.
	var atInstall []string
	agent.SetBeforeStep(w.agent, func(step journal.Step) error {
		if step == journal.StepInstall {
			atInstall = append(atInstall, string(w.agent.Journal.State().Current.Health))
		}
		return nil
	})
	// The first upload breaks off half-way: the attempt ends and a second
	// one uploads again.
	w.lab.Sim.SetFaults(nvrsim.Faults{DropUploadAfter: 1000})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed {
		t.Fatalf("first cycle %s %v, want a failed upload", out.Result, out.Codes)
	}
	w.lab.Sim.SetFaults(nvrsim.Faults{})
	w.untilDone(t, agent.ModeUpdateNow, agent.ResultInstalled, 3)
	w.assertInstalledOnce(t)

	// Every install_started in the audit trail follows a config_backup of
	// the same attempt.
	var backups, installs int
	lastBackupAttempt := ""
	for _, e := range auditEntries(t, w.lab.StateDir) {
		switch e.Event {
		case audit.EventConfigBackup:
			backups++
			lastBackupAttempt = e.Attempt
			if !strings.Contains(e.Message, "sha256 ") {
				t.Errorf("backup entry %q lacks the SHA-256", e.Message)
			}
		case audit.EventInstallStarted:
			installs++
			if e.Attempt != lastBackupAttempt || lastBackupAttempt == "" {
				t.Errorf("install_started of attempt %s without a backup of that attempt before it", e.Attempt)
			}
		}
	}
	if installs != 2 || backups != 2 {
		t.Fatalf("%d installs started, %d backups; want 2 of each", installs, backups)
	}
	list, err := agent.ListBackups(w.lab.StateDir)
	if err != nil || len(list) != 2 {
		t.Fatalf("backups %+v, %v; want 2", list, err)
	}
	want := w.lab.Sim.ConfigFile()
	for _, b := range list {
		fi, err := os.Stat(b.Path)
		if err != nil || fi.Mode().Perm() != 0o600 || b.Size != int64(len(want)) || b.Serial != "BKP0001" {
			t.Errorf("backup %+v: mode %v, %v; want 0600 and the whole file", b, fi.Mode(), err)
		}
		if got, _ := os.ReadFile(b.Path); !bytes.Equal(got, want) {
			t.Errorf("backup %s is not the recorder's configuration file", b.Path)
		}
	}
	if len(atInstall) != 2 {
		t.Fatalf("install entered %d times, want 2", len(atInstall))
	}
	for i, rec := range atInstall {
		if !strings.Contains(rec, `"sha256":"`+list[i].SHA256+`"`) || !strings.Contains(rec, `"online":true`) {
			t.Errorf("journal before upload %d: %s; want the baseline and backup %s", i+1, rec, list[i].SHA256)
		}
	}

	// A support bundle, personal data included, never holds a backup.
	var buf bytes.Buffer
	if err := support.WriteBundle(&buf, support.BundleInput{LogDir: w.lab.LogDir, StateDir: w.lab.StateDir, IncludePersonal: true}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if strings.Contains(h.Name, agent.BackupDir+"/") || strings.HasSuffix(h.Name, ".cfg") {
			t.Errorf("the bundle holds %s", h.Name)
		}
		if bytes.Contains(body, []byte(nvrsim.ConfigMarker)) || bytes.Contains(body, want[len(want)-64:]) {
			t.Errorf("%s in the bundle holds configuration bytes", h.Name)
		}
	}
}

func TestOnlyTheLastThreeBackupsPerRecorderAreKept(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	ctx := context.Background()
	id, err := w.agent.Device.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := id
	other.Serial = "OTHER/1"
	if _, err := w.agent.BackupConfig(ctx, other); err != nil {
		t.Fatal(err)
	}
	var made []agent.Backup
	for i := 0; i < 5; i++ {
		b, err := w.agent.BackupConfig(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, *b)
	}
	list, err := agent.ListBackups(w.lab.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	var mine []agent.Backup
	others := 0
	for _, b := range list {
		if b.Serial == "OTHER_1" {
			others++
			continue
		}
		mine = append(mine, b)
	}
	if len(mine) != 3 || others != 1 {
		t.Fatalf("backups %+v: want the last 3 of this recorder and the other recorder's one", list)
	}
	for i, b := range mine {
		if b.Path != made[i+2].Path || b.SHA256 != made[i+2].SHA256 {
			t.Errorf("kept %s, want the newest three (%s)", b.Path, made[i+2].Path)
		}
	}
}

func TestChannelsThatDoNotComeBackGiveInstalledDegraded(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("150ms"),
		Device: nvrsim.Config{Channels: 8}})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{ChannelsLostAfterFlash: 2, DiskStatusAfterFlash: map[string]string{"2": "error"}})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalledDegraded || !hasCode(out, agent.CodeInstalledDegraded) {
		t.Fatalf("%s %v %s, want installed_degraded", out.Result, out.Codes, out.Message)
	}
	for _, want := range []string{"channels 7, 8 did not come back online (6 of 8 online", "disk 2 (hdd2) went from ok to error", "does not roll back"} {
		if !strings.Contains(out.Message, want) {
			t.Errorf("message %q lacks %q", out.Message, want)
		}
	}
	st := w.state()
	if st.Installs != 1 || !sameVersion(st.Firmware, "4.1.25") || st.Reboots != 1 {
		t.Fatalf("simulator %+v: want one install, one reboot, no rollback", st)
	}
	last := w.agent.Status().LastResult
	if last == nil || last.Outcome != journal.OutcomeDegraded || !strings.Contains(last.Message, "channels 7, 8") || len(last.Codes) != 1 || last.Codes[0] != agent.CodeInstalledDegraded {
		t.Fatalf("status last result %+v, want degraded naming channels 7 and 8", last)
	}
	var m bytes.Buffer
	if _, err := w.agent.Metrics.WriteTo(&m); err != nil || !strings.Contains(m.String(), "installed_degraded") {
		t.Errorf("metrics lack installed_degraded:\n%s", m.String())
	}
	found := false
	for _, e := range auditEntries(t, w.lab.StateDir) {
		found = found || (e.Event == audit.EventInstallConfirmed && strings.Contains(e.Message, "channels 7, 8"))
	}
	if !found {
		t.Error("the audit trail does not name the missing channels")
	}
	// Nothing is retried or rolled back: the next cycle has nothing to do.
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultNothing {
		t.Fatalf("next cycle %s, want nothing", out.Result)
	}
}

func TestChannelsWithinTheToleranceOrComingBackLateAreFine(t *testing.T) {
	tests := []struct {
		name   string
		cfg    nvrsim.Config
		faults nvrsim.Faults
		yaml   string
	}{
		{"channels back after a delay within health_timeout", nvrsim.Config{Channels: 8, ChannelReturnDelay: 50 * time.Millisecond}, nvrsim.Faults{}, fastHealth("20s")},
		{"two lost channels within a tolerance of two", nvrsim.Config{Channels: 8}, nvrsim.Faults{ChannelsLostAfterFlash: 2}, fastHealth("20s") + "  channel_tolerance: 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: tt.cfg, ExtraYAML: tt.yaml})
			w.fast(t, 0)
			w.lab.Sim.SetFaults(tt.faults)
			if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
				t.Fatalf("%s %v %s, want installed", out.Result, out.Codes, out.Message)
			}
			w.assertInstalledOnce(t)
		})
	}
}

func TestAnOldRecorderWithoutTheEndpointsStillUpdates(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: nvrsim.Config{OldFirmware: true}, ExtraYAML: fastHealth("5s")})
	w.fast(t, 0)
	// With the default (required) backup, the install waits and says
	// which setting decides.
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultDeferred || !hasCode(out, agent.CodeBackupNotSupported) || !strings.Contains(out.Message, "install.config_backup: best_effort") {
		t.Fatalf("%s %v %q, want deferred naming install.config_backup", out.Result, out.Codes, out.Message)
	}
	w.assertUntouched(t)

	w2 := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: nvrsim.Config{OldFirmware: true}, ExtraYAML: "install:\n  config_backup: best_effort\n" + fastHealth("5s")})
	w2.fast(t, 0)
	if out := w2.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("best_effort on old firmware: %s %v %s, want installed", out.Result, out.Codes, out.Message)
	}
	w2.assertInstalledOnce(t)
}

// auditEntries reads the audit trail.
func auditEntries(t *testing.T, dir string) []audit.Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		e, err := audit.ParseEntry(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// upgradingDevice is a device that says it is flashing an image.
type upgradingDevice struct{ device.Device }

func (d upgradingDevice) Health(ctx context.Context) (device.Health, error) {
	h, err := d.Device.(device.HealthReader).Health(ctx)
	h.Upgrade = device.InstallStatus{Upgrading: true, Percent: 40}
	return h, err
}

// validatingSink is a report server that accepts only what the reports
// package (the integrator's server) accepts.
type validatingSink struct {
	mu       sync.Mutex
	accepted []report.Report
	refused  []string
}

func (s *validatingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rep, _, err := reports.ParseReport(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.refused = append(s.refused, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.accepted = append(s.accepted, rep)
	w.WriteHeader(http.StatusNoContent)
}

func TestDeferralsAndDegradedInstallsAreReportedInTheServersTerms(t *testing.T) {
	sink := &validatingSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: "report:\n  url: " + srv.URL + "\n" + fastHealth("100ms"),
		Device: nvrsim.Config{Channels: 8}})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{DiskStatus: map[string]string{"1": "reparing"}})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultDeferred {
		t.Fatalf("%s, want deferred", out.Result)
	}
	w.lab.Sim.SetFaults(nvrsim.Faults{ChannelsLostAfterFlash: 2})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalledDegraded {
		t.Fatalf("%s, want installed_degraded", out.Result)
	}
	w.agent.FlushReports(context.Background())
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.refused) > 0 {
		t.Fatalf("the server refused reports: %v", sink.refused)
	}
	var deferred, degraded bool
	for _, r := range sink.accepted {
		deferred = deferred || slices.Contains(r.Codes, agent.CodeDiskBusy)
		degraded = degraded || (r.Result == "installed" && slices.Contains(r.Codes, agent.CodeInstalledDegraded) && strings.Contains(r.Message, "channels 7, 8"))
	}
	if !deferred || !degraded {
		t.Errorf("reports %+v: want the deferral (disk_busy) and the installed report with installed_degraded naming channels 7, 8", sink.accepted)
	}
}

// refusingHealthDevice refuses the credentials on health reads (after
// `after` successful reads) and configuration exports; it counts reads.
type refusingHealthDevice struct {
	device.Device
	after int
	reads *int
}

var errRefused = &device.Error{Op: "health", Code: "badCredentials", Err: device.ErrBadCredentials}

func (d refusingHealthDevice) Health(ctx context.Context) (device.Health, error) {
	*d.reads++
	if *d.reads > d.after {
		return device.Health{}, errRefused
	}
	return d.Device.(device.HealthReader).Health(ctx)
}

func (d refusingHealthDevice) ExportConfig(ctx context.Context, w io.Writer) (int64, error) {
	return d.Device.(device.ConfigExporter).ExportConfig(ctx, w)
}

func TestARefusedLoginDuringTheHealthChecksIsNeverRepeated(t *testing.T) {
	t.Run("before the upload it fails the cycle instead of deferring", func(t *testing.T) {
		w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("5s")})
		reads := 0
		w.agent.Device = refusingHealthDevice{Device: w.agent.Device, reads: &reads}
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultFailed || !hasCode(out, "badCredentials") || reads != 1 {
			t.Fatalf("%s %v after %d reads, want one read and a failure with badCredentials", out.Result, out.Codes, reads)
		}
		w.assertUntouched(t)
	})
	t.Run("after the flash it stops polling at once", func(t *testing.T) {
		w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("30s")})
		w.fast(t, 0)
		reads := 0
		w.agent.Device = refusingHealthDevice{Device: w.agent.Device, after: 1, reads: &reads}
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultInstalledDegraded || reads != 2 || !strings.Contains(out.Message, "refused") {
			t.Fatalf("%s %q after %d reads, want installed_degraded after exactly one refused read", out.Result, out.Message, reads)
		}
	})
}
