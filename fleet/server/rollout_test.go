package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/manifest"
)

// serialsInBuckets returns n serials whose bucket for rollout id is in
// [lo, hi): devices a stage of that percent range admits.
func serialsInBuckets(t *testing.T, id, prefix string, lo, hi, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n && i < 1_000_000; i++ {
		s := fmt.Sprintf("%s%06d", prefix, i)
		if b := manifest.Bucket(id, s); b >= lo && b < hi {
			out = append(out, s)
		}
	}
	if len(out) < n {
		t.Fatalf("found %d serials with buckets in [%d, %d), want %d", len(out), lo, hi, n)
	}
	return out
}

// putRollout sends body as the rollout of release id and returns the
// status and the server's reason (its "error" field, or the whole body).
func (f *fixture) putRollout(id string, body []byte) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest("PUT", f.http.URL+"/v1/admin/releases/"+id+"/rollout", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(b)
}

func (f *fixture) release(id string) (server.ReleaseJSON, bool) {
	f.t.Helper()
	var rels []server.ReleaseJSON
	if st := f.admin("GET", "/v1/admin/releases", nil, &rels); st != http.StatusOK {
		f.t.Fatalf("list releases: %d", st)
	}
	for _, r := range rels {
		if r.ID == id {
			return r, true
		}
	}
	return server.ReleaseJSON{}, false
}

// TestAutoPauseCountsTheCurrentStageOfTheRollout: with the release's
// rollout set through the admin API (fwctl fleet rollout), the auto-pause
// counts only the devices of the stage in force: failures of an earlier
// stage's devices do not pause it, failures of the current stage's do, and
// the cause names the stage.
func TestAutoPauseCountsTheCurrentStageOfTheRollout(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{Enrolment: server.EnrolOpen, MaxFailureRate: 0.25, MinInstalls: 3})
		now := time.Now().UTC().Truncate(time.Second)
		// Stage 1 (5%) opened 3 h ago, stage 2 (50%) 1 h ago and is in
		// force; stage 3 opens tomorrow.
		ro := manifest.Rollout{ID: "r1-rollout", Stages: []manifest.Stage{
			{At: now.Add(-3 * time.Hour), Percent: 5},
			{At: now.Add(-time.Hour), Percent: 50},
			{At: now.Add(24 * time.Hour), Percent: 100},
		}}
		body, _ := json.Marshal(ro)
		if st, reason := f.putRollout("r1", body); st != http.StatusOK {
			t.Fatalf("set rollout: %d %s", st, reason)
		}
		if rel, ok := f.release("r1"); !ok || rel.Rollout == nil || len(rel.Rollout.Stages) != 3 || rel.Rollout.ID != ro.ID || rel.Paused {
			t.Fatalf("release after the rollout was set: %+v (found %v)", rel, ok)
		}

		stage1 := serialsInBuckets(t, ro.ID, "S1-", 0, 500, 3)    // admitted by stage 1 (5%)
		stage2 := serialsInBuckets(t, ro.ID, "S2-", 500, 5000, 3) // admitted by stage 2 (50%)
		agents := map[string]*agent{}
		for _, sn := range append(append([]string{}, stage1...), stage2...) {
			agents[sn] = f.agent(sn)
			if _, err := agents[sn].checkIn(); err != nil {
				t.Fatal(err)
			}
		}
		report := func(sn, result string, codes ...string) {
			t.Helper()
			step := "confirm"
			if result == fleet.ResultFailed {
				step = "install"
			}
			if err := agents[sn].report("r1", step, result, codes...); err != nil {
				t.Fatalf("report of %s: %v", sn, err)
			}
		}

		// Every stage-1 device failed: 3 of 3 finished, far above 25%, but
		// stage 1 is not the stage in force.
		for _, sn := range stage1 {
			report(sn, fleet.ResultFailed, "badFlash")
		}
		if f.held() {
			t.Fatal("paused by the failures of stage 1 while stage 2 is in force")
		}
		report(stage2[0], fleet.ResultInstalled)
		report(stage2[1], fleet.ResultFailed, "upgrade_timeout")
		if f.held() {
			t.Fatal("paused with 2 finished installs in stage 2, below --min-installs 3")
		}
		report(stage2[2], fleet.ResultInstalled)
		if !f.held() {
			t.Fatal("not paused at 1 failure of 3 finished in stage 2 (33%), above the 25% limit")
		}
		rel, _ := f.release("r1")
		if !rel.Paused || rel.PausedBy != server.ActorAutoPause {
			t.Fatalf("release %+v: want paused by %s", rel, server.ActorAutoPause)
		}
		for _, want := range []string{"stage 2 (50%)", "1 failed of 3 finished", "upgrade_timeout 1"} {
			if !strings.Contains(rel.PauseCause, want) {
				t.Errorf("pause cause %q lacks %q", rel.PauseCause, want)
			}
		}
		if strings.Contains(rel.PauseCause, "badFlash") {
			t.Errorf("pause cause %q counts stage 1's failures", rel.PauseCause)
		}
		reply, err := agents[stage2[0]].checkIn()
		if h, held := reply.Held("r1"); err != nil || !held || !strings.Contains(h.Reason, "stage 2 (50%)") {
			t.Fatalf("check-in reply %+v, %v: want a hold on r1 naming stage 2", reply, err)
		}
	})
}

