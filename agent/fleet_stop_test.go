package agent_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/internal/lab"
)

// A stop that arrives while the agent checks in right before the upload
// (the check-in then fails) ends the cycle at that safe point: nothing is
// uploaded, and the verified update waits for the next start.
func TestAStopDuringTheCheckInBeforeTheUploadUploadsNothing(t *testing.T) {
	f := startFleet(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	real := f.srv.Handler()
	stopping := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.URL.Path == fleet.CheckInPath {
			if env, err := fleet.ParseEnvelope(body); err == nil {
				if payload, _, err := env.Open(fleet.TypeCheckIn); err == nil {
					if ci, err := fleet.ParseCheckIn(payload); err == nil && ci.ReleaseID != "" && ci.Step != string(journal.StepIdle) {
						cancel() // the operator stops the agent now
					}
				}
			}
		}
		real.ServeHTTP(w, r)
	}))
	defer stopping.Close()
	via := *f
	via.url = stopping.URL
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, &via)

	out := w.agent.Cycle(ctx, agent.ModeUpdateNow)
	if out.Result != agent.ResultStopped {
		t.Fatalf("result %s %v (%s), want stopped", out.Result, out.Codes, out.Message)
	}
	if st := w.state(); st.Installs != 0 || st.LastUploadSHA256 != "" {
		t.Fatalf("simulator %+v: an upload started after the stop", st)
	}
	cur := w.agent.Journal.State().Current
	if cur == nil || cur.Step == journal.StepInstall {
		t.Fatalf("journal %+v: want the verified update waiting before install", cur)
	}
	out = w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("after a restart: %s (%s), want installed", out.Result, out.Message)
	}
}
