package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

// perHour is a rate so low that a bucket never refills during a test unless
// the test moves the server's clock.
const perHour = 1.0 / 3600

// testClock is a server clock the test moves (Server.Now).
type testClock struct{ ns atomic.Int64 }

func newClock(f *fixture) *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	f.srv.Now = c.now
	return c
}

func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// from returns an HTTP client whose connections come from ip, another
// loopback address of this host (Linux routes all of 127.0.0.0/8 to lo):
// one more source address for the server.
func from(t *testing.T, ip string) *http.Client {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot use %s as a source address here: %v", ip, err)
	}
	ln.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// agentFrom is f.agent whose requests come from ip.
func (f *fixture) agentFrom(serial, ip string) *agent {
	a := f.agent(serial)
	a.client.HTTPClient.HTTPClient = from(f.t, ip)
	return a
}

// do sends a request with c and returns its status, Retry-After and body.
func do(t *testing.T, c *http.Client, method, url, auth string, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

func TestASourceOverItsWriteLimitGets429AndNothingIsStored(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen,
		Limits: server.Limits{WriteRate: perHour, WriteBurst: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")}}})
	clock := newClock(f)
	flooder := f.agentFrom("SN-A1", "127.0.0.2")

	if _, err := flooder.checkIn(); err != nil {
		t.Fatalf("first check-in: %v", err)
	}
	if err := flooder.report("r1", "install", fleet.ResultInstalled); err != nil {
		t.Fatalf("first report: %v", err)
	}
	// The bucket (2 at once, one an hour) is empty: a new serial's
	// check-in and a report are refused before they are read.
	flooder.serial = "SN-A2"
	_, err := flooder.checkIn()
	var se *fleet.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || se.Permanent() || !strings.Contains(se.Reason, "too many requests from this address") {
		t.Fatalf("a check-in over the limit = %v, want a 429 the agent sends again", err)
	}
	if err := flooder.report("r1", "install", fleet.ResultFailed); statusOf(err) != http.StatusTooManyRequests {
		t.Fatalf("a report over the limit = %v, want 429", err)
	}
	st, retry, body := do(t, from(t, "127.0.0.2"), "POST", f.http.URL+fleet.CheckInPath, "", "{}")
	if st != http.StatusTooManyRequests || retry != "3600" || strings.Count(strings.TrimSpace(body), "\n") != 0 || !strings.Contains(body, "nothing was read or stored, retry in 3600 s") {
		t.Fatalf("a raw post over the limit: %d, Retry-After %q, %s; want 429, 3600 and a one-line reason", st, retry, body)
	}
	if _, err := f.store.Device(context.Background(), "SN-A2"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("the refused check-in's serial is stored (%v)", err)
	}
	if n := f.reportsOn("r1"); n != 1 {
		t.Fatalf("%d reports on r1, want the first alone", n)
	}

	t.Run("another source is unaffected", func(t *testing.T) {
		if _, err := f.agentFrom("SN-B", "127.0.0.3").checkIn(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an exempt source is never limited", func(t *testing.T) {
		a := f.agentFrom("SN-C", "127.0.0.4")
		for i := range 5 {
			if _, err := a.checkIn(); err != nil {
				t.Fatalf("check-in %d from an exempt address: %v", i+1, err)
			}
		}
	})
	if c := f.counters(); c[fleet.CounterRateLimited] != 3 {
		t.Fatalf("%s = %d, want the 3 refusals", fleet.CounterRateLimited, c[fleet.CounterRateLimited])
	}
	t.Run("the source may send again once its bucket refilled", func(t *testing.T) {
		clock.add(time.Hour)
		if _, err := flooder.checkIn(); err != nil {
			t.Fatalf("an hour later: %v", err)
		}
		if _, err := f.store.Device(context.Background(), "SN-A2"); err != nil {
			t.Fatalf("the check-in sent again is not stored: %v", err)
		}
	})
}

func TestReadsAndWritesHaveTheirOwnLimitsAndZeroMeansNone(t *testing.T) {
	// Writes 0 (no limit), reads one an hour, wrong tokens 0 (no limit).
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen, Limits: server.Limits{ReadRate: perHour, ReadBurst: 1}})
	newClock(f)
	for i := range 20 {
		if _, err := f.agent(fmt.Sprintf("SN%d", i)).checkIn(); err != nil {
			t.Fatalf("write %d with the write rate 0: %v", i+1, err)
		}
		if st, _, _ := do(t, http.DefaultClient, "POST", f.http.URL+"/v1/admin/approve", "Bearer wrong", `{"serials":["SN1"]}`); st != http.StatusUnauthorized {
			t.Fatalf("wrong token %d with the wrong-token limit 0: %d, want 401", i+1, st)
		}
	}
	if st, _, _ := do(t, http.DefaultClient, "GET", f.http.URL+"/healthz", "", ""); st != http.StatusOK {
		t.Fatalf("the first read: %d", st)
	}
	if st, retry, _ := do(t, http.DefaultClient, "GET", f.http.URL+"/healthz", "", ""); st != http.StatusTooManyRequests || retry != "3600" {
		t.Fatalf("a read past the read limit: %d, Retry-After %q; want 429, 3600", st, retry)
	}
	if cs := f.counters(); cs[fleet.CounterRateLimited] != 1 || cs[fleet.CounterAuthLimited] != 0 || cs[fleet.CounterCheckIns] != 20 {
		t.Fatalf("counters %v: want 1 read refused, 20 check-ins accepted, no token refused unchecked", cs)
	}
}

func TestWrongTokensAreLimitedPerSourceAndTheRightTokenAlwaysPasses(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{Limits: server.Limits{AuthFailures: 2}})
	clock := newClock(f)
	guesser, admin := from(t, "127.0.0.2"), from(t, "127.0.0.3")
	devices := f.http.URL + "/v1/admin/devices"

	// The right token is no failure: the admin's address keeps its two.
	for i := range 5 {
		if st, _, _ := do(t, admin, "GET", devices, "Bearer "+adminToken, ""); st != http.StatusOK {
			t.Fatalf("right token %d: %d", i+1, st)
		}
	}
	for i := range 2 {
		if st, _, _ := do(t, guesser, "GET", devices, "Bearer guess-"+string(rune('a'+i)), ""); st != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, st)
		}
	}
	for _, c := range []struct{ name, method, url, auth string }{
		{"a third guess", "GET", devices, "Bearer guess-c"},
		{"a guess through the web page", "GET", f.http.URL + "/", "Basic " + basic("x", "guess-d")},
	} {
		st, retry, body := do(t, guesser, c.method, c.url, c.auth, "")
		if st != http.StatusTooManyRequests || retry != "30" || !strings.Contains(body, "too many wrong tokens") {
			t.Fatalf("%s: %d, Retry-After %q, %s; want 429, 30 s", c.name, st, retry, body)
		}
	}
	// Someone behind the same address (a NAT, a proxy) holds the right
	// token: it is compared and served, so a guesser cannot lock the
	// admin out of a pause.
	if st, _, body := do(t, guesser, "POST", f.http.URL+"/v1/admin/approve", "Bearer "+adminToken, `{"serials":["SN1"]}`); st != http.StatusOK {
		t.Fatalf("the right token from the guesser's address: %d %s, want 200", st, body)
	}
	if st, _, _ := do(t, guesser, "GET", f.http.URL+"/", "Basic "+basic("support", adminToken), ""); st != http.StatusOK {
		t.Fatalf("the web page with the right token from the guesser's address: %d, want 200", st)
	}
	for _, c := range []struct{ name, url, auth string }{
		{"no token at all", devices, ""},
		{"an empty bearer token", devices, "Bearer "},
		{"an empty bearer token on the web page", f.http.URL + "/", "Bearer  "},
	} {
		if st, _, body := do(t, guesser, "GET", c.url, c.auth, ""); st != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s, want 401 (no guess, nothing to limit)", c.name, st, body)
		}
	}
	if st, _, page := do(t, admin, "GET", f.http.URL+"/", "Basic "+basic("support", adminToken), ""); st != http.StatusOK || !strings.Contains(page, "wrong tokens past a source address's limit (429): 2") {
		t.Fatalf("the web page with the right token from another address: %d, want 200 showing the 2 refusals:\n%s", st, page)
	}
	if c := f.counters(); c[fleet.CounterAuthLimited] != 2 {
		t.Fatalf("%s = %d, want 2 (no token and an empty one are no guess)", fleet.CounterAuthLimited, c[fleet.CounterAuthLimited])
	}
	clock.add(30 * time.Second)
	if st, _, _ := do(t, guesser, "GET", devices, "Bearer guess-e", ""); st != http.StatusUnauthorized {
		t.Fatalf("a wrong token 30 s later, one allowance refilled: %d, want 401", st)
	}
}

