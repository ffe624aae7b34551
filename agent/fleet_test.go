package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/fleet/sqlite"
	"github.com/fwagent/fwagent/internal/lab"
)

const fleetToken = "fleet-admin-token-0123456789abcdef"

// fleetServer is a real fleet server (SQLite) on a loopback port.
type fleetServer struct {
	t     *testing.T
	url   string
	store fleet.Store
	srv   *server.Server
}

func startFleet(t *testing.T, opts ...server.Options) *fleetServer {
	t.Helper()
	opt := server.Options{Enrolment: server.EnrolOpen}
	if len(opts) > 0 {
		opt = opts[0]
	}
	opt.AdminToken = fleetToken
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(st, opt)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close(); st.Close() })
	return &fleetServer{t: t, url: hs.URL, store: st, srv: srv}
}

func (f *fleetServer) admin(action, release string) {
	f.t.Helper()
	body, _ := json.Marshal(server.PauseRequest{Cause: "test " + action})
	req, _ := http.NewRequest("POST", f.url+"/v1/admin/releases/"+release+"/"+action, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fleetToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		f.t.Fatalf("%s %s: %d", action, release, resp.StatusCode)
	}
}

// linkFleet rebuilds the world's agent with fleet.url set (the real
// wiring: device key in the state dir, signed report queue) and a check-in
// at every cycle; edit, when given, changes the config after that.
func (w *world) linkFleet(t *testing.T, f *fleetServer, edit ...func(*config.Config)) {
	t.Helper()
	_ = w.agent.Close()
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Fleet.URL, cfg.Fleet.CheckInInterval = f.url, time.Nanosecond
	for _, e := range edit {
		e(cfg)
	}
	a, err := agent.New(cfg, agent.Options{Backend: backend.New, Version: "test", Log: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	a.Fleet.(*fleet.Client).HTTPClient.RetryMax = 0
	w.agent = a
	t.Cleanup(func() { _ = a.Close() })
}

func TestAFleetHoldStopsARelease(t *testing.T) {
	f := startFleet(t)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)

	t.Run("a release held before the download is not downloaded", func(t *testing.T) {
		f.admin("pause", custom4125.ID)
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultPaused || len(out.Codes) != 1 || out.Codes[0] != agent.CodeFleetHold {
			t.Fatalf("result %s %v (%s), want paused by fleet_hold", out.Result, out.Codes, out.Message)
		}
		if st := w.state(); st.Installs != 0 {
			t.Fatalf("installs %d under a hold", st.Installs)
		}
		if cur := w.agent.Journal.State().Current; cur != nil {
			t.Fatalf("an update was started under a hold: %+v", cur)
		}
	})

	t.Run("a hold that arrives during the download stops the upload", func(t *testing.T) {
		f.admin("resume", custom4125.ID)
		agent.SetBeforeStep(w.agent, func(step journal.Step) error {
			if step == journal.StepDownload {
				f.admin("pause", custom4125.ID)
			}
			return nil
		})
		out := w.cycle(t, agent.ModeUpdateNow)
		agent.SetBeforeStep(w.agent, nil)
		if out.Result != agent.ResultPaused || out.Codes[0] != agent.CodeFleetHold {
			t.Fatalf("result %s %v (%s), want held before the upload", out.Result, out.Codes, out.Message)
		}
		if st := w.state(); st.Installs != 0 || st.Bricked {
			t.Fatalf("simulator %+v: the upload went on under a hold", st)
		}
		cur := w.agent.Journal.State().Current
		if cur == nil || cur.Step == journal.StepInstall {
			t.Fatalf("journal %+v: want the verified update waiting before install", cur)
		}
	})

	t.Run("after resume the waiting update installs", func(t *testing.T) {
		f.admin("resume", custom4125.ID)
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultInstalled {
			t.Fatalf("result %s (%s), want installed", out.Result, out.Message)
		}
		if st := w.state(); st.Installs != 1 {
			t.Fatalf("installs %d, want 1", st.Installs)
		}
		// The reports went to the fleet server, signed by the key the
		// agent created in its state dir; the device is enrolled with it.
		w.agent.FlushReports(context.Background())
		if n := w.agent.Reports.Len(); n != 0 {
			t.Fatalf("%d reports still queued", n)
		}
		recs, err := f.store.Reports(context.Background(), custom4125.ID)
		if err != nil || len(recs) == 0 || recs[len(recs)-1].Report.Result != "installed" {
			t.Fatalf("reports on the fleet server: %+v, %v", recs, err)
		}
		key, err := fleet.LoadOrCreateKey(w.lab.StateDir)
		if err != nil || recs[0].KeyID != key.ID() {
			t.Fatalf("report signed by %s, the agent's key is %s (%v)", recs[0].KeyID, key.ID(), err)
		}
		d, err := f.store.Device(context.Background(), recs[0].Report.DeviceSerial)
		if err != nil || d.KeyID != key.ID() || d.Model != protected {
			t.Fatalf("device on the fleet server: %+v, %v", d, err)
		}
	})
}

func TestAFleetServerDownDoesNotStopUpdates(t *testing.T) {
	f := startFleet(t)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)
	w.agent.Fleet.(*fleet.Client).BaseURL = "http://127.0.0.1:1" // nothing listens
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s (%s): an unreachable fleet server must not stop an update the manifest allows", out.Result, out.Message)
	}
}

// A site's recorder may wait long for its install slot (another recorder
// flashing): a pause made meanwhile still stops its upload, since the
// check-in before the upload comes after the slot.
func TestAPauseWhileWaitingForTheInstallSlotStopsTheUpload(t *testing.T) {
	f := startFleet(t)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)
	gave := 0
	w.agent.InstallGate = func(_ context.Context, _, release string) (func(agent.Outcome), error) {
		if release != "" {
			f.admin("pause", release) // while this recorder waited for its slot
		}
		return func(agent.Outcome) { gave++ }, nil
	}
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultPaused || len(out.Codes) != 1 || out.Codes[0] != agent.CodeFleetHold {
		t.Fatalf("result %s %v (%s), want held before the upload", out.Result, out.Codes, out.Message)
	}
	if st := w.state(); st.Installs != 0 {
		t.Fatalf("%d uploads: the release was paused before the upload", st.Installs)
	}
	if gave != 1 {
		t.Fatalf("the install slot was given back %d times, want once", gave)
	}
	if cur := w.agent.Journal.State().Current; cur == nil || cur.Step == journal.StepInstall {
		t.Fatalf("journal %+v: want the verified update waiting before install", cur)
	}

	w.agent.InstallGate = nil
	f.admin("resume", custom4125.ID)
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("after the resume: %s (%s), want installed", out.Result, out.Message)
	}
}
