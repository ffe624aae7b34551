package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/manifest"
)

// fast shrinks every backoff and retry pause of w's agent to milliseconds
// (the config's timeouts stay as they are) and gives it a device client
// with the given reboot timeout (0 keeps the config's).
func (w *world) fast(t *testing.T, rebootTimeout time.Duration) {
	t.Helper()
	a := w.agent
	a.Downloader.Backoff = func(int) time.Duration { return time.Millisecond }
	a.Downloader.Client = fetch.NewHTTPClient(fetch.ClientOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, HeaderTimeout: 5 * time.Second}).StandardClient()
	a.Fetcher.HTTP = fetch.NewHTTPClient(fetch.ClientOptions{RetryMax: a.Config.Manifest.RetryMax, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Timeout: 10 * time.Second})
	c := a.Config.Device.ISAPI
	if rebootTimeout == 0 {
		rebootTimeout = c.RebootTimeout
	}
	dev, err := isapi.New(isapi.Config{
		BaseURL: c.URL, Username: c.Username, Password: c.Password, CertSHA256: c.CertSHA256,
		RequestTimeout: c.RequestTimeout, UploadTimeout: c.UploadTimeout, FlashTimeout: c.FlashTimeout,
		RebootTimeout: rebootTimeout, DownGrace: min(c.DownGrace, rebootTimeout/2), PollInterval: 5 * time.Millisecond,
		RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Logger: a.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Device = dev
}

// reopenFast is reopen followed by fast.
func (w *world) reopenFast(t *testing.T, rebootTimeout time.Duration) {
	t.Helper()
	w.reopen(t)
	w.fast(t, rebootTimeout)
}

// republish edits the published manifest, bumps its serial and publishes it.
func (w *world) republish(t *testing.T, edit func(m *manifest.Manifest)) *manifest.Manifest {
	t.Helper()
	m := w.lab.Manifest()
	m.Serial++
	m.Issued, m.Expires = time.Time{}, time.Time{}
	edit(m)
	if err := w.lab.Publish(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// release builds a lab release (its image is served by the lab).
func (w *world) release(t *testing.T, r lab.Release) manifest.Release {
	t.Helper()
	rel, err := w.lab.BuildRelease(r)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// untilDone runs cycles in mode until one ends with result want, at most n,
// and returns every outcome.
func (w *world) untilDone(t *testing.T, mode agent.Mode, want agent.Result, n int) []agent.Outcome {
	t.Helper()
	var outs []agent.Outcome
	for i := 0; i < n; i++ {
		out := w.cycle(t, mode)
		outs = append(outs, out)
		if out.Result == want {
			return outs
		}
	}
	t.Fatalf("no cycle of %d ended %s; the last: %s %v: %s", n, want, outs[n-1].Result, outs[n-1].Codes, outs[n-1].Message)
	return nil
}

// assertInstalledOnce checks the end state every update must reach: the
// device runs 4.1.25, flashed exactly once, never bricked, the journal idle
// with a success, and the audit chain intact.
func (w *world) assertInstalledOnce(t *testing.T) {
	t.Helper()
	st := w.state()
	if st.Bricked || st.Installs != 1 || !sameVersion(st.Firmware, "4.1.25") {
		t.Fatalf("simulator: firmware %s, installs %d, bricked %v (%s); want 4.1.25 flashed exactly once", st.Firmware, st.Installs, st.Bricked, st.BrickReason)
	}
	if rel := w.lab.Manifest().Release("custom-4.1.25"); rel == nil || st.LastUploadSHA256 != rel.Image.SHA256 {
		t.Fatalf("the device last received sha256 %s, not the proven image of custom-4.1.25", st.LastUploadSHA256)
	}
	w.assertJournalAndAudit(t)
	js := w.agent.Journal.State()
	if js.Current != nil || js.LastResult == nil || js.LastResult.Outcome != journal.OutcomeSuccess {
		t.Fatalf("journal: current %+v, last result %+v; want idle after a success", js.Current, js.LastResult)
	}
}

// assertJournalAndAudit checks that journal.json parses and the audit chain
// verifies.
func (w *world) assertJournalAndAudit(t *testing.T) {
	t.Helper()
	assertStateDir(t, w.lab.StateDir)
}

func assertStateDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := journal.ReadState(filepath.Join(dir, "journal.json")); err != nil && !os.IsNotExist(err) {
		t.Fatalf("journal.json: %v", err)
	}
	if _, err := audit.Verify(dir); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// assertUntouched checks that the device never received an image.
func (w *world) assertUntouched(t *testing.T) {
	t.Helper()
	if st := w.state(); st.Uploads != 0 || st.Installs != 0 || st.Reboots != 0 || st.Bricked || st.Receiving {
		t.Fatalf("the simulator was touched: uploads %d, installs %d, reboots %d, bricked %v", st.Uploads, st.Installs, st.Reboots, st.Bricked)
	}
}

func hasCode(out agent.Outcome, code string) bool { return slices.Contains(out.Codes, code) }

// waitCtx bounds a test's waits for work that takes seconds (a whole
// update, a crash test's restarted agents): a guard against a hang, not a
// measure of speed. Two minutes, because CI runs these under -race beside
// another package on two cores, and a crash test's nine subtests with
// their agent processes run at once.
func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
