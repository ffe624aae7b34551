package fetch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/retry"
)

// failing is a loopback server that answers every request with status and
// counts the requests by method.
type failing struct {
	*httptest.Server
	mu    sync.Mutex
	count map[string]int
}

func newFailing(t *testing.T, status int) *failing {
	t.Helper()
	f := &failing{count: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.count[r.Method]++
		f.mu.Unlock()
		http.Error(w, "broken", status)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *failing) requests(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[method]
}

// The worst cases of docs/reference/retries.md, counted on the wire: the
// Downloader is the one layer that retries image GETs, so retry_max N
// makes N+1 GETs per url per call and 0 exactly one.
func TestImageGETsPerURLAreRetryMaxPlusOne(t *testing.T) {
	img, sum := testImage(t, 4096)
	for _, retryMax := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("download.retry_max %d", retryMax), func(t *testing.T) {
			a, b := newFailing(t, http.StatusInternalServerError), newFailing(t, http.StatusInternalServerError)
			pol := retry.Policy{Max: retryMax, WaitMin: time.Millisecond, WaitMax: 2 * time.Millisecond}
			d := &Downloader{
				// The production wiring: a client that does not retry.
				Client:       NewHTTPClient(ClientOptions{RetryMax: 0}).StandardClient(),
				StallTimeout: 5 * time.Second,
				RetryMax:     pol.Max,
				Backoff:      pol.Wait,
			}
			_, err := d.Download(context.Background(), Request{URLs: []string{a.URL + "/i.dav", b.URL + "/i.dav"}, Path: destPath(t), Size: int64(len(img)), SHA256: sum})
			if err == nil || !IsTransient(err) {
				t.Fatalf("err = %v, want a transient failure", err)
			}
			for name, srv := range map[string]*failing{"first": a, "second": b} {
				if got := srv.requests(http.MethodGet); got != retryMax+1 {
					t.Errorf("%s url: %d GETs, want %d", name, got, retryMax+1)
				}
			}
		})
	}
}

// Resuming a partial file adds at most one HEAD before each GET.
func TestResumingAddsAtMostOneHEADPerGET(t *testing.T) {
	img, sum := testImage(t, 4096)
	srv := newFailing(t, http.StatusInternalServerError)
	path := destPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, img[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Downloader{Client: NewHTTPClient(ClientOptions{}).StandardClient(), StallTimeout: 5 * time.Second, RetryMax: 2}
	if _, err := d.Download(context.Background(), Request{URLs: []string{srv.URL + "/i.dav"}, Path: path, Size: int64(len(img)), SHA256: sum}); err == nil {
		t.Fatal("a server answering 500 completed the image")
	}
	gets, heads := srv.requests(http.MethodGet), srv.requests(http.MethodHead)
	if gets != 3 || heads > gets {
		t.Errorf("%d GETs and %d HEADs; want 3 GETs (retry_max 2) and at most one HEAD each", gets, heads)
	}
}

func TestManifestRequestsPerURLAreRetryMaxPlusOne(t *testing.T) {
	for _, retryMax := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("manifest.retry_max %d", retryMax), func(t *testing.T) {
			a, b := newFailing(t, http.StatusServiceUnavailable), newFailing(t, http.StatusInternalServerError)
			f := &Fetcher{HTTP: NewHTTPClient(ClientOptions{RetryMax: retryMax, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, Timeout: DefaultTimeout})}
			if _, err := f.Fetch(context.Background(), []string{a.URL + "/m", b.URL + "/m"}, Conditional{}); err == nil {
				t.Fatal("a failing server gave a manifest")
			}
			for name, srv := range map[string]*failing{"first": a, "second": b} {
				if got := srv.requests(http.MethodGet); got != retryMax+1 {
					t.Errorf("%s url: %d GETs, want %d", name, got, retryMax+1)
				}
			}
		})
	}
}
