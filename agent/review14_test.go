package agent_test

import (
	"context"
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

// A recorder waiting for the site's install slot has sent nothing: the
// journal must not say `install` while it waits, or an agent killed there
// would, on its next start, settle an upload that never happened as an
// interrupted install (a counted failed attempt). A held release the same.
func TestWaitingAtTheSiteGateLeavesNoInstallStepBehind(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: fastHealth("5s")})
	w.fast(t, 0)
	waiting := make(chan journal.Step, 1)
	w.agent.InstallGate = func(ctx context.Context, _, _ string) (func(agent.Outcome), error) {
		waiting <- w.agent.Journal.State().Current.Step
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan agent.Outcome, 1)
	go func() { done <- w.agent.Cycle(ctx, agent.ModeUpdateNow) }()
	if step := <-waiting; step == journal.StepInstall {
		t.Errorf("the journal says %s while the recorder waits at the gate", step)
	}
	cancel()
	<-done
	w.assertUntouched(t)
	if js := w.agent.Journal.State(); js.Current == nil || js.Current.Step == journal.StepInstall || js.Attempts["custom-4.1.25"] != 0 {
		t.Fatalf("after a stop at the gate: %+v, attempts %v; want the update kept before install, no attempt", js.Current, js.Attempts)
	}

	// Held by the site: the same.
	w.agent.InstallGate = func(context.Context, string, string) (func(agent.Outcome), error) {
		return nil, agent.ErrInstallHeld
	}
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultHeld {
		t.Fatalf("held: %s %v %s", out.Result, out.Codes, out.Message)
	}
	if js := w.agent.Journal.State(); js.Current == nil || js.Current.Step == journal.StepInstall {
		t.Fatalf("after a hold: %+v; want the update kept before install", js.Current)
	}

	w.agent.InstallGate = nil
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("after the gate: %s %v %s, want installed", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
	if n := w.agent.Journal.State().Attempts["custom-4.1.25"]; n != 0 {
		t.Errorf("attempts %d, want none", n)
	}
}
