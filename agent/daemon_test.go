package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/reports"
)

// reportSink is a loopback report server that keeps what it receives.
type reportSink struct {
	mu      sync.Mutex
	reports []report.Report
}

func (s *reportSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rep report.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.reports = append(s.reports, rep)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *reportSink) count(result string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reports {
		if r.Result == result {
			n++
		}
	}
	return n
}

// runDaemon runs the daemon for exactly n cycles: the injected After
// cancels the context on the n-th sleep and records every sleep asked for.
func (w *world) runDaemon(t *testing.T, n int) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	w.agent.After = func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		if len(waits) == n {
			cancel()
			return nil // never fires: Run must notice the cancelled context
		}
		ch := make(chan time.Time, 1)
		ch <- time.Now()
		return ch
	}
	if err := w.agent.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return waits
}

func TestDaemonRunsCyclesAndReportsARefusalOncePerSerial(t *testing.T) {
	sink := &reportSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	w := newWorld(t, lab.Options{
		Releases:  []lab.Release{{ID: "standard-4.1.30", Version: "4.1.30", Variant: "standard"}},
		ExtraYAML: "report:\n  url: " + srv.URL + "\n",
	})
	w.agent.Jitter = func(time.Duration) time.Duration { return 0 }

	waits := w.runDaemon(t, 3)
	if got := w.lab.ManifestRequests.Load(); got != 3 {
		t.Fatalf("%d manifest requests in 3 cycles", got)
	}
	for _, d := range waits {
		if d != time.Hour {
			t.Fatalf("the daemon slept %s between polls, want the configured 1h", d)
		}
	}
	if got := sink.count("refused"); got != 1 {
		t.Fatalf("%d refusal reports after 3 polls of the same manifest, want 1", got)
	}
	w.assertUntouched(t)

	// A new serial refusing the same release is reported once more.
	w.republish(t, func(*manifest.Manifest) {})
	w.runDaemon(t, 2)
	if got := sink.count("refused"); got != 2 {
		t.Fatalf("%d refusal reports after a new serial, want 2", got)
	}
	w.assertUntouched(t)
	w.assertJournalAndAudit(t)
}

// A report sent to report.url fits the rules of the reports file's reader
// (package reports, what fwctl rollout status reads) even when the
// recorder's firmware string is over their limit: it is cut, not refused.
func TestAReportOfAnOverlongFirmwareStringFitsTheReportsRules(t *testing.T) {
	long := "V4.1.20_230619_integrator-custom-edition_for-iDS-9632NXI-I8-16S_rev7"
	var mu sync.Mutex
	var got []report.Report
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rep, _, err := reports.ParseReport(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, rep)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	w := newWorld(t, lab.Options{Device: nvrsim.Config{Firmware: long}, Releases: []lab.Release{custom4125}, ExtraYAML: "report:\n  url: " + srv.URL + "\n"})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultRefused || out.Identity.FirmwareVersion != long {
		t.Fatalf("%s (%s), identity %+v: want refused on the recorder's real firmware string", out.Result, out.Message, out.Identity)
	}
	w.agent.FlushReports(context.Background())
	if rejected, _ := filepath.Glob(filepath.Join(w.lab.StateDir, "reports", "rejected", "*")); len(rejected) != 0 {
		t.Fatalf("reports set aside as rejected: %v", rejected)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].FirmwareVersion != long[:fleet.MaxShortLen-3]+fleet.FitCut {
		t.Fatalf("reports accepted: %+v; want the refusal with the firmware string cut", got)
	}
}

func TestReportsCarryNoAddressesAndFitTheServersLimits(t *testing.T) {
	sink := &reportSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: "report:\n  url: " + srv.URL + "\n"})
	w.fast(t, 0)
	// The recorder is gone: the failure's message names its address.
	_ = w.lab.Sim.Close()
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !strings.Contains(out.Message, "127.0.0.1") {
		t.Fatalf("%s: %s; want a failure naming the device address locally", out.Result, out.Message)
	}
	w.agent.FlushReports(context.Background())
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.reports) == 0 {
		t.Fatal("no report arrived")
	}
	for _, r := range sink.reports {
		if strings.Contains(r.Message, "127.0.0.1") || len(r.Message) > fleet.MaxMessageLen {
			t.Errorf("a report leaves the site with an address or over the size limit: %q", r.Message)
		}
	}
}
