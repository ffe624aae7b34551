package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

// errorOf decodes the reason of an error answer.
func errorOf(body string) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) != nil {
		return body
	}
	return e.Error
}

// request sends a raw request with the admin token and returns the
// status and the body.
func (f *fixture) request(method, path, body string, header map[string]string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken) // the web page takes it too
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMessagesTheStoresCannotKeepAreRefusedBeforeTheirBatch(t *testing.T) {
	const ci = `{"seq":1,"time":"2026-11-30T12:00:00Z","serial":"BAD","model":"m","agent_version":"1"`
	const rep = `{"seq":1,"id":"x","time":"2026-11-30T12:00:00Z","device_serial":"BAD","step":"install","agent_version":"1"`
	cases := []struct {
		name, typ, payload, field string
	}{
		{"a queue depth above a PostgreSQL INTEGER", fleet.TypeCheckIn, ci + `,"queue_depth":3000000000}`, "queue_depth"},
		{"a queue depth above the limit", fleet.TypeCheckIn, ci + `,"queue_depth":1000001}`, "queue_depth"},
		{"an interval that overflows the stale time", fleet.TypeCheckIn, ci + `,"interval_seconds":100000000000}`, "interval_seconds"},
		{"a manifest serial above a BIGINT", fleet.TypeCheckIn, ci + `,"manifest_serial":9223372036854775808}`, "manifest_serial"},
		{"a check-in sequence above a BIGINT", fleet.TypeCheckIn, strings.Replace(ci, `"seq":1`, `"seq":18446744073709551615`, 1) + `}`, "seq"},
		{"a check-in time with an offset of 24 hours", fleet.TypeCheckIn, strings.Replace(ci, `12:00:00Z`, `12:00:00+24:00`, 1) + `}`, "time"},
		{"a check-in time in year 10000 in UTC", fleet.TypeCheckIn, strings.Replace(ci, `2026-11-30T12:00:00Z`, `9999-12-31T23:59:59-23:59`, 1) + `}`, "time"},
		{"a NUL in a serial", fleet.TypeCheckIn, strings.Replace(ci, `"BAD"`, `"BAD\u0000"`, 1) + `}`, "serial"},
		{"a C1 control character in a site", fleet.TypeCheckIn, ci + `,"site":"a\u0085b"}`, "site"},
		{"an invalid character in a device name", fleet.TypeCheckIn, ci + `,"device_name":"\ud800"}`, "device_name"},
		{"a NUL in a group", fleet.TypeCheckIn, ci + `,"groups":["ok","a\u0000"]}`, "groups[1]"},
		{"a report time with an offset of 24 hours", fleet.TypeReport, strings.Replace(rep, `12:00:00Z`, `12:00:00+24:00`, 1) + `}`, "time"},
		{"a report sequence above a BIGINT", fleet.TypeReport, strings.Replace(rep, `"seq":1`, `"seq":9223372036854775808`, 1) + `}`, "seq"},
		{"an audit sequence above a BIGINT", fleet.TypeReport, rep + `,"audit_seq":18446744073709551615}`, "audit_seq"},
		{"a NUL in a message", fleet.TypeReport, rep + `,"message":"a\u0000b"}`, "message"},
		{"an escape character in a message", fleet.TypeReport, rep + `,"message":"a\u001b[2Jb"}`, "message"},
		{"a NUL in a code", fleet.TypeReport, rep + `,"codes":["a\u0000"]}`, "codes[0]"},
		{"a NUL in a release id", fleet.TypeReport, rep + `,"release_id":"r\u0000"}`, "release_id"},
	}
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		// Approve mode: the reviewer's case was a pending key's check-in.
		f := newFixture(t, open(t), server.Options{})
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				path := fleet.CheckInPath
				if c.typ == fleet.TypeReport {
					path = fleet.ReportPath
				}
				st, body := f.post(path, fleet.SealBytes(ed25519Key(), c.typ, []byte(c.payload)).Marshal())
				if want := `field "` + c.field + `"`; st != http.StatusBadRequest || !strings.Contains(errorOf(body), want) {
					t.Fatalf("answer %d %s, want 400 naming %s", st, body, want)
				}
			})
		}
		if ds, err := f.store.Devices(context.Background(), fleet.DeviceFilter{}); err != nil || len(ds) != 0 {
			t.Fatalf("devices stored from refused messages: %+v, %v", ds, err)
		}
		if got := f.counters()[fleet.CounterMalformed]; got != int64(len(cases)) {
			t.Fatalf("%s = %d, want %d", fleet.CounterMalformed, got, len(cases))
		}
		// A message at the limits is stored; a message may hold tabs and
		// line breaks (it is made of error texts).
		a := f.agent("GOOD")
		if _, err := a.checkIn(func(c *fleet.CheckIn) {
			c.QueueDepth, c.IntervalSeconds, c.ManifestSerial = fleet.MaxQueueDepth, fleet.MaxIntervalSeconds, 1<<63-1
		}); err != nil {
			t.Fatalf("a check-in at the limits: %v", err)
		}
		if st := f.admin("POST", "/v1/admin/approve", server.ApproveRequest{Serials: []string{"GOOD"}}, nil); st != 200 {
			t.Fatalf("approve: %d", st)
		}
		err := a.client.Report(context.Background(), fleet.Report{Report: report.Report{ID: "g", DeviceSerial: "GOOD", ReleaseID: "r1",
			Step: "install", Result: fleet.ResultFailed, Message: "install failed:\n\tthe recorder answered 500\r\n", AgentVersion: "1"}})
		if err != nil {
			t.Fatalf("a report whose message has line breaks: %v", err)
		}
		recs, err := f.store.Reports(context.Background(), "r1")
		if err != nil || len(recs) != 1 || !strings.Contains(recs[0].Report.Message, "\n\tthe recorder") {
			t.Fatalf("stored reports %+v, %v", recs, err)
		}
	})
}

