package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/reason"
)

// statusView is what fwagent status shows: the journal and recent history.
type statusView struct {
	Device   string           `json:"device,omitempty"` // the recorder's name (a site)
	StateDir string           `json:"state_dir"`
	Journal  journal.State    `json:"journal"`
	History  []journal.Result `json:"history"`
}

func statusCommand() *cobra.Command {
	var (
		asJSON  bool
		n       int
		devices []string
	)
	c := &cobra.Command{
		Use:     "status [--json]",
		Example: "  fwagent status\n  fwagent status --json -n 50",
		Short:   "Show the journal: the update in progress, the last result and recent history",
		Long: "Show the journal: the update in progress, the last result and recent history.\n" +
			"A site (devices:) shows every recorder's journal, or those --device names; --json gives an array.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if cfg.IsSite() || len(devices) > 0 {
				return siteStatusCommand(cmd.OutOrStdout(), cfg, devices, n, asJSON)
			}
			v, err := readStatus(cfg.StateDir, n)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			printStatus(cmd.OutOrStdout(), v)
			return nil
		},
	}
	c.Flags().StringSliceVar(&devices, "device", nil, "only these recorders of a site (by name; repeat or comma-separate)")
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	c.Flags().IntVarP(&n, "history", "n", 10, "how many past attempts to show")
	return c
}

// readStatus reads one journal and its last n results.
func readStatus(dir string, n int) (statusView, error) {
	j, err := journal.OpenReadOnly(dir)
	if err != nil {
		return statusView{}, err
	}
	hist, err := j.History(n)
	if err != nil {
		return statusView{}, err
	}
	return statusView{StateDir: dir, Journal: j.State(), History: hist}, nil
}

// siteStatusCommand shows each selected recorder's journal.
func siteStatusCommand(w io.Writer, cfg *config.Config, devices []string, n int, asJSON bool) error {
	var views []statusView
	for _, r := range cfg.Recorders() {
		if len(devices) > 0 && !slices.ContainsFunc(devices, func(d string) bool { return strings.EqualFold(d, r.Name) }) {
			continue
		}
		v := statusView{Device: r.Name, StateDir: r.Config.StateDir}
		if _, err := os.Stat(r.Config.StateDir); err == nil {
			if v, err = readStatus(r.Config.StateDir, n); err != nil {
				return fmt.Errorf("recorder %s: %w", r.Name, err)
			}
			v.Device = r.Name
		}
		views = append(views, v)
	}
	if len(views) < len(devices) || len(views) == 0 {
		names := make([]string, 0)
		for _, r := range cfg.Recorders() {
			names = append(names, r.Name)
		}
		return cli.Usage(fmt.Errorf("--device %s: the config names the recorders %s", strings.Join(devices, ","), strings.Join(names, ", ")))
	}
	if asJSON {
		return writeJSON(w, views)
	}
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "device:           %s\n", v.Device)
		printStatus(w, v)
	}
	return nil
}

func printStatus(w io.Writer, v statusView) {
	st := v.Journal
	fmt.Fprintf(w, "state dir:        %s\n", v.StateDir)
	fmt.Fprintf(w, "manifest serial:  %d\n", st.LastSerial)
	if u := st.Current; u != nil {
		fmt.Fprintf(w, "in progress:      release %s (%s %s), step %s, attempt %s #%d, %d/%d bytes, verified %v\n",
			u.ReleaseID, u.Variant, u.Version, u.Step, u.AttemptID, u.Attempts, u.Bytes, u.Size, u.Verified)
		if u.LastError != "" {
			fmt.Fprintf(w, "last error:       %s (%s)\n", u.LastError, u.ErrorClass)
		}
	} else {
		fmt.Fprintf(w, "in progress:      nothing\n")
	}
	for id, q := range st.Quarantine {
		fmt.Fprintf(w, "quarantined:      %s until a manifest serial above %d (%s)\n", id, q.Serial, q.Reason)
	}
	if r := st.LastResult; r != nil {
		fmt.Fprintf(w, "last result:      %s\n", resultLine(*r))
	}
	if c := st.LastCycle; c != nil {
		line := fmt.Sprintf("%s %s", c.Finished.Local().Format(time.DateTime), c.Result)
		if c.Release != "" {
			line += " release " + c.Release
		}
		if len(c.Codes) > 0 {
			line += " [" + strings.Join(c.Codes, ", ") + "]"
		}
		if c.Message != "" {
			line += ": " + c.Message
		}
		fmt.Fprintf(w, "last cycle:       %s\n", line)
		for _, code := range c.Codes {
			if adv := reason.Advice(reason.Code(code)); adv != "" {
				fmt.Fprintf(w, "  %s: %s\n", code, adv)
			}
		}
	}
	if len(v.History) > 0 {
		fmt.Fprintf(w, "history (newest last):\n")
		for _, r := range v.History {
			fmt.Fprintf(w, "  %s\n", resultLine(r))
		}
	}
}

func resultLine(r journal.Result) string {
	s := fmt.Sprintf("%s %s release %s %s attempt %s", r.Finished.Local().Format(time.DateTime), r.Outcome, r.ReleaseID, r.Version, r.AttemptID)
	if len(r.Codes) > 0 {
		s += " [" + strings.Join(r.Codes, ", ") + "]"
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}
