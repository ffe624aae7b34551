package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/internal/pgtest"
)

// health asks /healthz and returns the status and body.
func (f *fixture) health() (int, string) {
	f.t.Helper()
	resp, err := http.Get(f.http.URL + "/healthz")
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// eventually calls try until it returns nil; when ctx ends first the test
// fails with what and try's last error. Tries are 20 ms apart: a poll
// interval, not a guess at how long the database takes to come back.
func eventually(ctx context.Context, t *testing.T, what string, try func() error) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still failing at the end of the wait: %v", what, err)
		case <-tick.C:
		}
	}
}

// unavailable fails the test unless err is the 503 of a store error: a
// reason saying nothing was stored, and not permanent (the agent keeps
// the message and sends it again).
func unavailable(t *testing.T, what string, err error) {
	t.Helper()
	var se *fleet.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("%s with PostgreSQL down = %v, want 503", what, err)
	}
	if !strings.Contains(se.Reason, "database is unavailable") || !strings.Contains(se.Reason, "nothing was stored") {
		t.Fatalf("%s with PostgreSQL down answered 503 %q, want a reason saying the database is unavailable and nothing was stored", what, se.Reason)
	}
	if se.Permanent() {
		t.Fatalf("%s: a 503 must not be permanent: the agent keeps its message", what)
	}
}

