package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// TestFleetEndToEnd: three recorders in nvrsim, one fleet server, one
// release. The second recorder's install fails; the server pauses the
// release on its own; a forged report and a replay are refused and change
// no count; the third recorder does not start the paused release; after
// the resume it installs.
func TestFleetEndToEnd(t *testing.T) {
	f := startFleet(t, server.Options{Enrolment: server.EnrolOpen, MaxFailureRate: 0.3, MinInstalls: 2})
	ctx := context.Background()
	worlds := map[string]*world{}
	for _, sn := range []string{"NVR-A", "NVR-B", "NVR-C"} {
		w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: nvrsim.Config{Serial: sn}})
		w.linkFleet(t, f)
		worlds[sn] = w
	}
	a, b, c := worlds["NVR-A"], worlds["NVR-B"], worlds["NVR-C"]

	if out := a.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("A: %s (%s)", out.Result, out.Message)
	}
	a.agent.FlushReports(ctx)

	b.lab.Sim.SetFaults(nvrsim.Faults{RejectUpload: "badFlash"})
	if out := b.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultFailed {
		t.Fatalf("B: %s (%s), want failed", out.Result, out.Message)
	}
	// Keep B's signed reports as an attacker on the wire would, to replay them.
	queued := readQueue(t, b.lab.StateDir)
	b.agent.FlushReports(ctx)

	f.srv.AutoPauseSettled()
	held, err := f.store.Held(ctx)
	if err != nil || len(held) != 1 || held[0].ID != custom4125.ID || held[0].PausedBy != server.ActorAutoPause {
		t.Fatalf("after 1 failure of 2 finished installs (50%% > 30%%): held %+v, %v", held, err)
	}
	before, _ := f.store.Reports(ctx, custom4125.ID)

	// A forged report: A's serial under another key says A failed.
	_, priv, _ := ed25519.GenerateKey(nil)
	forger := fleet.NewClient(f.url, fleet.NewDeviceKey(priv))
	forger.HTTPClient.RetryMax = 0
	err = forger.Report(ctx, fleet.Report{Report: report.Report{ID: "forged", DeviceSerial: "NVR-A", ReleaseID: custom4125.ID, Step: "confirm", Result: fleet.ResultFailed, AgentVersion: "x"}})
	var se *fleet.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Fatalf("forged report: %v, want 403", err)
	}
	// Replays of B's reports.
	for _, body := range queued {
		resp, err := http.Post(f.url+fleet.ReportPath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("replayed report: %d, want 200 ignored", resp.StatusCode)
		}
	}
	// A replayed report that finishes an install queues an auto-pause
	// check of its release: let those checks run now, while the release
	// is paused, or one could run after the resume below and pause it
	// again on the same reports.
	f.srv.AutoPauseSettled()
	after, _ := f.store.Reports(ctx, custom4125.ID)
	if len(after) != len(before) || len(queued) == 0 {
		t.Fatalf("reports on the release: %d before, %d after the forgery and %d replays", len(before), len(after), len(queued))
	}
	if err := f.srv.FlushCounters(ctx); err != nil {
		t.Fatal(err)
	}
	counters, _ := f.store.Counters(ctx)
	if counters[fleet.CounterForged] != 1 || counters[fleet.CounterReplayed] != int64(len(queued)) {
		t.Fatalf("counters %v, want 1 forgery and %d replays", counters, len(queued))
	}

	// C does not start the paused release.
	if out := c.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultPaused || out.Codes[0] != agent.CodeFleetHold {
		t.Fatalf("C under the auto-pause: %s %v (%s)", out.Result, out.Codes, out.Message)
	}
	if st := c.state(); st.Installs != 0 {
		t.Fatalf("C installed %d times under a hold", st.Installs)
	}

	// Resume: C installs.
	f.admin("resume", custom4125.ID)
	if out := c.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("C after resume: %s (%s)", out.Result, out.Message)
	}
	log, _ := f.store.Pauses(ctx, custom4125.ID, 10)
	if len(log) != 2 || log[1].Actor != server.ActorAutoPause || log[0].Paused {
		t.Fatalf("pause log %+v", log)
	}
}

func readQueue(t *testing.T, stateDir string) [][]byte {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(stateDir, "reports", "*.json"))
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
