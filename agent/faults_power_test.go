package agent_test

import (
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// assertInterruptedNotQuarantined checks what a lost flash must leave: an
// install_interrupted failure of the install, the attempt ended and
// counted, the release not quarantined, the recorder on its old firmware.
func (w *world) assertInterruptedNotQuarantined(t *testing.T, out agent.Outcome) {
	t.Helper()
	if out.Result != agent.ResultFailed || !hasCode(out, agent.CodeInstallInterrupted) || !out.InstallFailed {
		t.Fatalf("%s %v install failed %v (%s), want a failed install with %s", out.Result, out.Codes, out.InstallFailed, out.Message, agent.CodeInstallInterrupted)
	}
	js := w.agent.Journal.State()
	if len(js.Quarantine) != 0 || js.Current != nil || js.Attempts[custom4125.ID] != 1 {
		t.Fatalf("journal: quarantine %v, current %+v, attempts %v; want one attempt counted and no quarantine", js.Quarantine, js.Current, js.Attempts)
	}
	if st := w.state(); st.Bricked || !sameVersion(st.Firmware, "4.1.20") {
		t.Fatalf("simulator: firmware %s, bricked %v; want the old firmware", st.Firmware, st.Bricked)
	}
}

// TestAFlashLostToAPowerCutIsRetriedNotQuarantined: a recorder that loses
// power during the flash comes back "not upgrading, 0%" on its old
// firmware. The running agent and a restarted one apply the same rule (a
// flash is finished only at 100% or with the new version reported): both
// call it install_interrupted, end the attempt without quarantining the
// release, and the next attempt installs.
func TestAFlashLostToAPowerCutIsRetriedNotQuarantined(t *testing.T) {
	t.Run("the agent watching the flash", func(t *testing.T) {
		w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: nvrsim.Config{FlashDuration: 200 * time.Millisecond}})
		w.fast(t, 0)
		w.lab.Sim.SetFaults(nvrsim.Faults{LoseFlashAt: 50})
		out := w.cycle(t, agent.ModeUpdateNow)
		w.assertInterruptedNotQuarantined(t, out)
		if st := w.state(); st.Reboots != 0 {
			t.Fatalf("the agent rebooted the recorder %d time(s) after a lost flash", st.Reboots)
		}
		w.lab.Sim.SetFaults(nvrsim.Faults{})
		if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
			t.Fatalf("%s %v (%s), want installed by the next attempt", out.Result, out.Codes, out.Message)
		}
		w.assertInstalledOnce(t)
	})
	t.Run("an agent restarted after the power cut", func(t *testing.T) {
		w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
		w.fast(t, 0)
		// The agent dies during the flash (its journal at install), and the
		// recorder loses power before the flash was taken.
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
		w.lab.Sim.PowerCut()
		w.reopenFast(t, 0)
		w.assertInterruptedNotQuarantined(t, w.cycle(t, agent.ModeUpdateNow))
		if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
			t.Fatalf("%s %v (%s), want installed by the next attempt", out.Result, out.Codes, out.Message)
		}
		if st := w.state(); st.Bricked || !sameVersion(st.Firmware, "4.1.25") {
			t.Fatalf("simulator: firmware %s, bricked %v", st.Firmware, st.Bricked)
		}
		w.assertJournalAndAudit(t)
	})
}

// TestALyingMirrorDoesNotQuarantineTheRelease: one proxy answering with a
// wrong Content-Range is a misbehaving server, not evidence against the
// release: the update stays at download and installs once a good server
// answers.
func TestALyingMirrorDoesNotQuarantineTheRelease(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{bigCustom}})
	w.fast(t, 0)
	img := w.image(t, bigCustom.ID)
	own := w.lab.Manifest().Releases[0].Image.URLs[0]
	liar := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeShift: 1, CutAt: []int64{int64(len(img)) / 2}})
	w.serveImageFrom(t, liar.URL+"/image.dav")
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !hasCode(out, "bad_content_range") || out.InstallFailed {
		t.Fatalf("%s %v (%s), want a failed download with bad_content_range", out.Result, out.Codes, out.Message)
	}
	js := w.agent.Journal.State()
	if len(js.Quarantine) != 0 || js.Current == nil || js.Current.Step != journal.StepDownload || js.Attempts[bigCustom.ID] != 0 {
		t.Fatalf("journal: quarantine %v, current %+v, attempts %v; want the update kept at download", js.Quarantine, js.Current, js.Attempts)
	}
	w.serveImageFrom(t, own)
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want installed from a good server", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
}
