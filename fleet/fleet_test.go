package fleet_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func checkIn() fleet.CheckIn {
	return fleet.CheckIn{Serial: "SN1", Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.25", AgentVersion: "1.0", IntervalSeconds: 60}
}

func TestKeyIsCreatedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k1, err := fleet.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, fleet.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	k2, err := fleet.LoadOrCreateKey(dir)
	if err != nil || k1.ID() != k2.ID() {
		t.Fatalf("reloaded key %v differs from %v (%v)", k2.ID(), k1.ID(), err)
	}
}

func TestBrokenKeyFileIsRefusedNotReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fleet.KeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.LoadOrCreateKey(dir); err == nil {
		t.Fatal("a broken key file was accepted")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, fleet.KeyFile)); string(b) != "garbage" {
		t.Fatal("the broken key file was overwritten")
	}
}

func TestSequenceGrowsAcrossRestartsEvenWithTheClockBack(t *testing.T) {
	dir := t.TempDir()
	k, _ := fleet.LoadOrCreateKey(dir)
	k.Now = func() time.Time { return t0 }
	_, c1, err := k.SignCheckIn(checkIn())
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := fleet.LoadOrCreateKey(dir)
	k2.Now = func() time.Time { return t0.Add(-time.Hour) } // clock went back
	_, r2, err := k2.SignReport(fleet.Report{Report: report.Report{ID: "a", DeviceSerial: "SN1", Step: "download"}})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Seq <= c1.Seq {
		t.Fatalf("sequence went from %d to %d after a restart", c1.Seq, r2.Seq)
	}
	if c1.Seq < uint64(t0.UnixMicro()) {
		t.Fatalf("sequence %d is below the time floor", c1.Seq)
	}
}

func TestSignedMessagesVerifyAndTamperingIsCaught(t *testing.T) {
	k, _ := fleet.LoadOrCreateKey(t.TempDir())
	env, ci, err := k.SignCheckIn(checkIn())
	if err != nil {
		t.Fatal(err)
	}
	payload, pub, err := env.Open(fleet.TypeCheckIn)
	if err != nil || fleet.KeyID(pub) != k.ID() {
		t.Fatalf("Open = %v, key %s", err, fleet.KeyID(pub))
	}
	got, err := fleet.ParseCheckIn(payload)
	if err != nil || got.Seq != ci.Seq || got.Serial != "SN1" {
		t.Fatalf("ParseCheckIn = %+v, %v", got, err)
	}
	t.Run("a changed payload does not verify", func(t *testing.T) {
		bad := *env
		var c fleet.CheckIn
		_ = json.Unmarshal(payload, &c)
		c.Firmware = "V9"
		b, _ := json.Marshal(c)
		bad.Payload = base64.StdEncoding.EncodeToString(b)
		if _, _, err := bad.Open(fleet.TypeCheckIn); !errors.Is(err, fleet.ErrBadSignature) {
			t.Fatalf("Open = %v, want ErrBadSignature", err)
		}
	})
	t.Run("a check-in is not accepted as a report", func(t *testing.T) {
		bad := *env
		bad.Type = fleet.TypeReport
		if _, _, err := bad.Open(fleet.TypeReport); !errors.Is(err, fleet.ErrBadSignature) {
			t.Fatalf("Open = %v, want ErrBadSignature (the type is signed)", err)
		}
		if _, _, err := env.Open(fleet.TypeReport); !errors.Is(err, fleet.ErrMalformed) || !errors.Is(err, fleet.ErrWrongType) {
			t.Fatalf("Open with the wrong type = %v, want ErrMalformed and ErrWrongType", err)
		}
	})
	t.Run("a payload that is not base64 is malformed, not a wrong type", func(t *testing.T) {
		bad := *env
		bad.Payload = "not base64!"
		_, _, err := bad.Open(fleet.TypeCheckIn)
		if !errors.Is(err, fleet.ErrMalformed) || errors.Is(err, fleet.ErrWrongType) || errors.Is(err, fleet.ErrBadSignature) {
			t.Fatalf("Open = %v, want ErrMalformed only", err)
		}
	})
	t.Run("another key's signature does not verify", func(t *testing.T) {
		other, _ := fleet.LoadOrCreateKey(t.TempDir())
		bad := *env
		bad.Key = base64.StdEncoding.EncodeToString(other.Public())
		if _, _, err := bad.Open(fleet.TypeCheckIn); !errors.Is(err, fleet.ErrBadSignature) {
			t.Fatalf("Open = %v, want ErrBadSignature", err)
		}
	})
}

