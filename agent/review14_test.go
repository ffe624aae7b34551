package agent_test

import (
	"testing"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// The install step's pre-check (a fresh identity, the image proven once
// more) sends nothing to the recorder: a recorder that stops answering
// right then keeps the update for the next cycle, which must install it
// without counting a failed attempt (the settle step must not read the
// journal's install step as an interrupted upload).
func TestARecorderSilentAtTheInstallPreCheckCountsNoAttempt(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("5s")})
	w.fast(t, 0)
	silenced := false
	agent.SetBeforeStep(w.agent, func(step journal.Step) error {
		if step == journal.StepInstall && !silenced {
			silenced = true
			w.lab.Sim.SetFaults(nvrsim.Faults{Status5xxFor: 1000})
		}
		return nil
	})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || out.InstallFailed {
		t.Fatalf("first cycle: %s %v %q (install failed %v), want a failure before anything was sent", out.Result, out.Codes, out.Message, out.InstallFailed)
	}
	w.assertUntouched(t)
	w.lab.Sim.SetFaults(nvrsim.Faults{})
	out = w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("second cycle: %s %v %q, want installed", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
	if n := w.agent.Journal.State().Attempts["custom-4.1.25"]; n != 0 {
		t.Errorf("attempts recorded for the release: %d, want none (nothing had reached the recorder)", n)
	}
	if lr := w.agent.Journal.State().LastResult; lr == nil {
		t.Fatal("no last result")
	}
}
