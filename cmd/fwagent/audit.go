package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/internal/cli"
)

// auditCommand is `fwagent audit`: checks of the audit trail.
func auditCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Check the audit trail of the agent's decisions",
		Args:  cobra.NoArgs,
	}
	var stateDir string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify the hash chain of the audit trail and name the first broken entry",
		Long: "Verify audit.jsonl in the state directory (a site: in each recorder's folder): each entry's own hash, the chain of\n" +
			"prev hashes, consecutive sequence numbers, and the last entry recorded in audit.head.\n" +
			"Exit 0 when intact, 1 when broken (the first broken entry is named) or when the\n" +
			"directory has no audit trail at all. It detects accidental damage, naive edits,\n" +
			"truncation and a crash mid-write; a rewrite of the whole chain by someone with write\n" +
			"access to the state directory verifies too: compare with the chain head in the reports.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				cfg, err := loadSupportConfig(cmd)
				if err != nil {
					return fmt.Errorf("%w (or pass --state-dir)", err)
				}
				if cfg.IsSite() {
					return verifySite(cmd.OutOrStdout(), cfg)
				}
				stateDir = cfg.StateDir
			}
			if !audit.Exists(stateDir) {
				return cli.WithCode(exitError, fmt.Errorf("no audit trail in %s (neither %s nor %s): check --state-dir or state_dir", stateDir, audit.FileName, audit.HeadFileName))
			}
			n, err := audit.Verify(stateDir)
			if err != nil {
				return cli.WithCode(exitError, fmt.Errorf("audit trail broken after %d intact entries: %w", n, err))
			}
			if n == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "audit trail empty: the agent has recorded no decision yet")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit trail intact: %d entries\n", n)
			return nil
		},
	}
	verify.Flags().StringVar(&stateDir, "state-dir", "", "state directory (default: state_dir from the config)")
	c.AddCommand(verify)
	return c
}

// verifySite verifies the audit trail of every recorder of a site; a
// recorder the gateway never served has none yet and is named as such.
func verifySite(w io.Writer, cfg *config.Config) error {
	broken := 0
	for _, r := range cfg.Recorders() {
		dir := r.Config.StateDir
		if !audit.Exists(dir) {
			fmt.Fprintf(w, "%s: no audit trail yet\n", r.Name)
			continue
		}
		n, err := audit.Verify(dir)
		if err != nil {
			broken++
			fmt.Fprintf(w, "%s: audit trail broken after %d intact entries: %v\n", r.Name, n, err)
			continue
		}
		fmt.Fprintf(w, "%s: audit trail intact: %d entries\n", r.Name, n)
	}
	if broken > 0 {
		return cli.WithCode(exitError, fmt.Errorf("%d recorders' audit trails are broken", broken))
	}
	return nil
}
