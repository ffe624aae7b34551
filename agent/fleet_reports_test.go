package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/postgres"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/fleet/sqlite"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/pgtest"
)

// approve approves serials through the admin API (fwctl fleet approve).
func (f *fleetServer) approve(serials ...string) server.ApproveResult {
	f.t.Helper()
	body, _ := json.Marshal(server.ApproveRequest{Serials: serials})
	req, _ := http.NewRequest("POST", f.url+"/v1/admin/approve", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fleetToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var res server.ApproveResult
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&res) != nil {
		f.t.Fatalf("approve %v: %d", serials, resp.StatusCode)
	}
	return res
}

// delivered returns the reports the fleet server stored on release, failing
// the test if the store does not answer.
func delivered(t *testing.T, st fleet.Store, release string) []fleet.ReportRecord {
	t.Helper()
	recs, err := st.Reports(context.Background(), release)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// A device whose key waits for approval is answered 409 for its reports:
// the agent keeps them, in order, and delivers them once the integrator
// approved the serial.
func TestReportsOfAPendingDeviceWaitForItsApproval(t *testing.T) {
	ctx := context.Background()
	f := startFleet(t, server.Options{Enrolment: server.EnrolApprove})
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)

	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s (%s): a pending enrolment must not stop an update the manifest allows", out.Result, out.Message)
	}
	serial := out.Identity.Serial
	d, err := f.store.Device(ctx, serial)
	if err != nil || d.Enrolment != fleet.EnrolPending {
		t.Fatalf("device %s on the server: %+v, %v; want pending", serial, d, err)
	}
	queued := w.agent.Reports.Len()
	if queued == 0 {
		t.Fatal("the install queued no report")
	}

	w.agent.FlushReports(ctx) // 409: kept
	if n := w.agent.Reports.Len(); n != queued {
		t.Fatalf("%d reports queued after a 409, want all %d kept", n, queued)
	}
	if recs := delivered(t, f.store, custom4125.ID); len(recs) != 0 {
		t.Fatalf("the server stored %d reports of a pending device", len(recs))
	}
	if rejected, _ := filepath.Glob(filepath.Join(w.lab.StateDir, "reports", "rejected", "*.json")); len(rejected) != 0 {
		t.Fatalf("reports set aside as rejected: %v", rejected)
	}

	if res := f.approve(serial); len(res.Approved) != 1 {
		t.Fatalf("approve: %+v", res)
	}
	w.agent.FlushReports(ctx)
	if n := w.agent.Reports.Len(); n != 0 {
		t.Fatalf("%d reports still queued after the approval", n)
	}
	deliveredInOrder(t, f.store, queued)
}

// swappable serves with the handler last set: a fleet server restarted
// behind the same address.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *swappable) set(h http.Handler) { s.h.Store(&h) }

// A fleet server whose database is down answers 503: the agent keeps its
// reports and delivers them when the server is back on its database.
func TestReportsWaitForTheFleetDatabaseToComeBack(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "fleet.db")
	opt := server.Options{Enrolment: server.EnrolOpen, AdminToken: fleetToken}
	start := func() (*server.Server, fleet.Store) {
		t.Helper()
		st, err := sqlite.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(st, opt)
		if err != nil {
			t.Fatal(err)
		}
		return srv, st
	}
	srv, st := start()
	front := &swappable{}
	front.set(srv.Handler())
	hs := httptest.NewServer(front)
	t.Cleanup(hs.Close)
	f := &fleetServer{t: t, url: hs.URL, store: st, srv: srv}

	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s (%s)", out.Result, out.Message)
	}
	d, err := st.Device(ctx, out.Identity.Serial)
	if err != nil || d.Enrolment != fleet.EnrolAccepted {
		t.Fatalf("device after its check-ins: %+v, %v; want enrolled", d, err)
	}
	queued := w.agent.Reports.Len()
	if queued == 0 {
		t.Fatal("the install queued no report")
	}

	// The database goes down under the running server.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	flushKeepsAll(t, w, queued) // 503: kept

	// The server restarts on its database, at the same address.
	srv.Close()
	srv2, st2 := start()
	t.Cleanup(func() { srv2.Close(); st2.Close() })
	front.set(srv2.Handler())
	w.agent.FlushReports(ctx)
	if n := w.agent.Reports.Len(); n != 0 {
		t.Fatalf("%d reports still queued with the database back", n)
	}
	recs := delivered(t, st2, custom4125.ID)
	if len(recs) == 0 {
		t.Fatal("the server stored no report with its database back")
	}
	key, err := fleet.LoadOrCreateKey(w.lab.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != queued || recs[len(recs)-1].Report.Result != fleet.ResultInstalled || recs[0].KeyID != key.ID() {
		t.Fatalf("stored %d reports (last %+v, key %s), want the %d queued, signed by %s, ending installed", len(recs), recs[len(recs)-1].Report, recs[0].KeyID, queued, key.ID())
	}
}

