package support

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// fakeClock is a settable clock for the rate limit.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func newStatusTestServer(t *testing.T, token string, clock *fakeClock, logs io.Writer) *httptest.Server {
	t.Helper()
	m := NewMetrics("1.2.3")
	log := logrus.New()
	log.SetOutput(logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	h := NewStatusServer(StatusOptions{
		Token: token,
		Status: func() any {
			return map[string]any{"step": "idle", "identity": map[string]string{"model": "iDS-9632NXI-I8/16S"}}
		},
		Bundle:  func(w io.Writer) error { _, err := w.Write([]byte("bundle")); return err },
		Metrics: m,
		Logger:  log,
		Now:     clock.Now,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStatusTokenRules(t *testing.T) {
	const token = "s3cret-status-token"
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name       string
		configured string
		sent       string
		path       string
		want       int
	}{
		{"a request without a token is refused when one is configured", token, "", "/v1/status", http.StatusUnauthorized},
		{"a wrong token is refused", token, "wrong", "/v1/status", http.StatusUnauthorized},
		{"a token that is a prefix of the right one is refused", token, token[:5], "/metrics", http.StatusUnauthorized},
		{"the right token is accepted", token, token, "/v1/status", http.StatusOK},
		{"the right token opens the bundle", token, token, "/v1/support-bundle", http.StatusOK},
		{"the right token opens the metrics", token, token, "/metrics", http.StatusOK},
		{"without a configured token (loopback) no token is needed", "", "", "/v1/status", http.StatusOK},
		{"an unknown path is not found", token, token, "/v1/other", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newStatusTestServer(t, tt.configured, clock, io.Discard)
			if code, body := get(t, srv.URL+tt.path, tt.sent); code != tt.want {
				t.Fatalf("GET %s = %d %q; want %d", tt.path, code, body, tt.want)
			}
		})
	}
}

func TestStatusRateLimitsFailures(t *testing.T) {
	const token = "right-token-value"
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	srv := newStatusTestServer(t, token, clock, &logs)
	for i := 1; i <= DefaultMaxFailures; i++ {
		if code, _ := get(t, srv.URL+"/v1/status", "guess-token-value"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d; want 401", i, code)
		}
	}
	if code, _ := get(t, srv.URL+"/v1/status", token); code != http.StatusTooManyRequests {
		t.Fatalf("after %d failures the right token got %d; want 429 during the lockout", DefaultMaxFailures, code)
	}
	clock.t = clock.t.Add(DefaultLockout + time.Second)
	if code, _ := get(t, srv.URL+"/v1/status", token); code != http.StatusOK {
		t.Fatalf("after the lockout the right token got %d; want 200", code)
	}
	if !strings.Contains(logs.String(), "rejected request") || !strings.Contains(logs.String(), "locking the address out") {
		t.Fatalf("failures not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "guess-token-value") || strings.Contains(logs.String(), token) {
		t.Fatalf("a token was logged:\n%s", logs.String())
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		token  string
		want   error
	}{
		{"an empty listen (endpoint off) is fine", "", "", nil},
		{"IPv4 loopback without token is fine", "127.0.0.1:9876", "", nil},
		{"IPv6 loopback without token is fine", "[::1]:9876", "", nil},
		{"localhost without token is fine", "localhost:9876", "", nil},
		{"all interfaces without token is refused", ":9876", "", ErrNoToken},
		{"0.0.0.0 without token is refused", "0.0.0.0:9876", "", ErrNoToken},
		{"a LAN address without token is refused", "192.168.1.10:9876", "", ErrNoToken},
		{"a host name without token is refused", "nvr-agent.local:9876", "", ErrNoToken},
		{"a LAN address with a token is fine", "192.168.1.10:9876", "t", nil},
		{"an address without port is a usage error", "127.0.0.1", "", ErrBadListen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckListen(tt.listen, tt.token); !errors.Is(err, tt.want) {
				t.Fatalf("CheckListen(%q, %q) = %v; want %v", tt.listen, tt.token, err, tt.want)
			}
		})
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics("1.0.0-rc1")
	m.AttemptStarted()
	m.AttemptStarted()
	m.Result("refused", "model_mismatch")
	m.Result("success", "")
	m.Result("failure", `weird"code`)
	m.AddDownloadBytes(1 << 20)
	m.SetLastSuccess(time.Unix(1767225600, 500_000_000))
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"# TYPE fwagent_update_attempts_total counter\nfwagent_update_attempts_total 2\n",
		`fwagent_update_results_total{result="refused",code="model_mismatch"} 1`,
		`fwagent_update_results_total{result="success",code=""} 1`,
		`fwagent_update_results_total{result="failure",code="weird\"code"} 1`,
		"fwagent_download_bytes_total 1048576\n",
		"# TYPE fwagent_last_success_timestamp_seconds gauge\nfwagent_last_success_timestamp_seconds 1767225600.5\n",
		`fwagent_info{version="1.0.0-rc1"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	// Every sample line belongs to a family declared by a TYPE line before it.
	declared := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			declared[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]
		if !declared[name] {
			t.Errorf("sample %q has no TYPE line before it", line)
		}
	}
}

func TestTokenEqualComparesDigests(t *testing.T) {
	tests := []struct {
		got, want string
		ok        bool
	}{
		{"right-token-value", "right-token-value", true},
		{"right-token", "right-token-value", false},
		{"right-token-value-and-more", "right-token-value", false},
		{"", "right-token-value", false},
		{"Right-token-value", "right-token-value", false},
	}
	for _, tt := range tests {
		if got := tokenEqual(tt.got, tt.want); got != tt.ok {
			t.Errorf("tokenEqual(%q, %q) = %v; want %v", tt.got, tt.want, got, tt.ok)
		}
	}
}

// Regression: pruning a full failure table cleared it, lockouts included, so
// a locked-out guesser could go on after failing from 4096 other addresses.
func TestPruningAFullTableKeepsLockouts(t *testing.T) {
	const token = "right-token-value"
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	s := NewStatusServer(StatusOptions{Token: token, Logger: quiet, Now: clock.Now, Status: func() any { return "ok" }})
	try := func(addr, tok string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		r.RemoteAddr = addr + ":40000"
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	for i := 0; i < DefaultMaxFailures; i++ {
		try("192.0.2.66", "guess-token-value")
	}
	if code := try("192.0.2.66", token); code != http.StatusTooManyRequests {
		t.Fatalf("the guesser is not locked out: %d", code)
	}
	// Fill the table with running counters, then fail from one more address.
	for i := len(s.failures); i < maxTracked; i++ {
		s.failures[fmt.Sprintf("flood-%d", i)] = &failureCount{n: 1, first: clock.t}
	}
	if code := try("198.51.100.1", "guess-token-value"); code != http.StatusUnauthorized {
		t.Fatalf("failure from a new address: %d; want 401", code)
	}
	if len(s.failures) > 2 {
		t.Errorf("the running counters were not dropped: %d entries", len(s.failures))
	}
	if code := try("192.0.2.66", token); code != http.StatusTooManyRequests {
		t.Fatalf("pruning lifted the lockout: %d; want 429", code)
	}
}

// TestStatusRedactsPersonalData: GET /v1/status, behind its token, shows
// the identity as the default support bundle does: MAC, device ID and name
// (and any IP or user name) replaced by markers; model, serial and firmware
// kept. A site's endpoint answers an array: every element is redacted.
func TestStatusRedactsPersonalData(t *testing.T) {
	ident := func(name, mac string) map[string]any {
		return map[string]any{
			"model": "iDS-9632NXI-I8/16S", "serial": "DS-9632NXI-I81620200316CCRRE12345678WCVU", "firmware_version": "V4.1.25",
			"raw": map[string]string{"deviceName": name, "deviceID": "48a1b2c3-0000-1111-2222-bc0011223344", "macAddress": mac, "ipAddress": "192.168.1.64"},
		}
	}
	for _, tc := range []struct {
		name   string
		status any
		secret []string
	}{
		{"recorder", map[string]any{"step": "idle", "identity": ident("Front door NVR", "bc:ad:28:12:34:56")}, []string{"Front door NVR", "bc:ad:28:12:34:56"}},
		{"site", []any{
			map[string]any{"device": "lobby", "identity": ident("Lobby NVR", "bc:ad:28:00:00:01")},
			map[string]any{"device": "yard", "identity": ident("Yard NVR", "bc:ad:28:00:00:02")},
		}, []string{"Lobby NVR", "Yard NVR", "bc:ad:28:00:00:01", "bc:ad:28:00:00:02"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(NewStatusServer(StatusOptions{Token: "tok", Status: func() any { return tc.status }}))
			defer srv.Close()
			code, body := get(t, srv.URL+"/v1/status", "tok")
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			for _, s := range append(tc.secret, "48a1b2c3-0000-1111-2222-bc0011223344", "192.168.1.64") {
				if strings.Contains(body, s) {
					t.Errorf("status shows %q:\n%s", s, body)
				}
			}
			for _, s := range []string{MarkerMAC, MarkerDeviceID, MarkerName, MarkerIP, "DS-9632NXI-I81620200316CCRRE12345678WCVU", "iDS-9632NXI-I8/16S", "V4.1.25"} {
				if !strings.Contains(body, s) {
					t.Errorf("status lacks %q:\n%s", s, body)
				}
			}
			var v any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("redacted status is not JSON: %v\n%s", err, body)
			}
			if _, isArray := v.([]any); isArray != (tc.name == "site") {
				t.Errorf("shape changed: %T", v)
			}
		})
	}
}
