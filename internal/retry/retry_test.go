package retry

import (
	"net/http"
	"testing"
	"time"
)

func TestWaitDoublesUpToTheCap(t *testing.T) {
	p := Policy{Max: 10, WaitMin: time.Second, WaitMax: 30 * time.Second}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for n, w := range want {
		if got := p.Wait(n); got != w {
			t.Errorf("Wait(%d) = %s, want %s", n, got, w)
		}
	}
	if got := (Policy{WaitMin: time.Millisecond, WaitMax: time.Millisecond}).Wait(1000); got != time.Millisecond {
		t.Errorf("a large retry number = %s", got)
	}
	if got := (Policy{}).Wait(3); got != 0 {
		t.Errorf("no wait configured = %s", got)
	}
}

func TestBackoffHonoursRetryAfterWithinTheCap(t *testing.T) {
	resp := func(code int, after string) *http.Response {
		return &http.Response{StatusCode: code, Header: http.Header{"Retry-After": {after}}}
	}
	for _, tc := range []struct {
		name string
		resp *http.Response
		want time.Duration
	}{
		{"a 503 asking for 5s", resp(503, "5"), 5 * time.Second},
		{"a 429 asking for a day is capped", resp(429, "86400"), time.Minute},
		{"a 500 ignores Retry-After", resp(500, "5"), 4 * time.Second},
		{"no response", nil, 4 * time.Second},
	} {
		if got := Backoff(time.Second, time.Minute, 2, tc.resp); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
