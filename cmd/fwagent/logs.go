package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/internal/cli"
)

// logsCommand is `fwagent logs`: matching log lines, readable.
func logsCommand() *cobra.Command {
	var (
		since                    string
		release, attempt, device string
		logDir                   string
		raw                      bool
	)
	c := &cobra.Command{
		Use:     "logs",
		Example: "  fwagent logs --since 24h\n  fwagent logs --release iDS-9632NXI-I8-16S-4.1.25 --since 7d\n  fwagent logs --json --since 30m",
		Short:   "Print log lines readably, filtered by age, release or attempt",
		Long: "Print the agent's log lines (the active log and rotated ones, also compressed), oldest first,\n" +
			"as: time LEVEL message release=... attempt=... step=... code=... other=fields.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := support.Query{Release: release, Attempt: attempt, Device: device}
			if since != "" {
				d, err := config.ParseDuration(since)
				if err != nil {
					return cli.Usage(fmt.Errorf("--since %q: %v (use e.g. 30m, 2h, 7d)", since, err))
				}
				q.Since = time.Now().Add(-d)
			}
			if logDir == "" {
				cfg, err := loadSupportConfig(cmd)
				if err != nil {
					return fmt.Errorf("%w (or pass --log-dir)", err)
				}
				logDir = cfg.Log.Dir
			}
			out := cmd.OutOrStdout()
			var firstErr error
			for e, err := range support.ReadLogs(logDir, q) {
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "fwagent logs:", err)
					firstErr = errors.Join(firstErr, err)
					continue
				}
				if raw {
					fmt.Fprintln(out, string(e.Raw))
				} else {
					fmt.Fprintln(out, support.FormatLogEntry(e))
				}
			}
			if firstErr != nil {
				return cli.WithCode(exitError, nil)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&since, "since", "", "only lines newer than this duration (e.g. 30m, 2h, 7d)")
	f.StringVar(&release, "release", "", "only lines of this release ID")
	f.StringVar(&attempt, "attempt", "", "only lines of this attempt ID")
	f.StringVar(&device, "device", "", "only lines of this recorder of a site (its name; (site) for the gateway's own lines)")
	f.StringVar(&logDir, "log-dir", "", "log directory (default: log.dir from the config)")
	f.BoolVar(&raw, "json", false, "print the stored JSON lines instead of readable text")
	return c
}

// loadSupportConfig loads the file named by the root's --config flag.
func loadSupportConfig(cmd *cobra.Command) (*config.Config, error) {
	path, err := cmd.Flags().GetString("config")
	if err != nil {
		return nil, err
	}
	return config.Load(path)
}