func TestValidationNamesTheField(t *testing.T) {
	checkIns := []struct {
		field  string
		mutate func(*fleet.CheckIn)
	}{
		{"serial", func(c *fleet.CheckIn) { c.Serial = "" }},
		{"progress", func(c *fleet.CheckIn) { c.Progress = 101 }},
		{"last_result", func(c *fleet.CheckIn) { c.LastResult = "maybe" }},
		{"model", func(c *fleet.CheckIn) { c.Model = "a\x1bb" }},
		{"seq", func(c *fleet.CheckIn) { c.Seq = 1 << 63 }},
		{"queue_depth", func(c *fleet.CheckIn) { c.QueueDepth = 3_000_000_000 }},
		{"queue_depth", func(c *fleet.CheckIn) { c.QueueDepth = -1 }},
		{"manifest_serial", func(c *fleet.CheckIn) { c.ManifestSerial = 1 << 63 }},
		{"interval_seconds", func(c *fleet.CheckIn) { c.IntervalSeconds = fleet.MaxIntervalSeconds + 1 }},
		{"interval_seconds", func(c *fleet.CheckIn) { c.IntervalSeconds = -1 }},
		{"time", func(c *fleet.CheckIn) { c.Time = t0.In(time.FixedZone("", 24*3600)) }},
		{"time", func(c *fleet.CheckIn) { c.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"time", func(c *fleet.CheckIn) { c.Time = time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600)) }},
		{"serial", func(c *fleet.CheckIn) { c.Serial = "SN\x00" }},
		{"firmware", func(c *fleet.CheckIn) { c.Firmware = "V4\xff" }},
		{"site", func(c *fleet.CheckIn) { c.Site = "a\u0085b" }},
		{"device_name", func(c *fleet.CheckIn) { c.DeviceName = "\ufffd" }},
		{"agent_version", func(c *fleet.CheckIn) { c.AgentVersion = "1\x7f" }},
		{"groups[1]", func(c *fleet.CheckIn) { c.Groups = []string{"a", "b\x00"} }},
	}
	for _, tc := range checkIns {
		c := checkIn()
		c.Seq, c.Time = 1, t0
		tc.mutate(&c)
		var ie *fleet.InvalidError
		if err := c.Validate(); !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("check-in %s: Validate = %v", tc.field, err)
		}
	}
	reports := []struct {
		field  string
		mutate func(*fleet.Report)
	}{
		{"seq", func(r *fleet.Report) { r.Seq = 1 << 63 }},
		{"audit_seq", func(r *fleet.Report) { r.AuditSeq = 1 << 63 }},
		{"dropped", func(r *fleet.Report) { r.Dropped = -1 }},
		{"progress", func(r *fleet.Report) { r.Progress = -1 }},
		{"time", func(r *fleet.Report) { r.Time = t0.In(time.FixedZone("", -24*3600)) }},
		{"message", func(r *fleet.Report) { r.Message = "a\x00b" }},
		{"message", func(r *fleet.Report) { r.Message = "a\x1b[2Jb" }},
		{"message", func(r *fleet.Report) { r.Message = "a\xffb" }},
		{"codes[0]", func(r *fleet.Report) { r.Codes = []string{"x\x00"} }},
		{"release_id", func(r *fleet.Report) { r.ReleaseID = "r\u009b" }},
		{"audit_head", func(r *fleet.Report) { r.AuditHead = "\x00" }},
		{"device_serial", func(r *fleet.Report) { r.DeviceSerial, r.ReleaseID = "", "" }},
		{"result", func(r *fleet.Report) { r.Result = "success" }}, // a reports file's synonym, not the protocol's
		{"message", func(r *fleet.Report) { r.Message = a("m", fleet.MaxMessageLen+1) }},
	}
	for _, tc := range reports {
		r := fleet.Report{Seq: 1, Report: report.Report{ID: "a", Time: t0, DeviceSerial: "SN1", Step: "install", AgentVersion: "1"}}
		tc.mutate(&r)
		var ie *fleet.InvalidError
		if err := r.Validate(); !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("report %s: Validate = %v", tc.field, err)
		}
	}
	t.Run("values at the limits pass", func(t *testing.T) {
		c := checkIn()
		c.Seq, c.Time, c.QueueDepth, c.ManifestSerial, c.IntervalSeconds = 1<<63-1, t0.In(time.FixedZone("", 23*3600+59*60)), fleet.MaxQueueDepth, 1<<63-1, fleet.MaxIntervalSeconds
		if err := c.Validate(); err != nil {
			t.Errorf("check-in: %v", err)
		}
		r := fleet.Report{Seq: 1<<63 - 1, Report: report.Report{ID: "a", Time: t0, DeviceSerial: "SN1", Step: "install", AgentVersion: "1",
			AuditSeq: 1<<63 - 1, Message: "line one\n\tline two\r\n\ufffd"}}
		if err := r.Validate(); err != nil {
			t.Errorf("report: %v", err)
		}
	})
	if _, err := fleet.ParseCheckIn([]byte(`{"seq":1,"unknown":2}`)); !errors.Is(err, fleet.ErrMalformed) {
		t.Errorf("an unknown field: %v", err)
	}
	if _, err := fleet.ParseReport([]byte(`{"seq":1,"id":"a","time":"2026-11-30T12:00:00+24:00","device_serial":"SN1","step":"s"}`)); !errors.Is(err, fleet.ErrMalformed) {
		t.Errorf("a time with an offset of 24 hours: %v", err)
	}
}

