package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
)

func newInspectCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "inspect ENVELOPE",
		Short: "Show what a signed manifest says: serial, dates, signers, releases, rollouts",
		Long: `Show what ENVELOPE says about itself, without checking any signature
(use fwctl verify for that): serial, dates, signature key IDs, and each
release with its image and rollout. Exit 1 when the payload is invalid.`,
		Example: "  fwctl inspect manifest.dsse.json",
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(args[0])
			if err != nil {
				return err
			}
			u, err := manifest.ReadUnverified(data, manifest.ParseOptions{})
			if err != nil {
				return cli.Failure(fmt.Errorf("%s: %w", args[0], err))
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "payload type: %s\n", u.PayloadType)
			fmt.Fprintf(w, "signatures:   %d (not checked; run fwctl verify)\n", len(u.KeyIDs))
			for _, id := range u.KeyIDs {
				fmt.Fprintf(w, "  keyid %s\n", orNone(id))
			}
			if u.ParseErr != nil {
				return cli.Failure(fmt.Errorf("%s: the payload is invalid: %w", args[0], u.ParseErr))
			}
			printManifest(w, u.Manifest, time.Now())
			return nil
		},
	}
	return c
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func printManifest(w io.Writer, m *manifest.Manifest, now time.Time) {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	state := "valid now"
	switch {
	case !m.Expires.After(now):
		state = "EXPIRED"
	case m.Issued.After(now):
		state = "issued in the future"
	}
	fmt.Fprintf(w, "schema:       %d\n", m.Schema)
	fmt.Fprintf(w, "serial:       %d\n", m.Serial)
	fmt.Fprintf(w, "issued:       %s\n", ts(m.Issued))
	fmt.Fprintf(w, "expires:      %s (%s)\n", ts(m.Expires), state)
	fmt.Fprintf(w, "releases:     %d\n", len(m.Releases))
	for _, r := range m.Releases {
		fmt.Fprintf(w, "\nrelease %s\n", r.ID)
		fmt.Fprintf(w, "  models:     %s\n", strings.Join(r.Models, ", "))
		v := r.Version
		if r.Build != "" {
			v += " build " + r.Build
		}
		fmt.Fprintf(w, "  version:    %s (%s)\n", v, r.Variant)
		fmt.Fprintf(w, "  image:      %d bytes, sha256 %s\n", r.Image.Size, r.Image.SHA256)
		for _, u := range r.Image.URLs {
			fmt.Fprintf(w, "    %s\n", u)
		}
		if q := r.Requires; q != nil {
			fmt.Fprintf(w, "  requires:   installed firmware from %s to %s\n", orAny(q.MinVersion), orAny(q.MaxVersion))
		}
		if r.TermsURL != "" {
			fmt.Fprintf(w, "  terms:      %s\n", r.TermsURL)
		}
		if r.Notes != "" {
			fmt.Fprintf(w, "  notes:      %s\n", r.Notes)
		}
		printRollout(w, r.Rollout, now)
	}
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

func printRollout(w io.Writer, ro *manifest.Rollout, now time.Time) {
	if ro == nil {
		fmt.Fprintf(w, "  rollout:    none (every matching device)\n")
		return
	}
	cur, pct := ro.Current(now)
	paused := ""
	if ro.Paused {
		paused = ", PAUSED"
	}
	if cur < 0 {
		fmt.Fprintf(w, "  rollout:    %s, not started: only included serials and groups (%d stage(s)%s)\n", ro.ID, len(ro.Stages), paused)
	} else {
		fmt.Fprintf(w, "  rollout:    %s, now at %g%% (stage %d of %d%s)\n", ro.ID, pct, cur+1, len(ro.Stages), paused)
	}
	for i, s := range ro.Stages {
		mark := " "
		if i == cur {
			mark = "*"
		}
		fmt.Fprintf(w, "   %s %g%% from %s\n", mark, s.Percent, s.At.UTC().Format(time.RFC3339))
	}
	if len(ro.Groups) > 0 {
		fmt.Fprintf(w, "    groups:   %s\n", strings.Join(ro.Groups, ", "))
	}
	if len(ro.Include) > 0 {
		fmt.Fprintf(w, "    include:  %d serial(s)\n", len(ro.Include))
	}
	if len(ro.Exclude) > 0 {
		fmt.Fprintf(w, "    exclude:  %d serial(s)\n", len(ro.Exclude))
	}
}
