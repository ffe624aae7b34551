package agent_test

import (
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

func TestRecorderDroppingTheUploadMidImageIsRetriedNextCycle(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{bigCustom}})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{DropUploadAfter: bigCustom.Size / 2})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !out.Transient {
		t.Fatalf("%s %v transient=%v (%s), want a transient failure", out.Result, out.Codes, out.Transient, out.Message)
	}
	if st := w.state(); st.Installs != 0 || st.Upgrading || st.LastUpload == nil || st.LastUpload.Result != "dropped" {
		t.Fatalf("simulator after the dropped upload: %+v", st)
	}
	if js := w.agent.Journal.State(); js.Attempts[bigCustom.ID] != 1 || js.Current != nil || len(js.Quarantine) != 0 {
		t.Fatalf("journal: attempts %v, current %+v, quarantine %v; want one failed attempt, not quarantined", js.Attempts, js.Current, js.Quarantine)
	}
	w.lab.Sim.SetFaults(nvrsim.Faults{})
	bytes := w.lab.ImageBytes.Load()
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want installed on the next cycle", out.Result, out.Codes, out.Message)
	}
	if w.lab.ImageBytes.Load() != bytes {
		t.Error("the verified image was downloaded again for the second attempt")
	}
	w.assertInstalledOnce(t)
}

func TestRecorderThatNeverComesBackIsNeverFlashedTwice(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.fast(t, 500*time.Millisecond)
	w.lab.Sim.SetFaults(nvrsim.Faults{NeverReturnFromReboot: true})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !hasCode(out, "rebootTimeout") {
		t.Fatalf("%s %v (%s), want failed with rebootTimeout", out.Result, out.Codes, out.Message)
	}
	for i := 0; i < 3; i++ {
		w.reopenFast(t, 500*time.Millisecond)
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultFailed || !out.Transient {
			t.Fatalf("restart %d: %s %v, want a transient failure while the device is away", i, out.Result, out.Codes)
		}
	}
	st := w.state()
	if st.Uploads != 1 || st.Installs != 1 || st.Bricked {
		t.Fatalf("simulator: uploads %d, installs %d, bricked %v; want exactly one flash", st.Uploads, st.Installs, st.Bricked)
	}
	js := w.agent.Journal.State()
	if js.Current == nil || js.Current.Step != journal.StepConfirm {
		t.Fatalf("journal: %+v, want the update waiting to be confirmed", js.Current)
	}
	w.assertJournalAndAudit(t)
}

func TestRecorderBackOnOldFirmwareIsAFailureAndQuarantines(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{ReturnOnOldFirmware: true})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !hasCode(out, string(verify.CodePostInstallMismatch)) {
		t.Fatalf("%s %v (%s), want failed with post_install_mismatch", out.Result, out.Codes, out.Message)
	}
	js := w.agent.Journal.State()
	if !js.Quarantined(custom4125.ID, 1) || js.Current != nil {
		t.Fatalf("journal: quarantine %v, current %+v", js.Quarantine, js.Current)
	}
	w.cycle(t, agent.ModeUpdateNow)
	if st := w.state(); st.Uploads != 1 || st.Installs != 1 || !sameVersion(st.Firmware, "4.1.20") {
		t.Fatalf("simulator: %d uploads, %d installs, firmware %s; want one flash and no second try", st.Uploads, st.Installs, st.Firmware)
	}
	w.assertJournalAndAudit(t)
}

func TestBusyRecorderIsRetriedUntilItInstalls(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{BusyFor: 9})
	outs := w.untilDone(t, agent.ModeUpdateNow, agent.ResultInstalled, 6)
	if len(outs) < 2 || !outs[0].Transient || !hasCode(outs[0], "deviceBusy") {
		t.Fatalf("first outcome %s %v transient=%v, want a transient deviceBusy failure", outs[0].Result, outs[0].Codes, outs[0].Transient)
	}
	w.assertInstalledOnce(t)
}

func TestWrongCredentialsCostOneLoginAndNeverLockTheAccount(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Password: "not-the-password", Device: nvrsim.Config{LockAfter: 3}})
	w.fast(t, 0)
	for i := 0; i < 10; i++ {
		if i == 5 {
			w.reopenFast(t, 0) // a restarted daemon remembers too
		}
		out := w.cycle(t, agent.ModeUpdate)
		if out.Result != agent.ResultFailed || out.Transient {
			t.Fatalf("cycle %d: %s %v transient=%v, want a non-transient failure", i, out.Result, out.Codes, out.Transient)
		}
		if st := w.state(); st.TotalFailedLogins != 1 || st.Locked {
			t.Fatalf("cycle %d: %d failed logins, locked %v; want exactly one failed login ever", i, st.TotalFailedLogins, st.Locked)
		}
	}
	// An operator running update --now tries once more, deliberately.
	w.cycle(t, agent.ModeUpdateNow)
	if st := w.state(); st.TotalFailedLogins != 2 || st.Locked {
		t.Fatalf("after update --now: %d failed logins, locked %v", st.TotalFailedLogins, st.Locked)
	}
	w.assertUntouched(t)
}

func TestTransientInstallFailuresAreBoundedThenAHigherSerialLiftsTheQuarantine(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: "max_attempts: 3\n"})
	w.fast(t, 0)
	w.lab.Sim.SetFaults(nvrsim.Faults{RejectUpload: "deviceBusy"})
	for i := 1; i <= 3; i++ {
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultFailed || !out.Transient {
			t.Fatalf("attempt %d: %s %v transient=%v, want a transient failure", i, out.Result, out.Codes, out.Transient)
		}
		js := w.agent.Journal.State()
		if js.Attempts[custom4125.ID] != i || js.Quarantined(custom4125.ID, 1) != (i == 3) {
			t.Fatalf("attempt %d: attempts %v, quarantine %v", i, js.Attempts, js.Quarantine)
		}
	}
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultNothing || w.state().Uploads != 3 {
		t.Fatalf("%s with %d uploads: a quarantined release was tried again", out.Result, w.state().Uploads)
	}
	w.lab.Sim.SetFaults(nvrsim.Faults{})
	w.republish(t, func(*manifest.Manifest) {})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want installed after a higher serial", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
}
