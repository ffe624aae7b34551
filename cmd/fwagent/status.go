package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/journal"
)

// statusView is what fwagent status shows: the journal and recent history.
type statusView struct {
	StateDir string           `json:"state_dir"`
	Journal  journal.State    `json:"journal"`
	History  []journal.Result `json:"history"`
}

func statusCommand() *cobra.Command {
	var (
		asJSON bool
		n      int
	)
	c := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the journal: the update in progress, the last result and recent history",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			j, err := journal.OpenReadOnly(cfg.StateDir)
			if err != nil {
				return err
			}
			hist, err := j.History(n)
			if err != nil {
				return err
			}
			v := statusView{StateDir: cfg.StateDir, Journal: j.State(), History: hist}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			printStatus(cmd.OutOrStdout(), v)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	c.Flags().IntVarP(&n, "history", "n", 10, "how many past attempts to show")
	return c
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
