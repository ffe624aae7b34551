package isapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// This client is the one layer that retries an idempotent ISAPI call:
// retry_max N makes exactly N+1 requests against a device that keeps
// failing, 0 exactly one (docs/reference/retries.md).
func TestAnIdempotentCallMakesRetryMaxPlusOneRequests(t *testing.T) {
	for _, retryMax := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("retry_max %d", retryMax), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				http.Error(w, "broken", http.StatusInternalServerError)
			}))
			defer srv.Close()
			c, _ := newTestClient(t, srv.URL, func(cfg *Config) { cfg.RetryMax = retryMax })
			if _, err := c.Identify(testCtx(t)); err == nil {
				t.Fatal("a device answering 500 was identified")
			}
			if _, err := c.InstallStatus(testCtx(t)); err == nil {
				t.Fatal("a device answering 500 gave a status")
			}
			if got, want := int(n.Load()), 2*(retryMax+1); got != want {
				t.Errorf("two calls made %d requests, want %d (retry_max+1 each)", got, want)
			}
		})
	}
}

func TestNewRefusesMissingTimingsAndNegativeRetries(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no request timeout":  func(c *Config) { c.RequestTimeout = 0 },
		"no poll interval":    func(c *Config) { c.PollInterval = 0 },
		"negative retry_max":  func(c *Config) { c.RetryMax = -1 },
		"waits the wrong way": func(c *Config) { c.RetryWaitMin, c.RetryWaitMax = 2, 1 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{BaseURL: "http://192.0.2.1", Username: "a", Password: "b", RequestTimeout: 1, UploadTimeout: 1,
				FlashTimeout: 1, RebootTimeout: 1, PollInterval: 1}
			if _, err := New(cfg); err != nil {
				t.Fatalf("the base config is refused: %v", err)
			}
			mutate(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