func TestClientSendsSignedCheckInsAndReports(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		env, err := fleet.ParseEnvelope(body)
		if err != nil {
			http.Error(w, `{"error":"malformed"}`, 400)
			return
		}
		want := map[string]string{fleet.CheckInPath: fleet.TypeCheckIn, fleet.ReportPath: fleet.TypeReport}[r.URL.Path]
		if _, _, err := env.Open(want); err != nil {
			w.WriteHeader(403)
			_, _ = w.Write([]byte(`{"error":"bad signature"}`))
			return
		}
		got = append(got, r.URL.Path)
		_ = json.NewEncoder(w).Encode(fleet.CheckInReply{Enrolment: fleet.EnrolAccepted, Holds: []fleet.Hold{{ReleaseID: "r1", Reason: "paused by admin"}}})
	}))
	defer srv.Close()
	k, _ := fleet.LoadOrCreateKey(t.TempDir())
	c := fleet.NewClient(srv.URL, k)
	reply, err := c.CheckIn(context.Background(), checkIn())
	if err != nil {
		t.Fatal(err)
	}
	if _, held := reply.Held("r1"); !held {
		t.Fatalf("reply %+v does not hold r1", reply)
	}
	if _, held := reply.Held("r2"); held {
		t.Fatal("r2 held")
	}
	if err := c.Report(context.Background(), fleet.Report{Report: report.Report{ID: "x", DeviceSerial: "SN1", Step: "download"}}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("server got %v", got)
	}
	// A 4xx comes back as a permanent StatusError with the server's reason.
	c.BaseURL = srv.URL + "/nowhere"
	err = c.Report(context.Background(), fleet.Report{Report: report.Report{ID: "y", DeviceSerial: "SN1", Step: "download"}})
	var se *fleet.StatusError
	if !errors.As(err, &se) || !se.Permanent() || se.Status != 403 || se.Reason != "bad signature" {
		t.Fatalf("Report to a wrong path = %v", err)
	}
}

func TestAFailureWithPendingImageIsItsOwnState(t *testing.T) {
	d := fleet.Device{Serial: "S1"}
	d.Apply(fleet.CheckIn{Serial: "S1", Model: "m", Step: "idle", LastResult: fleet.ResultFailed, LastCode: fleet.CodePendingImage, IntervalSeconds: 60}, t0)
	if d.Stored != fleet.StatePendingImage {
		t.Fatalf("state %s, want pending_image", d.Stored)
	}
	d.Apply(fleet.CheckIn{Serial: "S1", Model: "m", Step: "download", LastResult: fleet.ResultFailed, LastCode: fleet.CodePendingImage, IntervalSeconds: 60}, t0)
	if d.Stored != fleet.StateUpdating {
		t.Fatalf("state %s, want updating while a new attempt runs", d.Stored)
	}
	d.Apply(fleet.CheckIn{Serial: "S1", Model: "m", LastResult: fleet.ResultFailed, LastCode: "download_failed", IntervalSeconds: 60}, t0)
	if d.Stored != fleet.StateFailed {
		t.Fatalf("state %s, want failed", d.Stored)
	}
	if got := d.StateAt(t0.Add(4 * time.Minute)); got != fleet.StateStale {
		t.Fatalf("state %s after 4 intervals, want stale", got)
	}
}
