package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/reason"
)

// Site is the gateway: one fwagent serving every recorder of a site. Each
// recorder has its own Agent (its own journal, history, quarantine,
// identity, confirmation, refusal and credentials memory, audit trail and
// report queue, in state_dir/devices/NAME) and its own policy decision; the
// site shares what must be shared: one lock for the gateway, one manifest
// fetch per cycle, one download per release (the content-addressed
// ImageCache), at most install.max_parallel recorders uploading or flashing
// at once, and install.stop_after_failures per release.
//
// A configuration with the single device: section is a site of one whose
// agent is exactly the lone agent of earlier versions (state_dir itself,
// no shared cache), so an interrupted update resumes after an upgrade.
type Site struct {
	Config *config.Config
	// Agents are the recorders' agents, in the order of the config.
	Agents []*Agent
	Log    logrus.FieldLogger
	// ReadyHook is called once the daemon is up.
	ReadyHook func()
	// Workers is how many recorders' cycles run at once (default
	// DefaultSiteWorkers, at least install.max_parallel): a recorder that
	// does not answer holds one worker until its timeouts end, never the
	// others; the bound keeps a large site's memory flat.
	Workers int

	images   *ImageCache
	manifest *siteManifest
	lock     io.Closer
	slots    chan struct{}

	mu       sync.Mutex
	failures siteFailures      // failed installs per release, kept in state_dir
	claims   map[string]string // model and serial -> the recorder that answered with them
}

// CodeDuplicateRecorder is the code of a recorder that answered with the
// model and serial of another recorder of the site: two entries of
// devices: reach one recorder (by two addresses), which must never be
// updated twice.
const CodeDuplicateRecorder = string(reason.DuplicateRecorder)

// DefaultSiteWorkers is how many recorders' cycles a site runs at once
// unless Site.Workers says otherwise.
const DefaultSiteWorkers = 16

// ErrInstallHeld is returned by a site's InstallGate when the site stopped
// installing the release after install.stop_after_failures failures.
var ErrInstallHeld = errors.New("the site stopped installing this release")

// CodeSiteStopped is the code of a recorder whose install was not started
// because the release failed on install.stop_after_failures other
// recorders of the site.
const CodeSiteStopped = string(reason.SiteStopped)

// ResultHeld is a cycle whose install the site held back (exit 1 for a site:
// the recorder did not get the release).
const ResultHeld Result = "held"

