package agent_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/manifest"
)

// newWaitingWorld is a world whose one maintenance window opens in three
// hours, after a first cycle that downloaded and verified custom 4.1.25 and
// now waits for it; start is a time inside the window.
func newWaitingWorld(t *testing.T) (w *world, start time.Time) {
	t.Helper()
	start = time.Now().Add(3 * time.Hour)
	win := start.Format("15:04") + "-" + start.Add(time.Hour).Format("15:04")
	w = newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: "maintenance_windows: [\"daily " + win + "\"]\n"})
	if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultWaiting {
		t.Fatalf("%s (%s), want waiting for the window", out.Result, out.Message)
	}
	return w, start.Add(time.Minute)
}

func TestWaitingForTheWindowIsNotACrashLoop(t *testing.T) {
	w, start := newWaitingWorld(t)
	// Far more waiting cycles than the crash-loop cap allows entries.
	for i := 0; i < journal.DefaultMaxStepEntries+10; i++ {
		if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultWaiting {
			t.Fatalf("waiting cycle %d: %s %v (%s)", i, out.Result, out.Codes, out.Message)
		}
	}
	w.agent.Now = func() time.Time { return start }
	if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultInstalled {
		t.Fatalf("inside the window: %s %v (%s)", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
}

func TestAStopBetweenTheFlashAndTheRebootRecordIsSettledByRebooting(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	// Stop the agent when it is about to record the reboot, then put the
	// journal back where a power cut just after the flash leaves it: at
	// install, the image flashed and waiting for a reboot.
	agent.SetBeforeStep(w.agent, func(s journal.Step) error {
		if s == journal.StepReboot {
			return errCrash
		}
		return nil
	})
	w.cycle(t, agent.ModeUpdateNow)
	if err := w.agent.Journal.Update(func(s *journal.State) error {
		s.Current.Step = journal.StepInstall
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := w.state(); st.Installs != 1 || st.Pending == nil {
		t.Fatalf("setup: the simulator should hold the flashed image: %+v", st)
	}
	w.reopen(t)
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want the flashed image rebooted into and confirmed", out.Result, out.Codes, out.Message)
	}
	if st := w.state(); st.Installs != 1 || st.Uploads != 1 {
		t.Fatalf("the image was flashed %d times from %d uploads, want once", st.Installs, st.Uploads)
	}
	w.assertJournalAndAudit(t)
}

func TestAStagedImageDamagedOnDiskIsDownloadedAgainNotQuarantined(t *testing.T) {
	w, start := newWaitingWorld(t)
	path := w.agent.Journal.State().Current.ImagePath
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	w.agent.Now = func() time.Time { return start }
	out := w.cycle(t, agent.ModeUpdate)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want the image downloaded again and installed", out.Result, out.Codes, out.Message)
	}
	if js := w.agent.Journal.State(); len(js.Quarantine) != 0 {
		t.Fatalf("a damaged staged file quarantined the release: %+v", js.Quarantine)
	}
	w.assertInstalledOnce(t)
}

func TestAPausedRolloutKeepsTheDownloadedImage(t *testing.T) {
	w, start := newWaitingWorld(t)
	bytes := w.lab.ImageBytes.Load()
	w.republish(t, func(m *manifest.Manifest) {
		// Paused, and at 0%: the device is not eligible either.
		m.Releases[0].Rollout = &manifest.Rollout{ID: "r", Stages: []manifest.Stage{{At: time.Now().Add(-time.Hour), Percent: 0}}, Paused: true}
	})
	out := w.cycle(t, agent.ModeUpdate)
	if out.Result != agent.ResultPaused || !hasCode(out, agent.CodeRolloutPaused) {
		t.Fatalf("%s %v, want paused", out.Result, out.Codes)
	}
	if js := w.agent.Journal.State(); js.Current == nil || !js.Current.Verified {
		t.Fatalf("the paused update was dropped: %+v", js.Current)
	}
	w.republish(t, func(m *manifest.Manifest) { m.Releases[0].Rollout = nil })
	w.agent.Now = func() time.Time { return start }
	if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultInstalled {
		t.Fatalf("resumed: %s %v (%s)", out.Result, out.Codes, out.Message)
	}
	if got := w.lab.ImageBytes.Load(); got != bytes {
		t.Fatalf("%d image bytes served after the pause, want none: the kept image should have been used", got-bytes)
	}
}

func TestAReplacedRecorderAbandonsTheUpdateInsteadOfQuarantining(t *testing.T) {
	w, start := newWaitingWorld(t)
	// An RMA swap: another recorder of the same model answers at the
	// device's address, with its own serial and credentials.
	sc := w.lab.Sim.Config()
	sc.Serial = "REPLACEMENT-0002"
	sc.TempDir = t.TempDir()
	other, err := nvrsim.Start(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ic := w.agent.Config.Device.ISAPI
	dev, err := isapi.New(isapi.Config{BaseURL: other.URL(), Username: sc.User, Password: sc.Password, PollInterval: time.Millisecond, DownGrace: time.Second,
		RequestTimeout: ic.RequestTimeout, UploadTimeout: ic.UploadTimeout, FlashTimeout: ic.FlashTimeout, RebootTimeout: ic.RebootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	w.agent.Device = dev
	w.agent.Now = func() time.Time { return start }
	if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want the replacement updated", out.Result, out.Codes, out.Message)
	}
	if js := w.agent.Journal.State(); len(js.Quarantine) != 0 {
		t.Fatalf("a replaced recorder quarantined the release: %+v", js.Quarantine)
	}
	if st := other.State(); st.Installs != 1 {
		t.Fatalf("replacement: %+v", st)
	}
	hist, err := w.agent.Journal.History(0)
	if err != nil || len(hist) != 2 || hist[0].Outcome != journal.OutcomeNothing || hist[1].Outcome != journal.OutcomeSuccess {
		t.Fatalf("history %+v (%v), want the first recorder's update abandoned, then a success", hist, err)
	}
}

func TestAPendingImageTheAgentDidNotSendIsNeverRebootedInto(t *testing.T) {
	// The simulator bricks the protected model as soon as a wrong image is
	// flashed, so the mechanism is shown on a look-alike model: a
	// technician flashed an image through the web UI and did not reboot.
	const model = "iDS-9632NXI-I8/S"
	w := newWorld(t, lab.Options{
		Device:   nvrsim.Config{Model: model, Firmware: "V4.1.20"},
		Releases: []lab.Release{{ID: "s-4.1.30", Models: []string{model}, Version: "4.1.30", Variant: "standard"}},
	})
	theirs := filepath.Join(t.TempDir(), "theirs.dav")
	if _, _, err := testimage.WriteFile(theirs, testimage.Spec{Model: model, Version: "4.1.28", Variant: "standard"}); err != nil {
		t.Fatal(err)
	}
	sc := w.lab.Sim.Config()
	ic := w.agent.Config.Device.ISAPI
	tech, err := isapi.New(isapi.Config{BaseURL: w.lab.Sim.URL(), Username: sc.User, Password: sc.Password, PollInterval: time.Millisecond,
		RequestTimeout: ic.RequestTimeout, UploadTimeout: ic.UploadTimeout, FlashTimeout: ic.FlashTimeout, RebootTimeout: ic.RebootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := tech.Install(waitCtx(t), theirs, nil); err != nil {
		t.Fatal(err)
	}
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !hasCode(out, agent.CodePendingImage) {
		t.Fatalf("%s %v (%s), want a failure with pending_image", out.Result, out.Codes, out.Message)
	}
	if st := w.state(); st.Reboots != 0 || st.Installs != 1 {
		t.Fatalf("the agent rebooted into (or flashed over) an image it did not send: %+v", st)
	}
}
