package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// pauseOnce pauses release on f the first time it is called, from any
// goroutine (an install progress callback may run on the upload's); the
// error is kept for the test to check.
type pauseOnce struct {
	f       *fleetServer
	release string
	once    sync.Once
	err     error
	called  bool
}

func (p *pauseOnce) pause() {
	p.once.Do(func() {
		p.called = true
		body, _ := json.Marshal(server.PauseRequest{Cause: "site B reports badFlash"})
		req, _ := http.NewRequest("POST", p.f.url+"/v1/admin/releases/"+p.release+"/pause", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fleetToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			p.err = err
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.err = fmt.Errorf("pause answered %d", resp.StatusCode)
		}
	})
}

func (p *pauseOnce) check(t *testing.T) {
	t.Helper()
	if !p.called || p.err != nil {
		t.Fatalf("the pause was not made (called %v): %v", p.called, p.err)
	}
	held, err := p.f.store.Held(context.Background())
	if err != nil || len(held) != 1 || held[0].ID != p.release {
		t.Fatalf("held on the server: %+v, %v; want %s", held, err, p.release)
	}
}

// A pause made once the upload started never interrupts the flash: the
// hold is asked before the upload only, so the install is uploaded,
// flashed, rebooted and confirmed, and its reports reach the server.
func TestAFleetPauseDuringTheInstallNeverInterruptsTheFlash(t *testing.T) {
	for _, tt := range []struct {
		name string
		arm  func(w *world, p *pauseOnce)
	}{
		{"a pause during the upload", func(w *world, p *pauseOnce) {
			w.agent.InstallProgress = func(ip device.InstallProgress) {
				if ip.Phase == "upload" {
					p.pause()
				}
			}
		}},
		{"a pause while the recorder writes its flash", func(w *world, p *pauseOnce) {
			w.agent.InstallProgress = func(ip device.InstallProgress) {
				if ip.Phase == "flash" {
					p.pause()
				}
			}
		}},
		{"a pause before the reboot", func(w *world, p *pauseOnce) {
			agent.SetBeforeStep(w.agent, func(s journal.Step) error {
				if s == journal.StepReboot {
					p.pause()
				}
				return nil
			})
		}},
		{"a pause before the confirm", func(w *world, p *pauseOnce) {
			agent.SetBeforeStep(w.agent, func(s journal.Step) error {
				if s == journal.StepConfirm {
					p.pause()
				}
				return nil
			})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startFleet(t)
			w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
			w.linkFleet(t, f)
			p := &pauseOnce{f: f, release: custom4125.ID}
			tt.arm(w, p)
			out := w.cycle(t, agent.ModeUpdateNow)
			p.check(t)
			if out.Result != agent.ResultInstalled {
				t.Fatalf("result %s %v (%s), want installed: a hold must not stop a flash under way", out.Result, out.Codes, out.Message)
			}
			w.assertInstalledOnce(t)
			w.agent.FlushReports(context.Background())
			recs := delivered(t, f.store, custom4125.ID)
			if len(recs) == 0 || recs[len(recs)-1].Report.Result != fleet.ResultInstalled {
				t.Fatalf("the server has %d reports on the release, want the last one installed", len(recs))
			}
		})
	}
}

// A hold the agent learns while its update waits to be confirmed (the
// confirm failed for now, and the check-in at the end of that cycle got
// the hold) does not stop the next cycle from settling and confirming the
// flash already made.
func TestAKnownFleetHoldDoesNotStopTheConfirmOfAFlashedUpdate(t *testing.T) {
	f := startFleet(t)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)
	w.fast(t, 300*time.Millisecond)
	p := &pauseOnce{f: f, release: custom4125.ID}
	w.agent.InstallProgress = func(ip device.InstallProgress) {
		if ip.Phase == "upload" {
			p.pause()
		}
	}
	// The recorder answers busy from the confirm on, past reboot_timeout.
	agent.SetBeforeStep(w.agent, func(s journal.Step) error {
		if s == journal.StepConfirm {
			w.lab.Sim.SetFaults(nvrsim.Faults{BusyFor: 1 << 20})
		}
		return nil
	})
	out := w.cycle(t, agent.ModeUpdateNow)
	p.check(t)
	if out.Result != agent.ResultFailed || !out.Transient {
		t.Fatalf("first cycle: %s %v (%s), want a transient failure of the confirm", out.Result, out.Codes, out.Message)
	}
	if cur := w.agent.Journal.State().Current; cur == nil || cur.Step != journal.StepConfirm {
		t.Fatalf("journal %+v, want the update waiting at confirm", cur)
	}
	// The cycle's last check-in told the server the device waits at
	// confirm, after the pause: its answer carried the hold.
	d, err := f.store.Device(context.Background(), out.Identity.Serial)
	if err != nil || d.Step != string(journal.StepConfirm) || d.ReleaseID != custom4125.ID {
		t.Fatalf("device on the server %+v, %v: want a check-in at confirm of %s", d, err, custom4125.ID)
	}
	agent.SetBeforeStep(w.agent, nil)
	w.lab.Sim.SetFaults(nvrsim.Faults{})

	out = w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("second cycle: %s %v (%s), want the flashed update confirmed despite the hold", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
	// A new install of the held release would not start: the hold stays.
	if held, _ := f.store.Held(context.Background()); len(held) != 1 {
		t.Fatalf("held %+v after the confirm", held)
	}
}