// NewSite builds the gateway from cfg: one agent per recorder (see
// config.Recorders), the gateway lock and the shared parts. opt applies to
// every agent (opt.Device only to a site of one).
func NewSite(cfg *config.Config, opt Options) (*Site, error) {
	log := opt.Log
	if log == nil {
		log = logrus.New()
	}
	s := &Site{Config: cfg, Log: log, failures: siteFailures{Releases: map[string][]string{}}}
	recs := cfg.Recorders()
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()
	if !cfg.IsSite() {
		a, err := New(recs[0].Config, opt)
		if err != nil {
			return nil, err
		}
		s.Agents = []*Agent{a}
		ok = true
		return s, nil
	}
	if !opt.ReadOnly {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("create state_dir: %w", err)
		}
		l, err := journal.LockDir(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		s.lock = l
		// A device: config's update in progress lives in state_dir itself,
		// where no recorder of the site looks: refuse rather than leave it
		// half done.
		if st, err := journal.ReadState(filepath.Join(cfg.StateDir, "journal.json")); err == nil && st.Current != nil {
			u := st.Current
			return nil, fmt.Errorf("%s holds an update in progress of the one-recorder (device:) configuration: release %s at step %s; finish it with that configuration first (fwagent update --now, then fwagent status says nothing is in progress), then switch to devices: (docs/site-gateway.md)", cfg.StateDir, u.ReleaseID, u.Step)
		}
	}
	if !opt.ReadOnly {
		f, err := loadSiteFailures(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		s.failures = f
	}
	s.images = &ImageCache{Dir: filepath.Join(cfg.StateDir, "images")}
	site := log.WithField("device", SiteLogName)
	s.manifest = &siteManifest{f: &fetch.Fetcher{
		HTTP:    fetch.NewHTTPClient(fetch.ClientOptions{Timeout: fetch.DefaultTimeout, Logger: site, RetryMax: cfg.Manifest.RetryMax}),
		MaxSize: cfg.Manifest.MaxSize,
		Logger:  site,
	}}
	s.slots = make(chan struct{}, max(cfg.Install.MaxParallel, 1))
	for _, r := range recs {
		o := opt
		o.Name, o.Images, o.Device = r.Name, s.images, nil
		a, err := New(r.Config, o)
		if err != nil {
			return nil, fmt.Errorf("recorder %s: %w", r.Name, err)
		}
		a.ManifestSource = s.manifest.fetch
		a.InstallGate = s.gate
		a.IdentityClaim = s.claim
		s.Agents = append(s.Agents, a)
	}
	ok = true
	return s, nil
}

// SiteLogName is the device field of the log lines of the gateway itself
// (the shared manifest fetch); no recorder can be named so.
const SiteLogName = "(site)"

// Close closes every agent and releases the gateway lock.
func (s *Site) Close() error {
	var errs []error
	for _, a := range s.Agents {
		errs = append(errs, a.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

// Select returns the agents of the named recorders (all for no names), or
// an error naming an unknown one.
func (s *Site) Select(names ...string) ([]*Agent, error) {
	if len(names) == 0 {
		return s.Agents, nil
	}
	var out []*Agent
	for _, n := range names {
		i := slices.IndexFunc(s.Agents, func(a *Agent) bool { return strings.EqualFold(a.DeviceName(), n) })
		if i < 0 {
			known := make([]string, len(s.Agents))
			for j, a := range s.Agents {
				known[j] = a.DeviceName()
			}
			return nil, fmt.Errorf("no recorder named %q in the config: use one of %s", n, strings.Join(known, ", "))
		}
		out = append(out, s.Agents[i])
	}
	return out, nil
}

// DeviceName is the recorder's name (config.DefaultDeviceName for a lone
// agent).
func (a *Agent) DeviceName() string {
	if a.Name == "" {
		return config.DefaultDeviceName
	}
	return a.Name
}

// DeviceOutcome is one recorder's outcome of a site cycle.
type DeviceOutcome struct {
	Device string `json:"device"`
	Outcome
}

// Cycle runs one cycle on each of the given agents (all when nil) at once,
// with one manifest fetch for the site, and returns their outcomes in
// order. A recorder that fails, refuses or times out does not hold up the
// others; installs wait for one of install.max_parallel slots.
func (s *Site) Cycle(ctx context.Context, mode Mode, agents []*Agent) []DeviceOutcome {
	if agents == nil {
		agents = s.Agents
	}
	if s.manifest != nil {
		s.manifest.reset(mode == ModeCheck)
	}
	out := make([]DeviceOutcome, len(agents))
	workers := s.Workers
	if workers <= 0 {
		workers = DefaultSiteWorkers
	}
	workers = max(workers, s.Config.Install.MaxParallel)
	if s.slots != nil && len(s.Agents) > 1 {
		s.identifyAll(ctx, mode, agents, workers)
	}
	free := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			free <- struct{}{}
			defer func() { <-free }()
			o := a.Cycle(ctx, mode)
			out[i] = DeviceOutcome{Device: a.DeviceName(), Outcome: o}
		}()
	}
	wg.Wait()
	if s.slots != nil {
		s.mu.Lock()
		for _, o := range out {
			s.newSerialLocked(o.Serial)
		}
		s.mu.Unlock()
	}
	s.collect()
	return out
}

// noteOutcome counts a failed install of a release for
// stop_after_failures; it runs before the recorder gives its install slot
// back, so the next recorder to get the slot sees the count.
func (s *Site) noteOutcome(device string, o Outcome) {
	if o.Result != ResultFailed || o.Release == "" || !(o.InstallFailed || installStep(o.Step)) || slices.Contains(o.Codes, CodeInstallInterrupted) {
		// An install the agent's own stop interrupted says nothing about
		// the release.
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newSerialLocked(o.Serial)
	failed := s.failures.Releases[o.Release]
	if slices.Contains(failed, device) {
		return
	}
	failed = append(failed, device)
	s.failures.Releases[o.Release] = failed
	s.saveFailuresLocked()
	if n := len(failed); n == s.Config.Install.StopAfterFailures {
		s.Log.WithFields(logrus.Fields{"device": SiteLogName, "release": o.Release, "failed_on": failed}).
			Error(fmt.Sprintf("release %s failed to install on %d recorders of this site (install.stop_after_failures: %d): it is not installed on the remaining recorders", o.Release, n, n))
	}
}

// installStep reports whether an attempt that failed in this journal step
// had reached the device.
func installStep(step string) bool {
	switch journal.Step(step) {
	case journal.StepInstall, journal.StepReboot, journal.StepConfirm:
		return true
	}
	return false
}

// gate is the site's InstallGate: it refuses a release that failed on
// stop_after_failures recorders, then waits for an install slot.
func (s *Site) gate(ctx context.Context, device, release string) (func(Outcome), error) {
	// A reboot or confirmation of a recorder already flashed (release "")
	// is never held.
	if release != "" {
		s.mu.Lock()
		// The manifest this recorder accepted in this cycle may be newer
		// than any the site saw: it forgets the failures first.
		if a := s.agentNamed(device); a != nil && a.Journal != nil {
			s.newSerialLocked(a.Journal.State().LastSerial)
		}
		s.mu.Unlock()
		if err := s.held(release); err != nil {
			return nil, err
		}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if release != "" {
		if err := s.held(release); err != nil {
			<-s.slots
			return nil, err
		}
	}
	var once sync.Once
	return func(o Outcome) {
		once.Do(func() {
			s.noteOutcome(device, o)
			<-s.slots
		})
	}, nil
}

func (s *Site) held(release string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := s.failures.Releases[release]
	if len(failed) >= s.Config.Install.StopAfterFailures {
		return fmt.Errorf("%w: release %s failed to install on %d recorders of this site (%s; install.stop_after_failures: %d), so it is not installed on this one: find out why on those recorders, then publish a manifest with a higher serial",
			ErrInstallHeld, release, len(failed), strings.Join(failed, ", "), s.Config.Install.StopAfterFailures)
	}
	return nil
}

// collect removes the cached images no recorder's update in progress needs.
func (s *Site) collect() {
	if s.images == nil {
		return
	}
	keep := map[string]bool{}
	for _, a := range s.Agents {
		if a.Journal == nil {
			continue
		}
		if u := a.Journal.State().Current; u != nil && u.ImagePath != "" {
			keep[u.ImagePath] = true
		}
	}
	for _, name := range s.images.Collect(keep) {
		s.Log.WithFields(logrus.Fields{"device": SiteLogName, "image": name}).Info("image removed from the site's cache: no recorder needs it any more")
	}
}

// Run is the gateway daemon: a site cycle, reports flushed, a sleep until
// the earliest next poll, window or retry among the recorders, and again
// until ctx ends.
func (s *Site) Run(ctx context.Context) error {
	if len(s.Agents) == 1 && s.slots == nil {
		a := s.Agents[0]
		if a.ReadyHook == nil {
			a.ReadyHook = s.ReadyHook
		}
		return a.Run(ctx)
	}
	stopWatchdog := s.Agents[0].startWatchdog(ctx)
	defer stopWatchdog()
	if s.ReadyHook != nil {
		s.ReadyHook()
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	failures := make([]int, len(s.Agents))
	for {
		outs := s.Cycle(ctx, ModeUpdate, nil)
		for _, a := range s.Agents {
			a.FlushReports(ctx)
		}
		if ctx.Err() != nil {
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return nil
		}
		var wait time.Duration
		for i, o := range outs {
			if o.Result == ResultFailed {
				failures[i]++
			} else {
				failures[i] = 0
			}
			w := s.Agents[i].nextWait(o.Outcome, failures[i])
			if i == 0 || w < wait {
				wait = w
			}
		}
		next := s.Agents[0].now().Add(wait)
		for _, a := range s.Agents {
			a.setStatus(func(st *Status) { st.NextPoll = next })
		}
		s.Log.WithFields(logrus.Fields{"device": SiteLogName, "next_poll": next.Format(time.RFC3339)}).Debug("sleeping until the next cycle")
		select {
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return nil
		case <-s.Agents[0].after(wait):
		}
	}
}

// siteManifest fetches the manifest once per site cycle and answers each
// recorder's conditional request from that one fetch: a recorder whose
// validators match gets "not modified", the others the body.
type siteManifest struct {
	f *fetch.Fetcher

	mu      sync.Mutex
	done    bool
	check   bool
	err     error
	cond    fetch.Conditional
	body    []byte
	etag    string
	lastMod string
	url     string
}

// reset starts a new cycle: the next request fetches again.
func (m *siteManifest) reset(check bool) {
	m.mu.Lock()
	m.done, m.err, m.check = false, nil, check
	m.mu.Unlock()
}

func (m *siteManifest) fetch(ctx context.Context, urls []string, cond fetch.Conditional) (fetch.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.done {
		c := m.cond
		if m.body == nil || m.check {
			c = fetch.Conditional{}
		}
		res, err := m.f.Fetch(ctx, urls, c)
		m.done, m.err = true, err
		if err == nil {
			if !res.NotModified {
				m.body, m.etag, m.lastMod = res.Body, res.ETag, res.LastModified
				m.cond = fetch.Conditional{ETag: res.ETag, LastModified: res.LastModified}
			}
			m.url = res.URL
		}
	}
	if m.err != nil {
		return fetch.Result{}, m.err
	}
	if (cond.ETag != "" && cond.ETag == m.etag) || (cond.ETag == "" && m.etag == "" && cond.LastModified != "" && cond.LastModified == m.lastMod) {
		return fetch.Result{NotModified: true, ETag: m.etag, LastModified: m.lastMod, URL: m.url}, nil
	}
	return fetch.Result{Body: m.body, ETag: m.etag, LastModified: m.lastMod, URL: m.url}, nil
}

// fetchManifest fetches the manifest through the site (ManifestSource) or
// on its own.
func (a *Agent) fetchManifest(ctx context.Context, urls []string, cond fetch.Conditional) (fetch.Result, error) {
	if a.ManifestSource != nil {
		return a.ManifestSource(ctx, urls, cond)
	}
	return a.Fetcher.Fetch(ctx, urls, cond)
}

// acquireInstall asks the site's InstallGate for an install slot before
// the first device step. held reports a release the site stopped
// installing: the cycle then ends with ResultHeld, the update stays in the
// journal (verified, waiting) and counts no attempt.
func (c *cycle) acquireInstall(ctx context.Context, step journal.Step) (held bool, err error) {
	a := c.a
	if a.InstallGate == nil {
		return false, nil
	}
	// Only a new upload can be held: a recorder that was already flashed
	// goes on to its reboot and confirmation whatever happened elsewhere.
	release := ""
	if c.release != nil && step == journal.StepInstall {
		release = c.release.ID
	}
	done, err := a.InstallGate(ctx, a.DeviceName(), release)
	if err == nil {
		c.releaseInstall = done
		return false, nil
	}
	if !errors.Is(err, ErrInstallHeld) {
		return false, err
	}
	if err := c.forgetHeldSteps(); err != nil {
		return false, err
	}
	c.out.Result = ResultHeld
	c.out.Codes = []string{CodeSiteStopped}
	c.out.Message = err.Error()
	c.log.Warn(c.out.Message)
	// The integrator learns why this recorder did not get the release.
	r := report.Report{Step: string(journal.StepWaitWindow), Result: string(ResultHeld), Codes: c.out.Codes, Message: c.out.Message}
	if u := c.current(); u != nil {
		r.ReleaseID, r.AttemptID = u.ReleaseID, u.AttemptID
	}
	c.sendReport(r)
	return true, nil
}
