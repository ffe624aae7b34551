package main

import (
	"context"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/support"
)

// Main is fwagent wired together (as benbjohnson/wtf's cmd/wtfd Main): the
// loaded config, the logger and the parts built from them, the site of
// recorders and its agents. The commands build one with NewMain, use its
// parts, and Close it; the daemon calls Run.
type Main struct {
	cfg    *config.Config
	log    *logrus.Logger
	site   *agent.Site  // every recorder of the config
	agent  *agent.Agent // the first recorder (the only one of a device: config)
	closer io.Closer
	// progress, when set, shows download and install progress on stderr.
	progress *progressView
}

// Close releases what NewMain opened: the agents' journals and audit
// trails, the log file.
func (s *Main) Close() error {
	var first error
	if s.progress != nil {
		s.progress.Finish()
	}
	if s.site != nil {
		first = s.site.Close()
	}
	if s.closer != nil {
		if err := s.closer.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Run is the daemon: the status endpoint (status.listen) and every
// recorder's update loop, until ctx ends (SIGTERM stops it at a safe
// point).
func (s *Main) Run(ctx context.Context) error {
	cfg := s.cfg
	if cfg.Status.Listen != "" {
		stop, err := serveStatus(ctx, s)
		if err != nil {
			return err
		}
		defer stop()
	}
	s.gatewayLog().WithFields(logrus.Fields{"version": buildVersion(), "config": cfg.Path(), "state_dir": cfg.StateDir}).Info("fwagent started")
	err := s.site.Run(ctx)
	s.gatewayLog().Info("fwagent stopped")
	return err
}

// mainOptions say how a command wants fwagent wired.
type mainOptions struct {
	readOnly bool   // check: no lock, no writes
	fileLog  bool   // write the JSON log file in log.dir
	level    string // overrides log.level when set
	progress bool   // show progress on stderr: a bar on a terminal, a line per 10% elsewhere
	offline  string // --from DIR
	// forceText writes readable log lines to stderr even when it is not a
	// terminal (the demo shows its steps).
	forceText bool
}

// openMain loads the config named by --config and wires fwagent.
func openMain(cmd *cobra.Command, opt mainOptions) (*Main, error) {
	path, _ := cmd.Flags().GetString("config")
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return NewMain(cmd, cfg, opt)
}

// NewMain builds fwagent from cfg: the logger, then every recorder's agent
// (agent.NewSite), with progress shown on stderr when asked.
func NewMain(cmd *cobra.Command, cfg *config.Config, opt mainOptions) (*Main, error) {
	stderr := cmd.ErrOrStderr()
	terminal := false
	if f, ok := stderr.(*os.File); ok {
		terminal = support.IsTerminal(f)
	}
	// Progress goes to stderr; on a terminal, log lines go through the
	// progress view so that they appear above its bar.
	var progress *progressView
	if opt.progress {
		progress = newProgressView(stderr, terminal)
		if terminal {
			stderr = progress
		}
	}
	lo := support.LogOptions{Level: cfg.Log.Level, Stderr: stderr, Terminal: terminal || opt.forceText}
	if opt.level != "" {
		lo.Level = opt.level
	}
	if opt.fileLog {
		lo.Dir, lo.MaxSizeMB, lo.RetentionDays, lo.MaxBackups = cfg.Log.Dir, cfg.Log.MaxSizeMB, cfg.Log.RetentionDays, cfg.Log.MaxBackups
	}
	log, closer, err := support.NewLogger(lo)
	if err != nil {
		return nil, err
	}
	s := &Main{cfg: cfg, log: log, closer: closer}
	site, err := agent.NewSite(cfg, agent.Options{Backend: backend.New, Version: buildVersion(), Log: log, ReadOnly: opt.readOnly})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.site, s.agent = site, site.Agents[0]
	for _, a := range site.Agents {
		a.OfflineDir = opt.offline
	}
	// One progress view follows one recorder: a site's recorders log
	// their progress instead.
	if progress != nil && len(site.Agents) == 1 {
		progress.attach(s.agent)
		s.progress = progress
	}
	return s, nil
}
