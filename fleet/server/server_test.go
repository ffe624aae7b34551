package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

func statusOf(err error) int {
	var se *fleet.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

func TestOpenEnrolmentFirstKeyWinsAndForgeriesAreRefused(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{Enrolment: server.EnrolOpen})
		real, forger := f.agent("SN1"), f.agent("SN1")
		reply, err := real.checkIn()
		if err != nil || reply.Enrolment != fleet.EnrolAccepted {
			t.Fatalf("first check-in: %+v, %v", reply, err)
		}
		if err := real.report("r1", "install", fleet.ResultInstalled); err != nil {
			t.Fatal(err)
		}
		if _, err := forger.checkIn(); statusOf(err) != http.StatusForbidden {
			t.Fatalf("a check-in under another key = %v, want 403", err)
		}
		if err := forger.report("r1", "install", fleet.ResultFailed, "badFlash"); statusOf(err) != http.StatusForbidden {
			t.Fatalf("a report under another key = %v, want 403", err)
		}
		if n := f.reportsOn("r1"); n != 1 {
			t.Fatalf("%d reports on r1, want only the real one", n)
		}
		if c := f.counters(); c[fleet.CounterForged] != 2 {
			t.Fatalf("counters %v, want 2 forgeries", c)
		}
		d, _ := f.store.Device(context.Background(), "SN1")
		if d.KeyID != real.key.ID() {
			t.Fatalf("the serial is bound to %s, want the first key %s", d.KeyID, real.key.ID())
		}
	})
}

func TestApproveEnrolmentKeepsUnknownKeysPending(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{})
	a := f.agent("SN1")
	reply, err := a.checkIn()
	if err != nil || reply.Enrolment != fleet.EnrolPending {
		t.Fatalf("check-in of an unknown key: %+v, %v", reply, err)
	}
	err = a.report("r1", "download", "")
	var se *fleet.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusConflict || se.Permanent() {
		t.Fatalf("a report of a pending device = %v, want a 409 the agent retries", err)
	}
	var devs []server.DeviceJSON
	f.admin("GET", "/v1/admin/devices?state=pending_enrolment", nil, &devs)
	if len(devs) != 1 || devs[0].Serial != "SN1" {
		t.Fatalf("pending devices = %+v", devs)
	}
	var res server.ApproveResult
	if st := f.admin("POST", "/v1/admin/approve", server.ApproveRequest{Serials: []string{"SN1", "SN2"}}, &res); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	if len(res.Approved) != 1 || len(res.Registered) != 1 {
		t.Fatalf("approve result %+v", res)
	}
	if reply, err := a.checkIn(); err != nil || reply.Enrolment != fleet.EnrolAccepted {
		t.Fatalf("check-in after approval: %+v, %v", reply, err)
	}
	if err := a.report("r1", "download", ""); err != nil {
		t.Fatal(err)
	}
	// SN2 was approved before its first check-in: never seen, then its first key wins.
	f.admin("GET", "/v1/admin/devices?state=never_seen", nil, &devs)
	if len(devs) != 1 || devs[0].Serial != "SN2" {
		t.Fatalf("never seen = %+v", devs)
	}
	if reply, err := f.agent("SN2").checkIn(); err != nil || reply.Enrolment != fleet.EnrolAccepted {
		t.Fatalf("first check-in of a pre-approved serial: %+v, %v", reply, err)
	}
}

