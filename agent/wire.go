package agent

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/internal/httplog"
	"github.com/fwagent/fwagent/internal/retry"
	"github.com/fwagent/fwagent/manifest"
)

// Options are the parts of an agent that do not come from the config.
type Options struct {
	Version string
	Log     logrus.FieldLogger
	// Backend builds the device backend the config selects: the command
	// wires agent/backend.New; the agent itself knows no backend.
	Backend func(cfg *config.Config, log logrus.FieldLogger) (device.Device, error)
	// Device, when set, is used instead of calling Backend (tests).
	Device device.Device
	// ReadOnly opens the journal without its lock and opens no audit trail
	// or report queue: for fwagent check, which changes nothing and must
	// work while the daemon runs.
	ReadOnly bool
	// Name is the recorder's name in a site: every log line of the agent
	// carries it as the device field ("" for a lone agent).
	Name string
	// Images is the site's shared image cache (nil: state_dir/images).
	Images *ImageCache
}

// New builds an agent from cfg: the device backend, the trusted keys, the
// HTTP clients, the journal (taking its lock), the report queue and the
// audit trail. Close releases them.
func New(cfg *config.Config, opt Options) (*Agent, error) {
	log := opt.Log
	if log == nil {
		log = logrus.New()
	}
	if opt.Name != "" {
		log = log.WithField("device", opt.Name)
	}
	a := &Agent{Config: cfg, Log: log, Version: opt.Version, Metrics: support.NewMetrics(opt.Version), Name: opt.Name, Images: opt.Images}
	if opt.Name != "" {
		a.Metrics = support.NewDeviceMetrics(opt.Version, opt.Name)
	}
	a.ids.device = opt.Name
	var logger *logrus.Logger
	switch l := log.(type) {
	case *logrus.Logger:
		logger = l
	case *logrus.Entry:
		logger = l.Logger
	}
	if logger != nil {
		fields := addHooks(logger)
		fields.add(&a.ids)
		a.closers = append(a.closers, func() error { fields.remove(&a.ids); return nil })
	}
	ok := false
	defer func() {
		if !ok {
			_ = a.Close()
		}
	}()
	var err error
	if a.Trust, err = LoadTrust(cfg); err != nil {
		return nil, err
	}
	a.Device = opt.Device
	if a.Device == nil {
		if opt.Backend == nil {
			return nil, fmt.Errorf("agent: no device backend: set Options.Backend (cmd/fwagent wires backend.New) or Options.Device")
		}
		if a.Device, err = opt.Backend(cfg, log); err != nil {
			return nil, err
		}
	}
	// One layer retries each kind of request, with the one backoff
	// (docs/reference/retries.md): the manifest client, the Downloader
	// (its client never retries), the ISAPI client, the report queue.
	wait := cfg.Retry
	a.Fetcher = &fetch.Fetcher{
		HTTP: fetch.NewHTTPClient(fetch.ClientOptions{RetryMax: cfg.Manifest.RetryMax, RetryWaitMin: wait.WaitMin, RetryWaitMax: wait.WaitMax,
			Timeout: fetch.DefaultTimeout, Logger: log}),
		MaxSize: cfg.Manifest.MaxSize,
		Logger:  log,
	}
	dl := cfg.Download
	a.Downloader = &fetch.Downloader{
		Client:         fetch.NewHTTPClient(fetch.ClientOptions{RetryMax: 0, HeaderTimeout: dl.RequestTimeout, Logger: log}).StandardClient(),
		RetryMax:       dl.RetryMax,
		Backoff:        retry.Policy{WaitMin: wait.WaitMin, WaitMax: wait.WaitMax}.Wait,
		BandwidthLimit: dl.BandwidthLimit,
		StallTimeout:   dl.StallTimeout,
		Logger:         log,
	}
	if opt.ReadOnly {
		if a.Journal, err = journal.OpenReadOnly(cfg.StateDir); err != nil {
			return nil, err
		}
		ok = true
		return a, nil
	}
	if a.Journal, err = journal.Open(cfg.StateDir); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Journal.Close)
	if a.Audit, err = audit.Open(cfg.StateDir); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Audit.Close)
	var key *fleet.DeviceKey
	if cfg.Fleet.URL != "" {
		// The device key lives with the journal: one key per recorder.
		if key, err = fleet.LoadOrCreateKey(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("fleet.url: %w", err)
		}
		fc := fleet.NewClient(cfg.Fleet.URL, key)
		fc.HTTPClient.RetryMax = 1
		fc.HTTPClient.RetryWaitMin, fc.HTTPClient.RetryWaitMax = wait.WaitMin, wait.WaitMax
		fc.HTTPClient.Logger = httplog.Leveled(log)
		a.Fleet = fc
	}
	ropt := report.Options{URL: cfg.Report.URL, Token: cfg.Report.Token, Max: cfg.Report.QueueMax, Logger: log,
		Retry: retry.Policy{Max: cfg.Report.RetryMax, WaitMin: wait.WaitMin, WaitMax: wait.WaitMax}}
	if key != nil {
		// With a fleet server the reports go to it, signed when queued.
		if ropt.URL != "" {
			log.Warn("fleet.url is set: reports go to the fleet server, signed; report.url and its token are not used")
		}
		ropt.URL, ropt.Token, ropt.Seal = strings.TrimRight(cfg.Fleet.URL, "/")+fleet.ReportPath, "", sealReport(key)
	}
	if ropt.URL != "" {
		if a.Reports, err = report.NewQueue(cfg.StateDir, ropt); err != nil {
			return nil, err
		}
	}
	ok = true
	return a, nil
}

// LoadTrust reads the trusted public keys the config names.
func LoadTrust(cfg *config.Config) (manifest.Trust, error) {
	keys := make([]ed25519.PublicKey, 0, len(cfg.Manifest.Keys))
	for _, path := range cfg.Manifest.Keys {
		if !filepath.IsAbs(path) && cfg.Path() != "" {
			path = filepath.Join(filepath.Dir(cfg.Path()), path)
		}
		k, err := manifest.LoadPublicKey(path)
		if err != nil {
			return manifest.Trust{}, fmt.Errorf("manifest.keys: %w", err)
		}
		keys = append(keys, k)
	}
	return manifest.NewTrust(cfg.Manifest.Threshold, keys...), nil
}

// hooksMu serialises adding hooks to a logger that agents built at the same
// time share (a site's recorders, parallel tests): logrus guards AddHook but
// not the read of l.Hooks that keeps each of our hooks single.
var hooksMu sync.Mutex

// addHooks returns l's attempt-fields hook, adding it and the redacting
// hook unless l has them: the recorders of a site share one logger, and
// one of each per line is enough (one per recorder was O(N) work per line,
// O(N²) per cycle).
func addHooks(l *logrus.Logger) *fieldsByDevice {
	hooksMu.Lock()
	defer hooksMu.Unlock()
	var fields *fieldsByDevice
	redacting := false
	for _, h := range l.Hooks[logrus.InfoLevel] {
		switch h := h.(type) {
		case *fieldsByDevice:
			fields = h
		case support.SecretHook:
			redacting = true
		}
	}
	if fields == nil {
		fields = &fieldsByDevice{byDevice: map[string]*attemptFields{}}
		l.AddHook(fields)
	}
	if !redacting {
		l.AddHook(support.SecretHook{})
	}
	return fields
}