func TestABatchStoresItsGoodMessagesWhenOneCannotBeStored(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f, gs, letGo := holdTheWriter(t, open(t), 8)

		// Queued while the writer is held, the next four form one batch.
		// The bad report passed no Validate (it could not: Validate refuses
		// its time); storeBatch must refuse it alone.
		now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		pub := func() ed25519.PublicKey { return ed25519Key().Public().(ed25519.PublicKey) }
		checkIn := func(serial string) *fleet.CheckIn {
			return &fleet.CheckIn{Seq: 1, Time: now, Serial: serial, Model: "m", AgentVersion: "1", IntervalSeconds: 60}
		}
		rep := func(serial string, at time.Time) *fleet.Report {
			return &fleet.Report{Seq: 1, Report: report.Report{ID: serial, Time: at, DeviceSerial: serial, Model: "m",
				ReleaseID: "r1", Step: "install", Result: fleet.ResultInstalled, AgentVersion: "1"}}
		}
		good1 := f.srv.QueueUnchecked(pub(), checkIn("GOOD-1"), nil)
		good2 := f.srv.QueueUnchecked(pub(), nil, rep("GOOD-2", now))
		bad := f.srv.QueueUnchecked(pub(), nil, rep("BAD", now.In(time.FixedZone("", 24*3600))))
		good3 := f.srv.QueueUnchecked(pub(), checkIn("GOOD-3"), nil)
		letGo()

		for name, q := range map[string]*server.Queued{"GOOD-1": good1, "GOOD-2": good2, "GOOD-3": good3} {
			if a := q.Answer(); a.Code != http.StatusOK {
				t.Errorf("%s: answer %d %s, want 200: one bad message failed its batch", name, a.Code, a.Body)
			}
		}
		if a := bad.Answer(); a.Code != http.StatusBadRequest || !strings.Contains(a.Body.String(), "cannot be stored") {
			t.Errorf("the bad report: answer %d %s, want 400 saying it cannot be stored", a.Code, a.Body)
		}
		if n := gs.batches.Load(); n != 2 {
			t.Errorf("%d transactions, want 2 (the held one, then one batch of the others)", n)
		}
		ds, err := gs.Devices(context.Background(), fleet.DeviceFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var serials []string
		for _, d := range ds {
			serials = append(serials, d.Serial)
		}
		if strings.Join(serials, " ") != "GOOD-1 GOOD-2 GOOD-3 HELD" {
			t.Errorf("devices %v, want GOOD-1 GOOD-2 GOOD-3 HELD (nothing of BAD)", serials)
		}
		if n := f.reportsOn("r1"); n != 1 {
			t.Errorf("%d reports on r1, want GOOD-2's only", n)
		}
		if c := f.counters(); c[fleet.CounterMalformed] != 1 || c[fleet.CounterCheckIns] != 3 || c[fleet.CounterReports] != 1 {
			t.Errorf("counters %v, want 1 malformed, 3 check-ins, 1 report", c)
		}
	})
}