func TestReplaysAreIgnoredAndCounted(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen})
	a := f.agent("SN1")
	env, _, _ := a.key.SignCheckIn(fleet.CheckIn{Serial: "SN1", Model: "m", AgentVersion: "1"})
	if st, body := f.post(fleet.CheckInPath, env.Marshal()); st != 200 {
		t.Fatalf("check-in: %d %s", st, body)
	}
	if st, body := f.post(fleet.CheckInPath, env.Marshal()); st != http.StatusConflict {
		t.Fatalf("replayed check-in: %d %s", st, body)
	}
	old, _, _ := a.key.SignReport(fleet.Report{Report: report.Report{ID: "a", DeviceSerial: "SN1", ReleaseID: "r1", Step: "install", Result: fleet.ResultFailed}})
	newer, _, _ := a.key.SignReport(fleet.Report{Report: report.Report{ID: "b", DeviceSerial: "SN1", ReleaseID: "r1", Step: "install", Result: fleet.ResultInstalled}})
	if st, body := f.post(fleet.ReportPath, newer.Marshal()); st != 200 || !strings.Contains(body, "stored") {
		t.Fatalf("report: %d %s", st, body)
	}
	for _, env := range []*fleet.Envelope{newer, old} { // a replay, then a reordered older report
		if st, body := f.post(fleet.ReportPath, env.Marshal()); st != 200 || !strings.Contains(body, "ignored") {
			t.Fatalf("replayed report: %d %s", st, body)
		}
	}
	if n := f.reportsOn("r1"); n != 1 {
		t.Fatalf("%d reports stored, want 1", n)
	}
	if c := f.counters(); c[fleet.CounterReplayed] != 3 {
		t.Fatalf("counters %v, want 3 replays", c)
	}
}

func TestBadInputIsRefusedWithAReasonAndNothingStored(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen})
	a := f.agent("SN1")
	good, _, _ := a.key.SignCheckIn(fleet.CheckIn{Serial: "SN1", Model: "m", AgentVersion: "1"})
	tampered := *good
	tampered.Sig = good.Sig[:10] + strings.Repeat("A", len(good.Sig)-12) + "=="
	cases := []struct {
		name, path string
		body       []byte
		status     int
		reason     string
	}{
		{"malformed JSON", fleet.CheckInPath, []byte(`{"type":`), 400, "not a signed envelope"},
		{"a bad signature", fleet.CheckInPath, tampered.Marshal(), 403, "signature"},
		{"a check-in sent as a report", fleet.ReportPath, good.Marshal(), 400, "want"},
		{"an oversized body", fleet.CheckInPath, []byte(`{"type":"` + strings.Repeat("x", fleet.MaxBody) + `"}`), 413, "larger than"},
		{"a payload that is not a check-in", fleet.CheckInPath, fleet.SealBytes(ed25519Key(), fleet.TypeCheckIn, []byte(`{"seq":1}`)).Marshal(), 400, "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body := f.post(c.path, c.body)
			if st != c.status || !strings.Contains(body, c.reason) {
				t.Fatalf("answer %d %s, want %d with %q", st, body, c.status, c.reason)
			}
		})
	}
	if ds, _ := f.store.Devices(context.Background(), fleet.DeviceFilter{}); len(ds) != 0 {
		t.Fatalf("devices stored from bad input: %+v", ds)
	}
	c := f.counters()
	if c[fleet.CounterBadSignature] != 1 || c[fleet.CounterMalformed] != 2 || c[fleet.CounterOversized] != 1 || c[fleet.CounterWrongType] != 1 {
		t.Fatalf("counters %v", c)
	}
}

func TestAdminAPINeedsTheToken(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{})
	for _, tok := range []string{"", "Bearer wrong", "Basic " + adminToken} {
		req, _ := http.NewRequest("GET", f.http.URL+"/v1/admin/devices", nil)
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", tok, resp.StatusCode)
		}
	}
	srv, _ := server.New(sqliteStore(t), server.Options{})
	defer srv.Close()
	req, _ := http.NewRequest("GET", "/v1/admin/devices", nil)
	rec := newRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("admin API without a configured token: %d, want 403", rec.Code)
	}
}

// The viewer token reads what the admin token reads and changes nothing.
func TestViewerTokenReadsAndChangesNothing(t *testing.T) {
	const viewer = "viewer-token-0123456789abcdef"
	f := newFixture(t, sqliteStore(t), server.Options{ViewerToken: viewer})
	do := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/v1/admin/devices", "/v1/admin/releases", "/v1/admin/counters", "/v1/admin/releases/r1/reports"} {
		if code := do("GET", path, ""); code != http.StatusOK {
			t.Errorf("viewer GET %s: %d, want 200", path, code)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/admin/releases/r1/pause", `{"cause":"x"}`},
		{"POST", "/v1/admin/releases/r1/resume", `{}`},
		{"POST", "/v1/admin/approve", `{"serials":["NVR-1"]}`},
		{"POST", "/v1/admin/forget", `{"serials":["NVR-1"]}`},
		{"PUT", "/v1/admin/releases/r1/rollout", `{}`},
		{"POST", "/v1/admin/import", ``},
	} {
		if code := do(c.method, c.path, c.body); code != http.StatusForbidden {
			t.Errorf("viewer %s %s: %d, want 403", c.method, c.path, code)
		}
	}
	if held, _ := f.store.Held(context.Background()); len(held) != 0 {
		t.Fatalf("the viewer paused %v", held)
	}
	for _, opt := range []server.Options{{ViewerToken: viewer}, {AdminToken: viewer, ViewerToken: viewer}} {
		if _, err := server.New(sqliteStore(t), opt); err == nil {
			t.Errorf("New(%+v) accepted a viewer token without an admin token of its own", opt)
		}
	}
}