// A real PostgreSQL outage under a running server: while the server of
// the database is stopped, a check-in and a report are answered 503 with
// a reason, counted as store errors, nothing of them is stored, and
// /healthz answers 503. Once PostgreSQL is started again on its port, the
// pool dials anew: the check-in, signed again with a new sequence, and the
// report, sent as the agent queued it, are stored.
func TestAPostgreSQLOutageAnswers503AndTheServerRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, url := pgtest.OwnDatabase(t, pgtest.Options{}) // stopped below: not the shared cluster
	f := newFixture(t, postgresStore(t, url), server.Options{Enrolment: server.EnrolOpen})
	a := f.agent("SN1")
	if _, err := a.checkIn(); err != nil {
		t.Fatalf("check-in with PostgreSQL up: %v", err)
	}
	if err := a.report("r1", "download", ""); err != nil {
		t.Fatalf("report with PostgreSQL up: %v", err)
	}
	before, err := f.store.Device(ctx, "SN1")
	if err != nil {
		t.Fatal(err)
	}
	if n := f.reportsOn("r1"); n != 1 {
		t.Fatalf("%d reports stored with PostgreSQL up, want 1", n)
	}
	if code, body := f.health(); code != http.StatusOK {
		t.Fatalf("/healthz with PostgreSQL up = %d %s", code, body)
	}
	// Write the accepted counts now: with nothing left to write, the
	// counter flusher does not fail (and count a store error) in the outage.
	if err := f.srv.FlushCounters(ctx); err != nil {
		t.Fatal(err)
	}
	errsBefore := f.srv.StoreErrors()

	if err := pg.StopServer(); err != nil {
		t.Fatal(err)
	}
	upgraded := func(ci *fleet.CheckIn) { ci.Firmware = "V4.1.25" }
	_, err = a.checkIn(upgraded)
	unavailable(t, "a check-in", err)
	// The report as the agent queues it: signed once, sent until stored.
	env, queued, err := a.key.SignReport(fleet.Report{Report: report.Report{ID: "r1-install-SN1", DeviceSerial: "SN1",
		Model: "iDS-9632NXI-I8/16S", ReleaseID: "r1", Step: "confirm", Result: fleet.ResultInstalled, AgentVersion: "1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	unavailable(t, "a report", a.client.SendReport(ctx, env))
	if n := f.srv.StoreErrors() - errsBefore; n != 2 {
		t.Fatalf("%d store errors counted for the outage's check-in and report, want 2", n)
	}
	if code, body := f.health(); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with PostgreSQL down = %d %s, want 503", code, body)
	}

	if err := pg.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	back, cancelBack := context.WithTimeout(ctx, 30*time.Second)
	defer cancelBack()
	eventually(back, t, "/healthz with PostgreSQL started again", func() error {
		if code, body := f.health(); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	// Nothing of the outage was stored. A read that meets a connection
	// of the pool from before the restart runs again on a live one.
	d, err := f.store.Device(ctx, "SN1")
	if err != nil {
		t.Fatalf("read the device with PostgreSQL back: %v", err)
	}
	if d.Firmware != before.Firmware || d.CheckInSeq != before.CheckInSeq {
		t.Fatalf("after the outage the device has firmware %s and check-in sequence %d, want %s and %d: the check-in answered 503 was stored",
			d.Firmware, d.CheckInSeq, before.Firmware, before.CheckInSeq)
	}
	recs, err := f.store.Reports(ctx, "r1")
	if err != nil {
		t.Fatalf("read the reports with PostgreSQL back: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("after the outage %d reports on r1, want the 1 from before: the report answered 503 was stored", len(recs))
	}

	// Sent again, both are stored at the first try.
	if _, err := a.checkIn(upgraded); err != nil {
		t.Fatalf("the check-in sent again with PostgreSQL back: %v", err)
	}
	if err := a.client.SendReport(ctx, env); err != nil {
		t.Fatalf("the queued report sent again with PostgreSQL back: %v", err)
	}

	d, err = f.store.Device(ctx, "SN1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Firmware != "V4.1.25" || d.CheckInSeq <= before.CheckInSeq {
		t.Fatalf("after the check-in sent again the device has firmware %s and check-in sequence %d, want V4.1.25 above %d", d.Firmware, d.CheckInSeq, before.CheckInSeq)
	}
	if recs := f.reportsOn("r1"); recs != 2 {
		t.Fatalf("%d reports on r1 after the queued one was sent again, want 2", recs)
	}
	recs, err = f.store.Reports(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Report.ID != queued.ID || last.Report.Seq != queued.Seq || last.Report.Result != fleet.ResultInstalled || last.KeyID != a.key.ID() {
		t.Fatalf("stored %+v (key %s), want the queued report %s sequence %d signed by %s", last.Report, last.KeyID, queued.ID, queued.Seq, a.key.ID())
	}
	var counts server.CountersJSON
	if code := f.admin("GET", "/v1/admin/counters", nil, &counts); code != http.StatusOK {
		t.Fatalf("admin counters with PostgreSQL back = %d", code)
	}
	if n := counts.Counters[fleet.CounterDBErrors]; n != 2 {
		t.Fatalf("%s = %d, want the 2 requests answered 503 in the outage", fleet.CounterDBErrors, n)
	}
	if code, body := f.health(); code != http.StatusOK {
		t.Fatalf("/healthz with PostgreSQL back = %d %s", code, body)
	}
}

// A restart of PostgreSQL under a busy server fails no request. Three
// check-ins are held inside the store, each in a transaction open on its
// own pooled connection, while the database restarts: each transaction
// runs once more on a live connection and is stored once. What follows,
// on connections pooled from before the restart, succeeds at the first
// try: a check-in, a report, admin reads and a pause. No 503 all along.
func TestAPostgreSQLRestartUnderABusyServerFailsNoRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, url := pgtest.OwnDatabase(t, pgtest.Options{}) // restarted below: not the shared cluster
	held := []string{"HELD-1", "HELD-2", "HELD-3"}
	f, gs, letGo := holdTheWriters(t, postgresStore(t, url), 1, held...)
	errsBefore := f.srv.StoreErrors()

	if err := pg.StopServer(); err != nil {
		t.Fatal(err)
	}
	if err := pg.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	letGo() // every held check-in answered 200
	if n, want := gs.batches.Load(), 2*int32(len(held)); n != want {
		t.Fatalf("the held check-ins' transactions ran %d times, want %d: once on the connection the restart ended, once more on a live one", n, want)
	}
	for _, sn := range held {
		evs, err := f.store.Events(ctx, sn, 0)
		if err != nil {
			t.Fatal(err)
		}
		enrolled := 0
		for _, e := range evs {
			if e.Kind == fleet.EventEnrolled {
				enrolled++
			}
		}
		if enrolled != 1 {
			t.Fatalf("%s enrolled %d times, want once: %+v", sn, enrolled, evs)
		}
	}

	a := f.agent("SN1")
	if _, err := a.checkIn(); err != nil {
		t.Fatalf("a check-in after the restart: %v", err)
	}
	if err := a.report("r1", "download", ""); err != nil {
		t.Fatalf("a report after the restart: %v", err)
	}
	var devices []server.DeviceJSON
	if code := f.admin("GET", "/v1/admin/devices", nil, &devices); code != http.StatusOK || len(devices) != len(held)+1 {
		t.Fatalf("admin devices after the restart = %d with %d devices, want 200 with %d", code, len(devices), len(held)+1)
	}
	if code := f.admin("POST", "/v1/admin/releases/r1/pause", server.PauseRequest{Cause: "after the restart"}, nil); code != http.StatusOK {
		t.Fatalf("admin pause after the restart = %d, want 200", code)
	}
	if code, body := f.health(); code != http.StatusOK {
		t.Fatalf("/healthz after the restart = %d %s", code, body)
	}
	c := f.counters()
	if c[fleet.CounterCheckIns] != int64(len(held))+1 || c[fleet.CounterReports] != 1 {
		t.Fatalf("counted %d check-ins and %d reports, want %d and 1: each stored once", c[fleet.CounterCheckIns], c[fleet.CounterReports], len(held)+1)
	}
	if n := f.srv.StoreErrors() - errsBefore; n != 0 {
		t.Fatalf("%d requests answered 503 across the restart, want none", n)
	}
}