func TestAReportFromAnUnknownSerialWaitsAsPendingEnrolment(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{})
		if err := f.agent("NEW1").report("r1", "download", ""); statusOf(err) != http.StatusConflict {
			t.Fatalf("a report from an unknown serial = %v, want 409", err)
		}
		var devs []server.DeviceJSON
		f.admin("GET", "/v1/admin/devices?state=pending_enrolment", nil, &devs)
		if len(devs) != 1 || devs[0].Serial != "NEW1" {
			t.Fatalf("pending devices = %+v, want NEW1", devs)
		}
		var counts server.CountersJSON
		f.admin("GET", "/v1/admin/counters", nil, &counts)
		if counts.States[string(fleet.StatePendingEnrolment)] != 1 || counts.Counters[fleet.CounterPending] != 1 {
			t.Fatalf("counters %+v, want one pending_enrolment device and one pending_refused report", counts)
		}
		if st, page := f.request("GET", "/?state=pending_enrolment", "", nil); st != 200 || !strings.Contains(page, "NEW1") {
			t.Fatalf("web page %d, want NEW1 listed:\n%s", st, page)
		}
		var res server.ApproveResult
		f.admin("POST", "/v1/admin/approve", server.ApproveRequest{Serials: []string{"NEW1"}}, &res)
		if len(res.Approved) != 1 {
			t.Fatalf("approve %+v, want NEW1 approved (its key was pending)", res)
		}
	})
}

func TestAPayloadThatIsNotBase64IsMalformedNotAWrongType(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{Enrolment: server.EnrolOpen})
		env := fleet.SealBytes(ed25519Key(), fleet.TypeCheckIn, []byte(`{}`))
		env.Payload = "not base64!"
		if st, body := f.post(fleet.CheckInPath, env.Marshal()); st != http.StatusBadRequest || !strings.Contains(body, "base64") {
			t.Fatalf("answer %d %s, want 400 about base64", st, body)
		}
		good, _, _ := f.agent("SN1").key.SignCheckIn(fleet.CheckIn{Serial: "SN1", Model: "m", AgentVersion: "1"})
		if st, body := f.post(fleet.ReportPath, good.Marshal()); st != http.StatusBadRequest {
			t.Fatalf("a check-in posted as a report: %d %s, want 400", st, body)
		}
		if c := f.counters(); c[fleet.CounterMalformed] != 1 || c[fleet.CounterWrongType] != 1 {
			t.Fatalf("counters %v, want 1 malformed (the payload) and 1 wrong type (the check-in)", c)
		}
	})
}

