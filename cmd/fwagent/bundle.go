package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/internal/cli"
)

// bundleCommand is `fwagent support-bundle`: a redacted tar.gz for support.
func bundleCommand() *cobra.Command {
	var (
		out              string
		personal         bool
		stateDir, logDir string
		maxLogMB         int
	)
	c := &cobra.Command{
		Use: "support-bundle -o FILE.tar.gz",
		Example: "  fwagent support-bundle -o bundle.tar.gz                      # redacted: no personal data, never secrets\n" +
			"  fwagent support-bundle -o bundle.tar.gz --config /etc/fwagent/agent.yaml",
		Short: "Write a support bundle: logs, journal, history, audit trail, config, manifest, identity, system",
		Long: "Write a tar.gz for support. Secrets (passwords, tokens, Authorization values, private keys)\n" +
			"are always removed. IP and MAC addresses, device IDs and names, emails and user names are\n" +
			"replaced by [REDACTED:...] markers unless --include-personal is given; index.json records\n" +
			"the mode. The signed manifest goes in decoded and redacted. See docs/privacy.md.\n" +
			"Works without a valid config too (then pass --state-dir and --log-dir, or the defaults are used).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return cli.Usage(errors.New("-o FILE.tar.gz is required"))
			}
			if maxLogMB <= 0 {
				return cli.Usage(errors.New("--max-log-mb must be more than zero"))
			}
			var in support.BundleInput
			cfg, err := loadSupportConfig(cmd)
			if err == nil {
				if in, err = bundleInput(cfg, personal); err != nil {
					return err
				}
			} else {
				in = support.BundleInput{AgentVersion: buildVersion(), IncludePersonal: personal}
				// Support needs the bundle most when the config is broken:
				// carry the raw file (redacted like everything) and the error.
				in.StateDir, in.LogDir = config.DefaultStateDir, config.DefaultLogDir
				in.Notes = append(in.Notes, "config not loaded: "+err.Error())
				path, _ := cmd.Flags().GetString("config")
				if raw, rerr := os.ReadFile(path); rerr == nil {
					in.ConfigYAML = raw
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "fwagent support-bundle: warning:", err)
			}
			in.MaxLogBytes = int64(maxLogMB) << 20
			if stateDir != "" {
				in.StateDir = stateDir
			}
			if logDir != "" {
				in.LogDir = logDir
			}
			if err := writeBundleFile(out, in); err != nil {
				return err
			}
			mode := support.ModeRedacted
			if personal {
				mode = support.ModePersonal
			}
			fmt.Fprintf(cmd.OutOrStdout(), "support bundle written: %s (%s)\n", out, mode)
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&out, "output", "o", "", "file to write (tar.gz)")
	f.BoolVar(&personal, "include-personal", false, "keep IP and MAC addresses, device IDs and names, emails and user names (secrets are removed anyway)")
	f.StringVar(&stateDir, "state-dir", "", "state directory (default: state_dir from the config)")
	f.StringVar(&logDir, "log-dir", "", "log directory (default: log.dir from the config)")
	f.IntVar(&maxLogMB, "max-log-mb", int(support.DefaultMaxLogBytes>>20), "cap of the logs in the bundle, in MiB")
	return c
}

// writeBundleFile writes the bundle atomically: a temporary file in the same
// directory, synced and renamed over path.
func writeBundleFile(path string, in support.BundleInput) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	pf, err := renameio.NewPendingFile(abs, renameio.WithPermissions(0o600))
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer pf.Cleanup()
	if err := support.WriteBundle(pf, in); err != nil {
		return err
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