func TestPauseHoldsAndResume(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen})
	a := f.agent("SN1")
	if st := f.admin("POST", "/v1/admin/releases/r1/pause", server.PauseRequest{Cause: "bad reports from site A"}, nil); st != 200 {
		t.Fatalf("pause: %d", st)
	}
	reply, err := a.checkIn()
	if err != nil {
		t.Fatal(err)
	}
	h, held := reply.Held("r1")
	if !held || !strings.Contains(h.Reason, "bad reports from site A") || !strings.Contains(h.Reason, "tester@host") {
		t.Fatalf("reply %+v: want a hold on r1 with who and why", reply)
	}
	f.admin("POST", "/v1/admin/releases/r1/resume", server.PauseRequest{Cause: "fixed"}, nil)
	if reply, _ := a.checkIn(); len(reply.Holds) != 0 {
		t.Fatalf("holds after resume: %+v", reply.Holds)
	}
	log, _ := f.store.Pauses(context.Background(), "r1", 10)
	if len(log) != 2 || log[0].Paused || log[1].Actor != "admin (tester@host)" {
		t.Fatalf("pause log %+v", log)
	}
}

func TestAutoPauseOnFailureRate(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{Enrolment: server.EnrolOpen, MaxFailureRate: 0.25, MinInstalls: 3})
		as := []*agent{f.agent("A"), f.agent("B"), f.agent("C"), f.agent("D")}
		for _, a := range as {
			if _, err := a.checkIn(); err != nil {
				t.Fatal(err)
			}
		}
		// A forger's failures must not count: D's serial under another key.
		forger := f.agent("D")
		for i := 0; i < 3; i++ {
			_ = forger.report("r1", "install", fleet.ResultFailed, "badFlash")
		}
		_ = as[0].report("r1", "confirm", fleet.ResultInstalled)
		_ = as[1].report("r1", "install", fleet.ResultFailed, "badFlash")
		if held := f.held(); held {
			t.Fatal("paused with 2 finished installs, below --min-installs 3")
		}
		_ = as[2].report("r1", "confirm", fleet.ResultInstalled)
		if held := f.held(); !held {
			t.Fatal("not paused at 1 failure of 3 finished (33%), above the 25% limit")
		}
		reply, err := as[3].checkIn()
		if err != nil {
			t.Fatal(err)
		}
		h, held := reply.Held("r1")
		if !held || !strings.Contains(h.Reason, server.ActorAutoPause) || !strings.Contains(h.Reason, "1 failed of 3 finished") {
			t.Fatalf("reply %+v: want a hold on r1 saying the auto-pause and why", reply)
		}
		if c := f.counters(); c[fleet.CounterAutoPauses] != 1 || c[fleet.CounterForged] != 3 {
			t.Fatalf("counters %v", c)
		}
		// A check asked for while the release is paused, or running when
		// the operator resumes it, does not pause it again on the reports
		// it was resumed on.
		before := f.srv.Resumes("r1")
		_ = as[0].report("r1", "confirm", fleet.ResultInstalled)
		f.admin("POST", "/v1/admin/releases/r1/resume", server.PauseRequest{Cause: "cause found, fixed"}, nil)
		f.srv.RunAutoPauseCheck("r1", before)
		if held := f.held(); held {
			t.Fatal("a check begun or asked for before the resume paused the release again")
		}
		if reply, _ := as[3].checkIn(); len(reply.Holds) != 0 {
			t.Fatalf("holds after resume: %+v", reply.Holds)
		}
		log, _ := f.store.Pauses(context.Background(), "r1", 10)
		if len(log) != 2 || log[1].Actor != server.ActorAutoPause || log[0].Actor != "admin (tester@host)" {
			t.Fatalf("pause log %+v", log)
		}
		// The next finished install after the resume is judged with the
		// stage as it stands (docs/fleet.md: find the cause first).
		_ = as[3].report("r1", "install", fleet.ResultFailed, "badFlash")
		if held := f.held(); !held {
			t.Fatal("a failure after the resume, with the stage above the limit, did not pause the release")
		}
	})
}