// A real PostgreSQL outage under a running fleet server: the server answers
// the agent's reports 503 while the database is stopped, the agent keeps
// them, and once PostgreSQL is started again on its port (the server and
// its pool carry on) the agent delivers them all, in order.
func TestReportsWaitForAPostgreSQLOutageToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, url := pgtest.OwnDatabase(t, pgtest.Options{}) // stopped below: not a shared cluster
	st, err := postgres.Open(ctx, url, 8)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(st, server.Options{Enrolment: server.EnrolOpen, AdminToken: fleetToken})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close(); st.Close() })
	f := &fleetServer{t: t, url: hs.URL, store: st, srv: srv}

	w, queued := installQueuingReports(t, f)

	if err := pg.StopServer(); err != nil {
		t.Fatal(err)
	}
	flushKeepsAll(t, w, queued) // 503: kept

	if err := pg.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	// A connection of the pool from before the restart may fail one more
	// request (503, kept): flush until the queue is empty, on a 20 ms poll
	// bounded to 30 s.
	back, cancelBack := context.WithTimeout(ctx, 30*time.Second)
	defer cancelBack()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		w.agent.FlushReports(back)
		if w.agent.Reports.Len() == 0 {
			break
		}
		select {
		case <-back.Done():
			t.Fatalf("%d reports still queued 30 s after PostgreSQL started again", w.agent.Reports.Len())
		case <-tick.C:
		}
	}
	deliveredInOrder(t, st, queued)
}

// A fleet server that answers 429 (the agent's address is over its write
// limit) stores nothing: the agent keeps its reports, in order, and
// delivers them once the address's bucket has refilled.
func TestReportsAnswered429StayQueuedAndAreDeliveredLater(t *testing.T) {
	ctx := context.Background()
	f := startFleet(t, server.Options{Enrolment: server.EnrolOpen, Limits: server.Limits{WriteRate: 1, WriteBurst: 100}})
	var clock atomic.Int64 // the server's, moved by the test
	clock.Store(time.Now().UnixNano())
	f.srv.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	w, queued := installQueuingReports(t, f)

	// Another client behind the same address uses up what is left of the
	// bucket.
	for n := 0; ; n++ {
		resp, err := http.Post(f.url+fleet.CheckInPath, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if n == 100 {
			t.Fatal("100 posts from one address and no 429")
		}
	}
	flushKeepsAll(t, w, queued) // 429: kept
	if recs := delivered(t, f.store, custom4125.ID); len(recs) != 0 {
		t.Fatalf("the server stored %d reports it answered 429", len(recs))
	}

	clock.Add(int64(time.Minute)) // 60 more at 1/s
	w.agent.FlushReports(ctx)
	if n := w.agent.Reports.Len(); n != 0 {
		t.Fatalf("%d reports still queued once the bucket refilled", n)
	}
	deliveredInOrder(t, f.store, queued)
}

// installQueuingReports links a new world to f and installs custom4125 in
// one cycle; it returns the world and the number of reports the install
// left queued (at least one).
func installQueuingReports(t *testing.T, f *fleetServer) (*world, int) {
	t.Helper()
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s (%s)", out.Result, out.Message)
	}
	queued := w.agent.Reports.Len()
	if queued == 0 {
		t.Fatal("the install queued no report")
	}
	return w, queued
}

// deliveredInOrder checks that st holds the queued reports of custom4125,
// in the order they were queued, the last one installed.
func deliveredInOrder(t *testing.T, st fleet.Store, queued int) {
	t.Helper()
	recs := delivered(t, st, custom4125.ID)
	if len(recs) != queued || recs[len(recs)-1].Report.Result != fleet.ResultInstalled {
		t.Fatalf("stored %d reports, want the %d queued ending installed", len(recs), queued)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Report.Seq <= recs[i-1].Report.Seq {
			t.Fatalf("reports stored out of order: sequence %d after %d", recs[i].Report.Seq, recs[i-1].Report.Seq)
		}
	}
}

// flushKeepsAll flushes the agent's report queue against a fleet server
// that refuses it for now (503, 429) and checks every report is still
// queued, none set aside as rejected.
func flushKeepsAll(t *testing.T, w *world, queued int) {
	t.Helper()
	w.agent.FlushReports(context.Background())
	if n := w.agent.Reports.Len(); n != queued {
		t.Fatalf("%d reports queued after a refusal for now, want all %d kept", n, queued)
	}
	if rejected, _ := filepath.Glob(filepath.Join(w.lab.StateDir, "reports", "rejected", "*.json")); len(rejected) != 0 {
		t.Fatalf("reports set aside as rejected: %v", rejected)
	}
}
