package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/retry"
	"github.com/fwagent/fwagent/internal/testport"
)

const token = "tok-SECRET-4711"

// receiver is a loopback report server that records what it accepted.
type receiver struct {
	mu       sync.Mutex
	got      []Report
	auth     []string
	status   func(r Report) int // nil: 200
	srv      *httptest.Server
	attempts int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var r Report
		if err := json.NewDecoder(req.Body).Decode(&r); err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad report", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.attempts++
		code := http.StatusOK
		if rc.status != nil {
			code = rc.status(r)
		}
		if code >= 200 && code < 300 {
			rc.got = append(rc.got, r)
			rc.auth = append(rc.auth, req.Header.Get("Authorization"))
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) messages() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, r := range rc.got {
		out = append(out, r.Message)
	}
	return out
}

// fastClient retries quickly: tests never wait for real backoff.
func fastClient(log logrus.FieldLogger) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 2
	c.RetryWaitMin = time.Millisecond
	c.RetryWaitMax = 2 * time.Millisecond
	c.Logger = leveled{log}
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return c
}

// deadURL is the address of a port reserved for the test that nobody
// listens on: connections are refused.
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + testport.Addr(t) + "/reports"
}

// capture returns a logger at trace level writing into buf.
func capture() (*logrus.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	l := logrus.New()
	l.Out = &buf
	l.Level = logrus.TraceLevel
	l.Formatter = &logrus.JSONFormatter{}
	return l, &buf
}