func TestTheAdminTokenIsNotLimited(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{ViewerToken: "viewer-0123456789abcdef",
		Limits: server.Limits{ReadRate: perHour, ReadBurst: 1, WriteRate: perHour, WriteBurst: 1}})
	newClock(f)
	shared := from(t, "127.0.0.2") // a NAT address the admin shares with a flood
	do(t, shared, "GET", f.http.URL+"/healthz", "", "")
	do(t, shared, "POST", f.http.URL+fleet.CheckInPath, "", "{}")
	if st, _, _ := do(t, shared, "GET", f.http.URL+"/healthz", "", ""); st != http.StatusTooManyRequests {
		t.Fatalf("a second read: %d, want 429", st)
	}
	for i := range 3 {
		if st, _, body := do(t, shared, "GET", f.http.URL+"/v1/admin/devices", "Bearer "+adminToken, ""); st != http.StatusOK {
			t.Fatalf("read %d with the admin token: %d %s", i+1, st, body)
		}
		if st, _, body := do(t, shared, "POST", f.http.URL+"/v1/admin/approve", "Bearer "+adminToken, `{"serials":["SN1"]}`); st != http.StatusOK {
			t.Fatalf("change %d with the admin token: %d %s", i+1, st, body)
		}
	}
	if st, _, _ := do(t, shared, "GET", f.http.URL+"/v1/admin/devices", "Bearer viewer-0123456789abcdef", ""); st != http.StatusTooManyRequests {
		t.Fatalf("a read with the viewer token over the limit: %d, want 429 (only the admin token passes)", st)
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestLimitsThatCannotBeMeantAreRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		lim  server.Limits
		want string
	}{
		{"a write rate with no burst refuses every write", server.Limits{WriteRate: 1}, "--write-burst"},
		{"a negative read rate", server.Limits{ReadRate: -1, ReadBurst: 1}, "--read-rate"},
		{"negative wrong tokens", server.Limits{AuthFailures: -1}, "--auth-failures"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, err := server.New(sqliteStore(t), server.Options{Limits: c.lim})
			if err == nil {
				srv.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v: does not name %s", err, c.want)
			}
		})
	}
}
