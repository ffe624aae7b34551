package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent"
)

// backupsCommand is `fwagent backups`: the recorder configuration backups
// the agent made before its uploads. Restoring one is a deliberate manual
// step (docs/health-and-backup.md), never done by fwagent.
func backupsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "backups",
		Short: "List the recorder configuration backups made before uploads",
		Args:  cobra.NoArgs,
	}
	var stateDir string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the configuration backups: path, recorder serial, time, size, SHA-256",
		Long: "List the recorder configuration backups in state_dir/backups, oldest first per recorder.\n" +
			"The agent exports the configuration (ISAPI System/configurationData) before every upload\n" +
			"and keeps the last " + fmt.Sprint(agent.BackupsKept) + " per recorder (mode 0600: they hold the recorder's credentials;\n" +
			"they never enter a support bundle). fwagent never restores one: to restore, use the\n" +
			"vendor's tools or PUT the file to /ISAPI/System/configurationData by hand (the recorder\n" +
			"reboots); see docs/health-and-backup.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dirs := []siteDir{{dir: stateDir}}
			if stateDir == "" {
				cfg, err := loadSupportConfig(cmd)
				if err != nil {
					return fmt.Errorf("%w (or pass --state-dir)", err)
				}
				dirs = dirs[:0]
				for _, r := range cfg.Recorders() {
					name := r.Name
					if !cfg.IsSite() {
						name = ""
					}
					dirs = append(dirs, siteDir{name: name, dir: r.Config.StateDir})
				}
			}
			return listBackups(cmd.OutOrStdout(), dirs)
		},
	}
	list.Flags().StringVar(&stateDir, "state-dir", "", "state directory (default: state_dir from the config)")
	c.AddCommand(list)
	return c
}

// siteDir is a state folder and the name of its recorder in a site ("" for
// a single recorder).
type siteDir struct{ name, dir string }

// listBackups prints the backups of every state folder in dirs.
func listBackups(out io.Writer, dirs []siteDir) error {
	site := len(dirs) > 1 || (len(dirs) == 1 && dirs[0].name != "")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	n := 0
	for _, d := range dirs {
		bs, err := agent.ListBackups(d.dir)
		if err != nil {
			return fmt.Errorf("list the backups in %s: %w", d.dir, err)
		}
		for _, b := range bs {
			if n == 0 {
				if site {
					fmt.Fprint(tw, "DEVICE\t")
				}
				fmt.Fprintln(tw, "PATH\tSERIAL\tTIME\tSIZE\tSHA256")
			}
			n++
			if site {
				fmt.Fprintf(tw, "%s\t", d.name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.Path, b.Serial, b.Time.UTC().Format(time.RFC3339), b.Size, b.SHA256)
		}
	}
	if n == 0 {
		where := make([]string, 0, len(dirs))
		for _, d := range dirs {
			where = append(where, d.dir)
		}
		fmt.Fprintf(out, "no configuration backups in %s\n", strings.Join(where, ", "))
		return nil
	}
	return tw.Flush()
}