func TestAdminInputIsCheckedBeforeTheStore(t *testing.T) {
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		reason                   string
	}{
		{"a NUL in a device's serial", "GET", "/v1/admin/devices/SN%00", "", nil, "serial"},
		{"invalid UTF-8 in a device's serial", "GET", "/v1/admin/devices/%FF", "", nil, "serial"},
		{"a NUL in the model filter", "GET", "/v1/admin/devices?model=%00", "", nil, "model"},
		{"invalid UTF-8 in the release filter", "GET", "/v1/admin/devices?release=%FF", "", nil, "release"},
		{"a NUL in a release id to pause", "POST", "/v1/admin/releases/r%00/pause", "", nil, "release id"},
		{"invalid UTF-8 in a release id to resume", "POST", "/v1/admin/releases/%FF/resume", "", nil, "release id"},
		{"a NUL in a release id's rollout", "PUT", "/v1/admin/releases/r%00/rollout", "{}", nil, "release id"},
		{"invalid UTF-8 in a release id's reports", "GET", "/v1/admin/releases/%FF/reports", "", nil, "release id"},
		{"a NUL in a serial to approve", "POST", "/v1/admin/approve", `{"serials":["SN\u0000"]}`, nil, "serials[0]"},
		{"a C1 control character in a serial to forget", "POST", "/v1/admin/forget", `{"serials":["a","b\u0085c"]}`, nil, "serials[1]"},
		{"a NUL in a pause cause", "POST", "/v1/admin/releases/r1/pause", `{"cause":"a\u0000"}`, nil, "cause"},
		{"a pause cause too long for every check-in answer", "POST", "/v1/admin/releases/r1/pause", `{"cause":"` + strings.Repeat("x", 300) + `"}`, nil, "cause"},
		{"invalid UTF-8 in the actor", "POST", "/v1/admin/releases/r1/pause", "", map[string]string{server.ActorHeader: "me\xff\xfe"}, server.ActorHeader},
		{"a tab in the actor", "POST", "/v1/admin/approve", `{"serials":["SN1"]}`, map[string]string{server.ActorHeader: "me\tyou"}, server.ActorHeader},
		{"a NUL in the web page's serial", "GET", "/device/SN%00", "", nil, "serial"},
	}
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{})
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				st, body := f.request(c.method, c.path, c.body, c.header)
				if st != http.StatusBadRequest || !strings.Contains(errorOf(body), c.reason) {
					t.Fatalf("answer %d %s, want 400 naming %s", st, body, c.reason)
				}
			})
		}
		ctx := context.Background()
		if rels, _ := f.store.Releases(ctx); len(rels) != 0 {
			t.Fatalf("releases stored from refused requests: %+v", rels)
		}
		if ds, _ := f.store.Devices(ctx, fleet.DeviceFilter{}); len(ds) != 0 {
			t.Fatalf("devices stored from refused requests: %+v", ds)
		}
		var counts server.CountersJSON
		f.admin("GET", "/v1/admin/counters", nil, &counts)
		if n := counts.Counters[fleet.CounterDBErrors]; n != 0 {
			t.Fatalf("%s = %d: a request reached the database and was answered 503", fleet.CounterDBErrors, n)
		}

		// A long actor is cut at 64 bytes, on a character boundary.
		long := strings.Repeat("a", 63) + "é@host"
		if st, body := f.request("POST", "/v1/admin/releases/r1/pause", "", map[string]string{server.ActorHeader: long}); st != 200 {
			t.Fatalf("pause with a long actor: %d %s", st, body)
		}
		log, err := f.store.Pauses(ctx, "r1", 1)
		if want := "admin (" + strings.Repeat("a", 63) + ")"; err != nil || len(log) != 1 || log[0].Actor != want || !utf8.ValidString(log[0].Actor) {
			t.Fatalf("pause log %+v, %v: want actor %q", log, err, want)
		}
	})
}

func TestImportSkipsAReportTheStoreCannotKeep(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{})
		lines := `{"received":"2026-11-30T12:00:00Z","report":{"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"OLD1","model":"m","release_id":"r1","step":"confirm","progress":100,"result":"success","agent_version":"0.9"}}
{"received":"2026-11-30T12:00:00Z","report":{"id":"b","time":"2026-11-30T12:00:00+24:00","device_serial":"OLD2","model":"m","release_id":"r1","step":"confirm","progress":100,"result":"success","agent_version":"0.9"}}
`
		st, body := f.request("POST", "/v1/admin/import", lines, nil)
		var res server.ImportResult
		_ = json.Unmarshal([]byte(body), &res)
		// The reader refuses b's time by the protocol's rule (the same
		// as an agent's report's).
		if st != 200 || res.Reports != 1 || res.Devices != 1 || len(res.Bad) != 1 || !strings.Contains(res.Bad[0], `line 2: invalid report: field "time"`) {
			t.Fatalf("import %d %s, want 1 report stored and report b's line 2 listed as bad for its time", st, body)
		}
		if n := f.reportsOn("r1"); n != 1 {
			t.Fatalf("%d reports on r1, want 1", n)
		}
	})
}
