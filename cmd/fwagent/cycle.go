package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/reason"
)

// exitFor maps a cycle's result to the documented exit codes.
func exitFor(out agent.Outcome) int {
	switch out.Result {
	case agent.ResultInstalled, agent.ResultAvailable:
		return exitOK
	case agent.ResultNothing, agent.ResultWaiting, agent.ResultPaused, agent.ResultDeferred:
		return exitNothing
	case agent.ResultRefused:
		return exitRefused
	case agent.ResultInstalledDegraded:
		return exitInstallFailed
	case agent.ResultFailed:
		if out.InstallFailed {
			return exitInstallFailed
		}
	}
	return exitError
}

// stageText says where a rollout stands, numbering stages from 1 as fwctl
// does ("stage 2 of 3 at 25%").
func stageText(e *manifest.Eligibility, r *manifest.Rollout) string {
	switch {
	case r == nil:
		return "no rollout"
	case e.Stage < 0:
		return fmt.Sprintf("before stage 1 of %d", len(r.Stages))
	}
	return fmt.Sprintf("stage %d of %d at %.4g%%", e.Stage+1, len(r.Stages), e.Percent)
}

// printOutcome writes a readable account of a cycle.
func printOutcome(w io.Writer, out agent.Outcome) {
	if out.Identity != nil {
		id := out.Identity
		fmt.Fprintf(w, "device:   %s, serial %s, firmware %s %s\n", id.Model, id.Serial, id.FirmwareVersion, id.FirmwareBuild)
	}
	if out.Serial != 0 {
		unchanged := ""
		if out.Unchanged {
			unchanged = " (unchanged since the last poll)"
		}
		fmt.Fprintf(w, "manifest: serial %d%s\n", out.Serial, unchanged)
	}
	for _, c := range out.Candidates {
		mark := "refused"
		switch {
		case c.Chosen:
			mark = "CHOSEN"
		case c.Decision.Allowed && c.Quarantined:
			mark = "quarantined"
		case c.Decision.Allowed && c.Eligibility != nil && !c.Eligibility.Eligible:
			mark = "not in rollout yet"
		case c.Decision.Allowed:
			mark = "allowed"
		}
		fmt.Fprintf(w, "release:  %s (%s %s) %s\n", c.Release.ID, c.Release.Variant, c.Release.Version, mark)
		for _, r := range c.Decision.Reasons {
			fmt.Fprintf(w, "          - %s: %s\n", r.Code, r.Message)
		}
		if e := c.Eligibility; e != nil {
			fmt.Fprintf(w, "          rollout: bucket %d, %s, eligible %v, paused %v: %s\n", e.Bucket, stageText(e, c.Release.Rollout), e.Eligible, e.Paused, e.Reason)
		}
	}
	fmt.Fprintf(w, "result:   %s: %s\n", out.Result, out.Message)
	if len(out.Codes) > 0 {
		fmt.Fprintf(w, "codes:    %s\n", strings.Join(out.Codes, ", "))
		// What each code means and what to do, from the one registry
		// (docs/reference/codes.md).
		for _, code := range out.Codes {
			if in, ok := reason.Lookup(reason.Code(code)); ok {
				fmt.Fprintf(w, "          - %s: %s; what to do: %s\n", code, in.Meaning, in.Advice)
			}
		}
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// finish prints a cycle's outcome, readable or as JSON, and returns the
// command's exit code for it.
func finish(w io.Writer, out agent.Outcome, asJSON bool) error {
	if asJSON {
		if err := writeJSON(w, out); err != nil {
			return err
		}
	} else {
		printOutcome(w, out)
	}
	if code := exitFor(out); code != exitOK {
		return cli.WithCode(code, nil)
	}
	return nil
}

func checkCommand() *cobra.Command {
	var (
		asJSON  bool
		devices []string
	)
	c := &cobra.Command{
		Use:     "check",
		Example: "  fwagent check\n  fwagent check --json --config /etc/fwagent/agent.yaml",
		Short:   "One dry-run cycle: identity, manifest, chosen release and every policy reason; downloads nothing",
		Long: "Identify the device, fetch and verify the manifest, and show what the agent would do and why.\n" +
			"Exit codes: 0 an allowed update is available, 3 nothing to do, 4 refused by policy, 1 error, 2 usage.\n" +
			"A site (devices:) shows one line per recorder and a summary; --device NAME narrows it;\n" +
			"exit 0 only when every recorder has an allowed update or is up to date (docs/site-gateway.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openMain(cmd, mainOptions{readOnly: true, level: "warn", forceText: true})
			if err != nil {
				return err
			}
			defer s.Close()
			if s.siteMode(devices) {
				agents, err := s.selected(devices)
				if err != nil {
					return err
				}
				return finishSite(cmd.OutOrStdout(), s.site.Cycle(cmd.Context(), agent.ModeCheck, agents), asJSON)
			}
			return finish(cmd.OutOrStdout(), s.agent.Cycle(cmd.Context(), agent.ModeCheck), asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (a site: an array, one object per recorder)")
	c.Flags().StringSliceVar(&devices, "device", nil, "only these recorders of a site (by name; repeat or comma-separate)")
	return c
}

func updateCommand() *cobra.Command {
	var (
		now     bool
		from    string
		asJSON  bool
		devices []string
	)
	c := &cobra.Command{
		Use: "update [--now] [--from DIR]",
		Example: "  fwagent update                # install only inside a maintenance window\n" +
			"  fwagent update --now          # install now\n" +
			"  fwagent update --from usb     # offline: usb/manifest.json and the images (a relative folder works)",
		Short: "One full update cycle now: download, verify, install (in a maintenance window unless --now), confirm",
		Long: "Run one whole cycle. With --from DIR the signed manifest (DIR/manifest.json) and the images\n" +
			"come from a folder (a USB stick, a local mirror); every check is unchanged.\n" +
			"Exit codes: 0 installed and confirmed, 3 nothing to do (or waiting for a window, or deferred by the\n" +
			"health checks), 4 refused by policy, 5 the install failed (upload, flash, reboot or post-install\n" +
			"check) or installed_degraded (channels or disks not back), 1 other errors, 2 usage.\n" +
			"A site (devices:) updates every recorder (or those --device names), one line each and a summary;\n" +
			"exit 0 only when every one ended installed or up to date (docs/site-gateway.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "" {
				if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
					return cli.Usage(fmt.Errorf("--from %s: not a folder: give the folder holding manifest.json and the images", from))
				}
				// The agent turns the folder into file:// URLs, which need an
				// absolute path: "usb" would otherwise read as a host name.
				abs, err := filepath.Abs(from)
				if err != nil {
					return cli.Usage(fmt.Errorf("--from %s: %w", from, err))
				}
				from = abs
			}
			s, err := openMain(cmd, mainOptions{fileLog: true, progress: !asJSON, offline: from})
			if err != nil {
				return err
			}
			defer s.Close()
			mode := agent.ModeUpdate
			if now {
				mode = agent.ModeUpdateNow
			}
			if s.siteMode(devices) {
				agents, err := s.selected(devices)
				if err != nil {
					return err
				}
				outs := s.site.Cycle(cmd.Context(), mode, agents)
				flushCtx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 10*time.Second)
				for _, a := range agents {
					a.FlushReports(flushCtx)
				}
				cancel()
				return finishSite(cmd.OutOrStdout(), outs, asJSON)
			}
			out := s.agent.Cycle(cmd.Context(), mode)
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 10*time.Second)
			s.agent.FlushReports(flushCtx)
			cancel()
			return finish(cmd.OutOrStdout(), out, asJSON)
		},
	}
	c.Flags().StringSliceVar(&devices, "device", nil, "only these recorders of a site (by name; repeat or comma-separate)")
	c.Flags().BoolVar(&now, "now", false, "install now, outside the maintenance windows")
	c.Flags().StringVar(&from, "from", "", "take the signed manifest and images from this folder (offline sites)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func runCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: poll with jitter, update in maintenance windows, report",
		Long: "Run the update daemon until SIGTERM or SIGINT, which stop it at a safe point.\n" +
			"Under systemd (Type=notify) it reports READY and pings the watchdog.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if err := support.CheckListen(cfg.Status.Listen, cfg.Status.Token); err != nil {
				return err
			}
			m, err := NewMain(cmd, cfg, mainOptions{fileLog: true})
			if err != nil {
				return err
			}
			defer m.Close()
			return m.Run(cmd.Context())
		},
	}
}

