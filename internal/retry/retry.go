// Package retry is the one backoff of fwagent: every layer that retries a
// request (the ISAPI client for idempotent device calls, the manifest
// fetcher, the image downloader, the report queue) pauses as Policy.Wait
// says, with the values of the config's retry section.
//
// It owns only the arithmetic of the pauses and the adapter to
// go-retryablehttp. Which layer retries which request, and how often, is
// decided by the callers and written down in docs/reference/retries.md.
package retry

import (
	"net/http"
	"strconv"
	"time"
)

// Policy says how often one kind of request is retried and how long to
// pause in between.
type Policy struct {
	// Max is the number of retries after the first request: 0 means one
	// request and no retry; Max retries means at most Max+1 requests.
	Max int
	// WaitMin is the pause before the first retry; it doubles with each
	// retry. 0 means no pause.
	WaitMin time.Duration
	// WaitMax caps the pause, a server's Retry-After included.
	WaitMax time.Duration
}

// Wait returns the pause before retry n (n >= 1): WaitMin * 2^(n-1), at
// most WaitMax.
func (p Policy) Wait(n int) time.Duration {
	if n < 1 || p.WaitMin <= 0 {
		return 0
	}
	d := p.WaitMin
	for i := 1; i < n && d < p.WaitMax; i++ {
		d *= 2
	}
	if p.WaitMax > 0 && d > p.WaitMax {
		d = p.WaitMax
	}
	return d
}

// Backoff is the policy's pause in go-retryablehttp's form (attempt counts
// from 0 for the first retry). A 429 or 503 with a Retry-After in seconds
// pauses that long instead, but never longer than max: a hostile header
// must not park the agent for days.
func Backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			d := time.Duration(s) * time.Second
			if d > max {
				d = max
			}
			return d
		}
	}
	return Policy{WaitMin: min, WaitMax: max}.Wait(attempt + 1)
}