func (f *fixture) held() bool {
	f.srv.AutoPauseSettled()
	hs, err := f.store.Held(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return len(hs) > 0
}

func TestDatabaseDownAnswers503(t *testing.T) {
	store := sqliteStore(t)
	f := newFixture(t, store, server.Options{Enrolment: server.EnrolOpen})
	store.Close()
	a := f.agent("SN1")
	_, err := a.checkIn()
	if statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("check-in with the database closed = %v, want 503", err)
	}
	if err := a.report("r1", "download", ""); statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("report with the database closed = %v, want 503", err)
	}
	var se *fleet.StatusError
	if errors.As(err, &se) && se.Permanent() {
		t.Fatal("a 503 must not be permanent: the agent keeps its queue")
	}
}

func TestImportOldReports(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{})
	lines := `{"received":"2026-11-30T12:00:00Z","report":{"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"OLD1","model":"m","release_id":"r1","step":"confirm","progress":100,"result":"success","agent_version":"0.9"}}
{"received":"2026-11-30T12:00:01Z","report":{"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"OLD1","model":"m","release_id":"r1","step":"confirm","progress":100,"result":"success","agent_version":"0.9"}}
not json
`
	req, _ := http.NewRequest("POST", f.http.URL+"/v1/admin/import", strings.NewReader(lines))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res server.ImportResult
	_ = json.NewDecoder(resp.Body).Decode(&res)
	if res.Reports != 1 || res.Duplicates != 1 || len(res.Bad) != 1 || res.Devices != 1 {
		t.Fatalf("import result %+v", res)
	}
	recs, _ := f.store.Reports(context.Background(), "r1")
	if len(recs) != 1 || recs[0].Report.Result != fleet.ResultInstalled || recs[0].KeyID != fleet.ImportKeyID {
		t.Fatalf("imported %+v", recs)
	}
	d, err := f.store.Device(context.Background(), "OLD1")
	if err != nil || d.StateAt(time.Now()) != fleet.StateNeverSeen {
		t.Fatalf("imported device %+v, %v", d, err)
	}
}

func TestTwoServersOnOnePostgreSQLServeOneFleet(t *testing.T) {
	url := pgtestURL(t)
	a := newFixture(t, postgresStore(t, url), server.Options{Enrolment: server.EnrolOpen, HoldCacheTTL: time.Nanosecond})
	b := newFixture(t, postgresStore(t, url), server.Options{Enrolment: server.EnrolOpen, HoldCacheTTL: time.Nanosecond})
	dev := a.agent("SN1")
	if _, err := dev.checkIn(); err != nil {
		t.Fatal(err)
	}
	// The same device through the other server: same key, next sequence.
	dev.client.BaseURL = b.http.URL
	if _, err := dev.checkIn(); err != nil {
		t.Fatalf("check-in through the second server: %v", err)
	}
	// A forger on server B for a serial enrolled through A.
	forger := b.agent("SN1")
	if _, err := forger.checkIn(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("forged check-in through the second server = %v, want 403", err)
	}
	// A pause made on A holds agents checking in on B.
	a.admin("POST", "/v1/admin/releases/r1/pause", server.PauseRequest{Cause: "stop"}, nil)
	reply, err := dev.checkIn()
	if err != nil {
		t.Fatal(err)
	}
	if _, held := reply.Held("r1"); !held {
		t.Fatalf("a pause made on server A does not hold an agent of server B: %+v", reply)
	}
	var devs []server.DeviceJSON
	b.admin("GET", "/v1/admin/devices", nil, &devs)
	if len(devs) != 1 {
		t.Fatalf("server B lists %+v", devs)
	}
}