// serveStatus starts the status endpoint; stop shuts it down.
func serveStatus(ctx context.Context, s *Main) (stop func(), err error) {
	cfg := s.cfg
	ln, err := net.Listen("tcp", cfg.Status.Listen)
	if err != nil {
		return nil, fmt.Errorf("status.listen %s: %w", cfg.Status.Listen, err)
	}
	handler := support.NewStatusServer(support.StatusOptions{
		Token:   cfg.Status.Token,
		Status:  func() any { return siteStatus(s) },
		Metrics: siteMetrics(s),
		Logger:  s.log,
		Bundle: func(w io.Writer) error {
			in, err := bundleInput(cfg, false)
			if err != nil {
				return err
			}
			st := s.agent.Status()
			if st.Identity != nil && !cfg.IsSite() {
				in.Identity = st.Identity
			}
			return support.WriteBundle(w, in)
		},
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.gatewayLog().WithError(err).Error("status endpoint stopped")
		}
	}()
	s.gatewayLog().WithField("listen", ln.Addr().String()).Info("status endpoint listening")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// bundleInput describes a support bundle of the agent configured by cfg.
func bundleInput(cfg *config.Config, personal bool) (support.BundleInput, error) {
	in := support.BundleInput{
		AgentVersion:    buildVersion(),
		IncludePersonal: personal,
		MaxLogBytes:     support.DefaultMaxLogBytes,
		StateDir:        cfg.StateDir,
		LogDir:          cfg.Log.Dir,
		RetentionDays:   cfg.Log.RetentionDays,
		KnownSecrets:    []string{cfg.Device.ISAPI.Password, cfg.Report.Token, cfg.Status.Token},
		KnownPersonal:   []string{cfg.Device.ISAPI.Username},
	}
	if cfg.IsSite() {
		in.DeviceDirs = map[string]string{}
		for _, r := range cfg.Recorders() {
			in.DeviceDirs[r.Name] = r.Config.StateDir
			in.KnownSecrets = append(in.KnownSecrets, r.Config.Device.ISAPI.Password)
			in.KnownPersonal = append(in.KnownPersonal, r.Config.Device.ISAPI.Username)
		}
	}
	var err error
	in.ConfigYAML, err = cfg.RedactedYAML()
	return in, err
}
