package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/internal/lab"
)

// The worst case of docs/reference/retries.md, through the config the
// operator writes: one cycle makes download.retry_max+1 GETs per image url
// against mirrors answering 500, exactly one with retry_max 0. (The lab's
// config sets retry.wait_min to 1ms: no test sleeps for a backoff.)
func TestOneCycleMakesRetryMaxPlusOneGETsPerImageURL(t *testing.T) {
	for _, retryMax := range []int{0, 2} {
		t.Run(fmt.Sprintf("download.retry_max %d", retryMax), func(t *testing.T) {
			w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125},
				ExtraYAML: fmt.Sprintf("download:\n  retry_max: %d\n", retryMax)})
			var gets [2]atomic.Int32
			var urls []string
			for i := range gets {
				srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodGet {
						gets[i].Add(1)
					}
					http.Error(rw, "broken mirror", http.StatusInternalServerError)
				}))
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL+"/image.dav")
			}
			w.serveImageFrom(t, urls...)
			if out := w.cycle(t, agent.ModeUpdateNow); out.Result == agent.ResultInstalled {
				t.Fatalf("installed from mirrors answering 500: %+v", out)
			}
			for i := range gets {
				if got := int(gets[i].Load()); got != retryMax+1 {
					t.Errorf("mirror %d: %d GETs in one cycle, want %d", i+1, got, retryMax+1)
				}
			}
		})
	}
}