func TestSetRolloutRefusesARolloutNoAgentWouldAccept(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{})
	at := func(h int) string { return time.Date(2026, 12, 1, h, 0, 0, 0, time.UTC).Format(time.RFC3339) }
	for _, tt := range []struct {
		name, body, want string
	}{
		{"a body that is not JSON is refused", `stages: 5%`, "malformed rollout JSON"},
		{"an unknown field is refused, not dropped", `{"id":"r","stage":[{"at":"` + at(1) + `","percent":5}]}`, `unknown field "stage"`},
		{"two objects are refused", `{"id":"r"} {"id":"s"}`, "data after the rollout object"},
		{"a rollout without id is refused", `{"stages":[{"at":"` + at(1) + `","percent":5}]}`, "rollout.id is missing"},
		{"a stage without time is refused", `{"id":"r","stages":[{"percent":5}]}`, "rollout.stages[0].at is missing"},
		{"a percent above 100 is refused", `{"id":"r","stages":[{"at":"` + at(1) + `","percent":150}]}`, "150 must be between 0 and 100"},
		{"stages out of time order are refused", `{"id":"r","stages":[{"at":"` + at(2) + `","percent":5},{"at":"` + at(1) + `","percent":50}]}`, "rollout.stages[1].at must be later"},
		{"a shrinking percent is refused", `{"id":"r","stages":[{"at":"` + at(1) + `","percent":50},{"at":"` + at(2) + `","percent":5}]}`, "a rollout never shrinks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, reason := f.putRollout("r1", []byte(tt.body))
			if st != http.StatusBadRequest || !strings.Contains(reason, tt.want) {
				t.Fatalf("answer %d %s, want 400 saying %q", st, reason, tt.want)
			}
			if rel, ok := f.release("r1"); ok {
				t.Fatalf("a refused rollout was stored: %+v", rel)
			}
		})
	}
	t.Run("a sane rollout is stored", func(t *testing.T) {
		body := `{"id":"r","stages":[{"at":"` + at(1) + `","percent":5},{"at":"` + at(2) + `","percent":100}],"include":["PILOT-1"]}`
		if st, reason := f.putRollout("r1", []byte(body)); st != http.StatusOK {
			t.Fatalf("answer %d %s", st, reason)
		}
		rel, ok := f.release("r1")
		if !ok || rel.Rollout == nil || len(rel.Rollout.Stages) != 2 || rel.Rollout.Include[0] != "PILOT-1" {
			t.Fatalf("stored %+v", rel)
		}
	})
	t.Run("setting the rollout keeps a pause", func(t *testing.T) {
		f.admin("POST", "/v1/admin/releases/r1/pause", server.PauseRequest{Cause: "site B"}, nil)
		body := `{"id":"r","stages":[{"at":"` + at(1) + `","percent":25}]}`
		if st, reason := f.putRollout("r1", []byte(body)); st != http.StatusOK {
			t.Fatalf("answer %d %s", st, reason)
		}
		rel, _ := f.release("r1")
		if !rel.Paused || rel.PauseCause != "site B" || rel.Rollout.Stages[0].Percent != 25 {
			t.Fatalf("release after a new rollout: %+v", rel)
		}
		if hs, err := f.store.Held(context.Background()); err != nil || len(hs) != 1 {
			t.Fatalf("held %+v, %v", hs, err)
		}
	})
}

// A report stored by a COMMIT whose outcome was unknown was answered 503,
// and no auto-pause check was queued for it; the agent sends it again and
// it is a replay, ignored. If it was the report that crossed the failure
// limit, the replay still has its release checked, and paused.
func TestAReplayedReportHasItsReleaseChecked(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		ctx := context.Background()
		f := newFixture(t, open(t), server.Options{Enrolment: server.EnrolOpen, MaxFailureRate: 0.25, MinInstalls: 1})
		a := f.agent("SN1")
		if _, err := a.checkIn(); err != nil {
			t.Fatal(err)
		}
		env, rep, err := a.key.SignReport(fleet.Report{Report: report.Report{ID: "x", DeviceSerial: "SN1", Model: "iDS-9632NXI-I8/16S",
			ReleaseID: "r1", Step: "install", Result: fleet.ResultFailed, Codes: []string{"badFlash"}, AgentVersion: "1.0"}})
		if err != nil {
			t.Fatal(err)
		}
		// What the lost COMMIT stored: the report and its sequence.
		if err := f.store.Update(ctx, func(tx fleet.Tx) error {
			ds, err := tx.DevicesForUpdate(ctx, []string{"SN1"})
			if err != nil {
				return err
			}
			d := ds["SN1"]
			d.ReportSeq = rep.Seq
			if err := tx.PutDevices(ctx, []*fleet.Device{d}); err != nil {
				return err
			}
			return tx.AddReports(ctx, []fleet.ReportRecord{{Received: time.Now().UTC(), Report: rep, KeyID: d.KeyID}})
		}); err != nil {
			t.Fatal(err)
		}
		if f.held() {
			t.Fatal("r1 paused before any check")
		}
		if st, body := f.post(fleet.ReportPath, env.Marshal()); st != http.StatusOK || !strings.Contains(body, "ignored") {
			t.Fatalf("the report sent again: %d %s, want 200 ignored", st, body)
		}
		if !f.held() {
			t.Fatal("r1 not paused at 1 failed of 1 finished after the replay of its failure")
		}
		if rel, _ := f.release("r1"); rel.PausedBy != server.ActorAutoPause || !strings.Contains(rel.PauseCause, "1 failed of 1 finished") {
			t.Fatalf("release %+v: want paused by %s for 1 failed of 1 finished", rel, server.ActorAutoPause)
		}
		if n := f.reportsOn("r1"); n != 1 {
			t.Fatalf("%d reports on r1, want the one stored", n)
		}
	})
}
