package agent

import (
	"context"
	"crypto/rand"
	"math/big"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// Agent is the update daemon: one value holding its parts, with Run for the
// daemon loop and Cycle for one pass. Fields are filled by New (from the
// config) or by tests; function-typed fields are the test seams.
type Agent struct {
	Config     *config.Config
	Device     device.Device
	Journal    *journal.Journal
	Trust      manifest.Trust
	Fetcher    *fetch.Fetcher
	Downloader *fetch.Downloader
	Reports    *report.Queue // nil: no report_url configured
	Audit      *audit.Log
	Metrics    *support.Metrics
	Log        logrus.FieldLogger

	// Version is the agent's own version, sent with reports.
	Version string
	// OfflineDir, when set, replaces the manifest URLs and every image URL
	// with files in this folder (fwagent update --from DIR).
	OfflineDir string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Jitter returns a random duration in [0, max) (default crypto/rand).
	Jitter func(max time.Duration) time.Duration
	// After waits for d (default time.After); the daemon's only timer.
	After func(d time.Duration) <-chan time.Time
	// InstallProgress, when set, also receives install progress (a terminal bar).
	InstallProgress device.ProgressFunc
	// ReadyHook is called once the daemon is up (sd_notify READY).
	ReadyHook func()

	// beforeStep, when set, is called after a step is recorded in the
	// journal and before it runs. A non-nil error stops the cycle on the
	// spot and records nothing more, exactly as if the process had died
	// there: a test seam for crash and restart tests (export_test.go),
	// never set in production.
	beforeStep func(step journal.Step) error
	// maxEntries caps how often one step of one attempt may be entered
	// (default journal.DefaultMaxStepEntries) so a crash loop ends in a
	// reported failure; tests lower it (export_test.go).
	maxEntries int
	// Images, when set, is the image cache the recorders of a site share
	// (one download per release per site); nil: state_dir/images.
	Images *ImageCache
	// ManifestSource, when set, replaces the manifest fetch: a site fetches
	// the manifest once per cycle for all its recorders.
	ManifestSource func(ctx context.Context, urls []string, cond fetch.Conditional) (fetch.Result, error)
	// InstallGate, when set, is asked before the first device step
	// (install, or the reboot of a settled install) of a cycle: it returns
	// the function that gives the slot back with the cycle's outcome, or ErrInstallHeld (the site
	// stopped installing the release; releaseID is "" for the reboot of a
	// recorder already flashed, which is never held) or another error. A site bounds
	// its parallel installs with it (install.max_parallel).
	InstallGate func(ctx context.Context, device, releaseID string) (release func(Outcome), err error)
	// IdentityClaim, when set, is told each identity the device reports; an
	// error (another recorder of the site answered with the same model and
	// serial: two config entries reach one recorder) ends the cycle before
	// anything is decided.
	IdentityClaim func(device string, id device.Identity) error
	// Fleet, when set (fleet.url), is checked in with at every poll and
	// before every upload; its holds stop a release from starting.
	Fleet FleetLink
	// Name is the recorder's name in a site ("" for a lone agent); every
	// log line of this agent carries it as the device field.
	Name string

	fleet    fleetState    // holds learnt at the last check-in
	pre      *preIdentity  // the site's identify-all pass, for the next cycle
	ids      attemptFields // stamped on every log line of an attempt
	noted    sync.Map      // notices logged once per process (unsupported health parts)
	mu       sync.Mutex
	cached   *manifest.Verified // the last verified manifest, reused on 304
	status   Status
	closers  []func() error
	flushing sync.Mutex
}

// Status is the agent's current view of itself, for fwagent status and the
// status endpoint.
type Status struct {
	Identity   *device.Identity `json:"identity,omitempty"`
	Step       journal.Step     `json:"step"`
	Release    string           `json:"release,omitempty"`
	Serial     int64            `json:"manifest_serial,omitempty"`
	LastResult *journal.Result  `json:"last_result,omitempty"`
	LastCycle  *Outcome         `json:"last_cycle,omitempty"`
	NextPoll   time.Time        `json:"next_poll,omitzero"`
}

// Status returns a snapshot of the agent's status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	s := a.status
	a.mu.Unlock()
	st := a.Journal.State()
	s.LastResult = st.LastResult
	if st.Current != nil {
		s.Step = st.Current.Step
		s.Release = st.Current.ReleaseID
	} else {
		s.Step = journal.StepIdle
	}
	s.Serial = st.LastSerial
	return s
}

func (a *Agent) setStatus(f func(s *Status)) {
	a.mu.Lock()
	f(&a.status)
	a.mu.Unlock()
}

// Close releases the journal lock and closes the audit log and the other
// resources New opened.
func (a *Agent) Close() error {
	var first error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	a.closers = nil
	return first
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) after(d time.Duration) <-chan time.Time {
	if a.After != nil {
		return a.After(d)
	}
	return time.After(d)
}

func (a *Agent) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	if a.Jitter != nil {
		return a.Jitter(max)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(max)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}

func (a *Agent) maxStepEntries() int {
	if a.maxEntries > 0 {
		return a.maxEntries
	}
	return journal.DefaultMaxStepEntries
}

// flashBound is how long the agent waits for a device that is flashing:
// the backend's own bound for it.
func (a *Agent) flashBound() time.Duration {
	d := a.Config.Device.ISAPI.FlashTimeout
	if a.Config.Device.Backend == config.BackendLocal {
		d = a.Config.Device.Local.InstallTimeout
	}
	return d
}

// confirmPoll is the pause between device polls while the agent waits for a
// device that is still flashing after a restart: the backend's own poll
// interval.
func (a *Agent) confirmPoll() time.Duration {
	d := a.Config.Device.ISAPI.PollInterval
	if a.Config.Device.Backend == config.BackendLocal {
		d = a.Config.Device.Local.PollInterval
	}
	if d > 0 {
		return d
	}
	return 2 * time.Second
}

func (a *Agent) policy() verify.Policy {
	return verify.Policy{AllowDowngrade: a.Config.Policy.AllowDowngrade, Pins: a.Config.Policy.Pins}
}

// envelopePath is where the last accepted signed manifest is kept.
func (a *Agent) envelopePath() string {
	return filepath.Join(a.Config.StateDir, "manifest.dsse.json")
}

// FlushReports sends queued reports; failures leave them queued for later.
func (a *Agent) FlushReports(ctx context.Context) {
	if a.Reports == nil {
		return
	}
	a.flushing.Lock()
	defer a.flushing.Unlock()
	if _, err := a.Reports.Flush(ctx); err != nil {
		a.Log.WithError(err).Info("reports stay queued; they will be sent on a later cycle")
	}
}