func newQueue(t *testing.T, dir, url string, max int, log logrus.FieldLogger) *Queue {
	t.Helper()
	q, err := NewQueue(dir, Options{URL: url, Token: token, Max: max, HTTPClient: fastClient(log), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func enqueue(t *testing.T, q *Queue, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if err := q.Enqueue(Report{DeviceSerial: "DS-1", Model: "iDS-9632NXI-I8/16S", Step: "download", Message: m, AgentVersion: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReportsWaitForADownServerAndArriveInOrderAfterARestart(t *testing.T) {
	dir := t.TempDir()
	log, logs := capture()
	q := newQueue(t, dir, deadURL(t), 100, log)
	enqueue(t, q, "r1", "r2", "r3")

	sent, err := q.Flush(context.Background())
	if sent != 0 || !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Flush to a dead server = %d, %v", sent, err)
	}
	if q.Len() != 3 {
		t.Fatalf("queue holds %d, want 3", q.Len())
	}

	// The agent restarts; the server is up now, at a new address.
	rc := newReceiver(t)
	q2 := newQueue(t, dir, rc.srv.URL, 100, log)
	enqueue(t, q2, "r4")
	sent, err = q2.Flush(context.Background())
	if err != nil || sent != 4 {
		t.Fatalf("Flush = %d, %v", sent, err)
	}
	if got := strings.Join(rc.messages(), ","); got != "r1,r2,r3,r4" {
		t.Fatalf("delivered %s, want r1,r2,r3,r4", got)
	}
	for _, a := range rc.auth {
		if a != "Bearer "+token {
			t.Fatalf("Authorization %q", a)
		}
	}
	if q2.Len() != 0 {
		t.Fatalf("%d left after delivery", q2.Len())
	}
	if strings.Contains(logs.String(), token) {
		t.Fatalf("the token was logged:\n%s", logs.String())
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged at trace level: the token check proves nothing")
	}
}

func TestDeliveryStopsAtTheFirstFailureToKeepOrder(t *testing.T) {
	rc := newReceiver(t)
	rc.status = func(r Report) int {
		if r.Message == "r2" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	log, _ := capture()
	q := newQueue(t, t.TempDir(), rc.srv.URL, 100, log)
	enqueue(t, q, "r1", "r2", "r3")
	sent, err := q.Flush(context.Background())
	if sent != 1 || !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Flush = %d, %v", sent, err)
	}
	if q.Len() != 2 {
		t.Fatalf("queue %d, want r2 and r3 kept", q.Len())
	}
	rc.mu.Lock()
	rc.status = nil
	rc.mu.Unlock()
	if sent, err := q.Flush(context.Background()); sent != 2 || err != nil {
		t.Fatalf("second Flush = %d, %v", sent, err)
	}
	if got := strings.Join(rc.messages(), ","); got != "r1,r2,r3" {
		t.Fatalf("delivered %s", got)
	}
}

func TestAnswersDecideTheReportsFate(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		sent       int
		queued     int
		rejected   int
		undeliverd bool
	}{
		{"a 400 moves the report to rejected and goes on", http.StatusBadRequest, 1, 0, 1, false},
		{"a 413 moves the report to rejected and goes on", http.StatusRequestEntityTooLarge, 1, 0, 1, false},
		{"a 429 keeps it queued", http.StatusTooManyRequests, 0, 2, 0, true},
		{"a 408 keeps it queued", http.StatusRequestTimeout, 0, 2, 0, true},
		{"a 401 keeps every report queued: the token is wrong, not the report", http.StatusUnauthorized, 0, 2, 0, true},
		{"a 500 keeps it queued", http.StatusInternalServerError, 0, 2, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t)
			rc.status = func(r Report) int {
				if r.Message == "bad" {
					return tc.status
				}
				return http.StatusOK
			}
			dir := t.TempDir()
			log, _ := capture()
			q := newQueue(t, dir, rc.srv.URL, 100, log)
			enqueue(t, q, "bad", "good")
			sent, err := q.Flush(context.Background())
			if sent != tc.sent || errors.Is(err, ErrUndelivered) != tc.undeliverd {
				t.Fatalf("Flush = %d, %v", sent, err)
			}
			rej, _ := os.ReadDir(filepath.Join(dir, "reports", "rejected"))
			if q.Len() != tc.queued || len(rej) != tc.rejected {
				t.Fatalf("queued %d, rejected %d", q.Len(), len(rej))
			}
		})
	}
}

func TestTheQueueIsBoundedAndCountsDrops(t *testing.T) {
	rc := newReceiver(t)
	dir := t.TempDir()
	log, logs := capture()
	q := newQueue(t, dir, rc.srv.URL, 3, log)
	enqueue(t, q, "r1", "r2", "r3", "r4", "r5")
	if q.Len() != 3 {
		t.Fatalf("queue %d, want 3", q.Len())
	}
	if _, err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var msgs []string
	var dropped int64
	for _, r := range rc.got {
		msgs = append(msgs, r.Message)
		dropped += r.Dropped
	}
	if strings.Join(msgs, ",") != "r3,r4,r5" || dropped != 2 {
		t.Fatalf("delivered %v with dropped %d; want r3,r4,r5 and 2", msgs, dropped)
	}
	if !strings.Contains(logs.String(), "dropped the oldest") {
		t.Error("the drop was not logged")
	}
}

func TestADroppedReportPassesItsDropCountOn(t *testing.T) {
	rc := newReceiver(t)
	log, _ := capture()
	q := newQueue(t, t.TempDir(), rc.srv.URL, 1, log)
	enqueue(t, q, "r1", "r2", "r3") // r2 counts r1; r3 counts r2 and r1
	q.Flush(context.Background())
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 1 || rc.got[0].Message != "r3" || rc.got[0].Dropped != 2 {
		t.Fatalf("got %+v", rc.got)
	}
}

func TestEnqueueFillsIDAndTimeAndWritesBeforeReturning(t *testing.T) {
	dir := t.TempDir()
	log, _ := capture()
	q := newQueue(t, dir, "http://127.0.0.1:1/", 10, log)
	fixed := time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	q.Now = func() time.Time { return fixed }
	enqueue(t, q, "r1")
	files, _ := filepath.Glob(filepath.Join(dir, "reports", "*.json"))
	if len(files) != 1 || !strings.HasPrefix(filepath.Base(files[0]), "0000000000000001-20261128T020000") {
		t.Fatalf("files %v", files)
	}
	data, _ := os.ReadFile(files[0])
	var r Report
	if err := json.Unmarshal(data, &r); err != nil || len(r.ID) != 32 || !r.Time.Equal(fixed) {
		t.Fatalf("stored %s (%v)", data, err)
	}
}

func TestSequenceContinuesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	log, _ := capture()
	q := newQueue(t, dir, "http://127.0.0.1:1/", 100, log)
	enqueue(t, q, "r1", "r2")
	q2 := newQueue(t, dir, "http://127.0.0.1:1/", 100, log)
	enqueue(t, q2, "r3")
	names, _ := q2.list(q2.dir)
	if len(names) != 3 || seqOf(names[2]) != 3 {
		t.Fatalf("names %v", names)
	}
}

func TestNoURLMeansNoQueue(t *testing.T) {
	dir := t.TempDir()
	q, err := NewQueue(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(Report{Step: "download"}); err != nil || q.Len() != 0 {
		t.Fatalf("queued without a URL: %v, %d", err, q.Len())
	}
	if n, err := q.Flush(context.Background()); n != 0 || err != nil {
		t.Fatalf("Flush = %d, %v", n, err)
	}
}

func TestUnreadableQueuedFilesAreSetAside(t *testing.T) {
	rc := newReceiver(t)
	dir := t.TempDir()
	log, _ := capture()
	q := newQueue(t, dir, rc.srv.URL, 10, log)
	enqueue(t, q, "r1")
	os.WriteFile(filepath.Join(dir, "reports", "0000000000000000-20260101T000000Z.json"), []byte("{half"), 0o600)
	sent, err := q.Flush(context.Background())
	if sent != 1 || err != nil {
		t.Fatalf("Flush = %d, %v", sent, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "reports", "rejected", "0000000000000000-20260101T000000Z.json")); err != nil {
		t.Fatalf("corrupt file not set aside: %v", err)
	}
}

func TestTheBuiltClientHasBoundedRetries(t *testing.T) {
	q, err := NewQueue(t.TempDir(), Options{URL: "http://x", Retry: retry.Policy{Max: 3, WaitMin: time.Second, WaitMax: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if q.client.RetryMax != 3 || q.client.HTTPClient.Timeout == 0 {
		t.Fatalf("retry %d, timeout %v", q.client.RetryMax, q.client.HTTPClient.Timeout)
	}
}

// The queue's client is the one layer that retries an upload within a
// Flush: report.retry_max N makes N+1 POSTs of a report to a server
// answering 500, 0 exactly one; the report stays queued.
func TestAnUploadMakesRetryMaxPlusOneRequests(t *testing.T) {
	for _, retryMax := range []int{0, 2} {
		t.Run(fmt.Sprintf("report.retry_max %d", retryMax), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				http.Error(w, "broken", http.StatusInternalServerError)
			}))
			defer srv.Close()
			q, err := NewQueue(t.TempDir(), Options{URL: srv.URL, Token: token,
				Retry: retry.Policy{Max: retryMax, WaitMin: time.Millisecond, WaitMax: 2 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			enqueue(t, q, "one")
			if _, err := q.Flush(context.Background()); err == nil {
				t.Fatal("a server answering 500 took the report")
			}
			if got := int(n.Load()); got != retryMax+1 {
				t.Errorf("%d POSTs, want %d", got, retryMax+1)
			}
			if q.Len() != 1 {
				t.Errorf("the report left the queue: %d queued", q.Len())
			}
		})
	}
}

func TestReportJSONFieldNames(t *testing.T) {
	r := Report{ID: "i", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DeviceSerial: "S", Model: "M", ReleaseID: "R",
		AttemptID: "A", Step: "install", Progress: 40, Result: "failure", Codes: []string{"badFlash"}, Message: "m", AgentVersion: "1.0"}
	data, _ := json.Marshal(r)
	want := `{"id":"i","time":"2026-01-02T03:04:05Z","device_serial":"S","model":"M","release_id":"R","attempt_id":"A","step":"install","progress":40,"result":"failure","codes":["badFlash"],"message":"m","agent_version":"1.0"}`
	if string(data) != want {
		t.Fatalf("\n got %s\nwant %s", data, want)
	}
}

func BenchmarkEnqueue(b *testing.B) {
	q, err := NewQueue(b.TempDir(), Options{URL: "http://127.0.0.1:1/", Max: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if err := q.Enqueue(Report{Step: "download", Message: fmt.Sprint(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAReportTheSealRefusesIsKeptUnsignedNotLost(t *testing.T) {
	dir := t.TempDir()
	log, _ := capture()
	q, err := NewQueue(dir, Options{URL: "http://127.0.0.1:1/", Max: 10, HTTPClient: fastClient(log), Logger: log,
		Seal: func(Report) ([]byte, error) { return nil, errors.New("device key unreadable") }})
	if err != nil {
		t.Fatal(err)
	}
	err = q.Enqueue(Report{DeviceSerial: "DS-1", Model: "m", Step: "done", Message: "installed", AgentVersion: "test"})
	if err == nil || !strings.Contains(err.Error(), "device key unreadable") || !strings.Contains(err.Error(), "kept unsigned") {
		t.Fatalf("Enqueue: %v, want the seal error saying the report is kept", err)
	}
	if queued, _ := filepath.Glob(filepath.Join(dir, "reports", "*.json")); len(queued) != 0 {
		t.Fatalf("an unsigned report was queued for the fleet server: %v", queued)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "reports", "rejected", "*.json"))
	if len(kept) != 1 {
		t.Fatalf("rejected/ holds %v, want the one report", kept)
	}
	data, _ := os.ReadFile(kept[0])
	var r Report
	if err := json.Unmarshal(data, &r); err != nil || r.Message != "installed" {
		t.Fatalf("kept %s (%v)", data, err)
	}
}