// A check-in answer lists every paused release with its cause: with far
// more pauses than any fleet has, it still fits what the agent reads (an
// answer over the limit would fail the check-in, and an agent whose
// check-in before an upload fails goes on with the holds it knew).
func TestACheckInAnswerCarriesHundredsOfPauses(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen, HoldCacheTTL: time.Nanosecond})
	const n = 400
	cause := strings.Repeat("c", 256)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("release-%03d-%s", i, strings.Repeat("x", 100))
		if code := f.admin("POST", "/v1/admin/releases/"+id+"/pause", map[string]string{"cause": cause}, nil); code != http.StatusOK {
			t.Fatalf("pause %d: %d", i, code)
		}
	}
	reply, err := f.agent("SN1").checkIn()
	if err != nil {
		t.Fatalf("a check-in with %d pauses: %v", n, err)
	}
	if len(reply.Holds) != n {
		t.Fatalf("%d holds, want %d", len(reply.Holds), n)
	}
}

// A check-in whose answer is lost after the server stored it is tried
// again signed afresh: the retry is no replay, and the agent gets the
// holds (a retry of the same signed check-in was refused with 409, and the
// agent went on without them).
func TestARetriedCheckInIsSignedAfreshAndGetsTheHolds(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen, HoldCacheTTL: time.Nanosecond})
	if code := f.admin("POST", "/v1/admin/releases/r1/pause", map[string]string{"cause": "bad batch"}, nil); code != http.StatusOK {
		t.Fatalf("pause: %d", code)
	}
	var lost atomic.Bool
	lost.Store(true)
	real := f.srv.Handler()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fleet.CheckInPath && lost.CompareAndSwap(true, false) {
			rec := httptest.NewRecorder()
			real.ServeHTTP(rec, r) // stored ...
			if rec.Code != http.StatusOK {
				t.Errorf("first try: %d %s", rec.Code, rec.Body)
			}
			http.Error(w, "the answer is lost", http.StatusBadGateway) // ... but the answer never arrives
			return
		}
		real.ServeHTTP(w, r)
	}))
	defer front.Close()
	a := f.agent("SN1")
	a.client.BaseURL = front.URL
	a.client.HTTPClient.RetryMax = 1
	a.client.HTTPClient.RetryWaitMin, a.client.HTTPClient.RetryWaitMax = time.Millisecond, time.Millisecond
	reply, err := a.checkIn()
	if err != nil {
		t.Fatalf("the retried check-in: %v", err)
	}
	if _, ok := reply.Held("r1"); !ok {
		t.Fatalf("reply %+v: want the hold of r1", reply)
	}
}

// heldLateStore returns the first read of the holds only once release is
// closed, after telling read that it read them.
type heldLateStore struct {
	fleet.Store
	read, release chan struct{}
	once          sync.Once
}

func (s *heldLateStore) Held(ctx context.Context) ([]fleet.Release, error) {
	rels, err := s.Store.Held(ctx)
	s.once.Do(func() {
		close(s.read)
		<-s.release
	})
	return rels, err
}

// A refresh of the holds that read them before a pause must not cache
// what it read: the next check-in carries the hold at once.
func TestAPauseIsNotHiddenByARefreshOfTheHoldsThatReadBeforeIt(t *testing.T) {
	st := &heldLateStore{Store: sqliteStore(t), read: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, st, server.Options{Enrolment: server.EnrolOpen, HoldCacheTTL: time.Hour})
	a := f.agent("SN1")
	first := make(chan error, 1)
	go func() { _, err := a.checkIn(); first <- err }()
	<-st.read // the refresh read no holds, and waits
	if code := f.admin("POST", "/v1/admin/releases/r1/pause", map[string]string{"cause": "bad batch"}, nil); code != http.StatusOK {
		t.Fatalf("pause: %d", code)
	}
	close(st.release) // the refresh ends now, after the pause
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	reply, err := a.checkIn()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reply.Held("r1"); !ok {
		t.Fatalf("the check-in after the pause carries no hold: %+v", reply)
	}
}
