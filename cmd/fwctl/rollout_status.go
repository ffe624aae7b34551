package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/reports"
)

func newRolloutStatusCmd() *cobra.Command {
	var (
		release, reportsPath, at string
		devices                  bool
		fleetFlags               adminFlags
	)
	c := &cobra.Command{
		Use:   "status --release ID (--reports FILE.jsonl | --server URL --admin-token-file F) [--at TIME] [--devices] [ENVELOPE]",
		Short: "Count, per rollout stage, the devices downloading, installing, confirmed, failed and refused",
		Long: `Read the release's reports from the fleet server (--server, signed by each
device and verified there) or from a reports file (--reports: the JSON Lines
file of the old fwctl reports serve, or the fleet server's export) and count
the devices that reported on the release, each by its latest report: downloading,
installing, confirmed (installed and confirmed), failed (by reason code) and
refused, and the failure rate = failed / (confirmed + failed). A device whose
attempt failed counts as failed until it confirms an install, even while it
retries ("failed, retrying" in --devices). Report messages are printed with
control characters escaped. With the
ENVELOPE each device is counted in its rollout stage (see the Staged rollouts section of README.md);
without it, counts only. --devices also lists every device. Checks no
signature of the envelope.`,
		Example: "  fwctl rollout status --release iDS-9632NXI-I8-16S-4.1.25 --server https://fleet.example:8471 --admin-token-file admin.token manifest.dsse.json\n  fwctl rollout status --release iDS-9632NXI-I8-16S-4.1.25 --reports reports.jsonl manifest.dsse.json",
		Args:    cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if release == "" || (reportsPath == "") == !cmd.Flags().Changed("server") {
				return cli.Usage(errors.New("--release ID and one of --reports FILE.jsonl or --server URL are required"))
			}
			now, err := parseAt(at)
			if err != nil {
				return err
			}
			var ro *manifest.Rollout
			if len(args) == 1 {
				rel, err := envelopeRelease(args[0], release)
				if err != nil {
					return err
				}
				if ro = rel.Rollout; ro == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "release %s has no rollout: counts only\n", release)
				}
			}
			s, err := summarizeFrom(cmd, &fleetFlags, reportsPath, release, ro, now)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if err := s.WriteTable(w); err != nil {
				return err
			}
			if devices {
				fmt.Fprintln(w)
				return s.WriteDevices(w)
			}
			return nil
		},
	}
	c.Flags().StringVar(&release, "release", "", "id of the release")
	c.Flags().StringVar(&reportsPath, "reports", "", "reports file (JSON Lines) to read instead of the fleet server: the old fwctl reports serve's, or the fleet server's export")
	c.Flags().StringVar(&at, "at", "", "evaluate stages at this RFC 3339 time instead of now")
	c.Flags().BoolVar(&devices, "devices", false, "also list every device with its latest report")
	fleetFlags.register(c)
	return c
}

func newRolloutAdvanceCmd() *cobra.Command {
	var (
		f                 resignFlags
		reportsPath, rate string
		minFinished       int
		fleetFlags        adminFlags
	)
	c := &cobra.Command{
		Use:   "advance --release ID (--reports FILE.jsonl | --server URL --admin-token-file F) --max-failure-rate PCT --key FILE --pub FILE [--threshold N] [-o OUT] ENVELOPE",
		Short: "Open the next rollout stage now, only if the current stage's failure rate is within the limit",
		Long: `ENVELOPE must first verify with the --pub keys (at least --threshold of
them; expiry is not checked): an envelope changed after signing, or signed
by other keys, is refused (exit 1), never re-signed. Then check the current
stage against the reports: it needs at least
--min-finished devices that finished (confirmed or failed) and a failure rate
(failed / (confirmed + failed)) not above --max-failure-rate. If it passes,
the next stage opens now: its time is moved to now, the serial bumped, issued
set to now, the envelope re-signed with --key and written atomically (in
place, or to -o). If not, nothing changes and the command exits 1; stop the
rollout with fwctl rollout pause if the failures call for it.`,
		Example: "  fwctl rollout advance --release iDS-9632NXI-I8-16S-4.1.25 --reports reports.jsonl --max-failure-rate 2% --key keys/release-1.key --pub keys/release-1.pub --pub keys/release-2.pub --threshold 2 manifest.dsse.json",
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.release == "" || rate == "" || (reportsPath == "") == !cmd.Flags().Changed("server") {
				return cli.Usage(errors.New("--release ID, --max-failure-rate PCT and one of --reports FILE.jsonl or --server URL are required"))
			}
			if len(f.keys) == 0 {
				return cli.Usage(errors.New("--key FILE is required (a private key from `fwctl keygen` or openssl)"))
			}
			if minFinished < 0 {
				return cli.Usage(errors.New("--min-finished must be 0 or more"))
			}
			maxPct, err := parsePercent(rate)
			if err != nil {
				return cli.Usage(fmt.Errorf("--max-failure-rate: %w", err))
			}
			trust, err := f.trust()
			if err != nil {
				return err
			}
			rel, err := verifiedRelease(args[0], f.release, trust)
			if err != nil {
				return err
			}
			if rel.Rollout == nil {
				return cli.Failure(fmt.Errorf("release %s: %w: give it stages with fwctl rollout set", f.release, manifest.ErrNoRollout))
			}
			now := time.Now()
			s, err := summarizeFrom(cmd, &fleetFlags, reportsPath, f.release, rel.Rollout, now)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if err := s.WriteTable(w); err != nil {
				return err
			}
			if err := s.CheckAdvance(maxPct, minFinished); err != nil {
				return cli.Failure(fmt.Errorf("%w\nnothing changed; to stop new installs now: fwctl rollout pause --release %s --key FILE --pub FILE %s", err, f.release, args[0]))
			}
			cur := s.CurrentStage()
			finished := cur.Finished()
			opened := -1
			m, err := f.resign(cmd, args[0], func(r *manifest.Release, now time.Time) error {
				if r.Rollout == nil {
					return manifest.ErrNoRollout
				}
				opened, err = r.Rollout.Advance(now)
				return err
			})
			if err != nil {
				return err
			}
			ro := m.Release(f.release).Rollout
			st := ro.Stages[opened]
			fmt.Fprintf(w, "%s: %d finished, failure rate %s within %g%%: opened stage %d of %d (%g%%) at %s; devices see it at their next manifest poll\n",
				s.StageName(cur.Index), finished, rateOf(cur.Counts), maxPct, opened+1, len(ro.Stages), st.Percent, st.At.UTC().Format(time.RFC3339))
			if ro.Paused {
				fmt.Fprintf(w, "the rollout is still PAUSED: no new install starts until fwctl rollout resume\n")
			}
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&reportsPath, "reports", "", "reports file (JSON Lines) to read instead of the fleet server: the old fwctl reports serve's, or the fleet server's export")
	c.Flags().StringVar(&rate, "max-failure-rate", "", `highest failure rate of the current stage that allows advancing, like "2%"`)
	c.Flags().IntVar(&minFinished, "min-finished", 1, "devices of the current stage that must have finished (confirmed or failed)")
	fleetFlags.register(c)
	return c
}

func rateOf(c reports.Counts) string {
	r, ok := c.FailureRate()
	return reports.FormatRate(r, ok)
}

// parsePercent parses "2%" or "0.5%" into 2 or 0.5.
func parsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("%q: write a percent with its sign, like 2%%", s)
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(p) || p < 0 || p > 100 {
		return 0, fmt.Errorf("%q: write a percent from 0%% to 100%%", s)
	}
	return p, nil
}

func parseAt(at string) (time.Time, error) {
	if at == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return time.Time{}, cli.Usage(fmt.Errorf("--at %q: write an RFC 3339 time, like 2026-12-01T02:00:00Z", at))
	}
	return t, nil
}

// envelopeRelease reads the envelope without checking signatures and returns
// the release with this id.
func envelopeRelease(path, id string) (*manifest.Release, error) {
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	u, err := manifest.ReadUnverified(data, manifest.ParseOptions{})
	if err != nil {
		return nil, cli.Failure(fmt.Errorf("%s: %w", path, err))
	}
	if u.ParseErr != nil {
		return nil, cli.Failure(fmt.Errorf("%s: the payload is invalid: %w", path, u.ParseErr))
	}
	r := u.Manifest.Release(id)
	if r == nil {
		return nil, cli.Failure(fmt.Errorf("%s: release %q: %w", path, id, manifest.ErrNoRelease))
	}
	return r, nil
}

// verifiedRelease reads the envelope, verifies it with trust as Resign
// will (every check but expiry) and returns the release with this id, so
// that advance decides on the signed rollout, not on whatever the file says.
func verifiedRelease(path, id string, trust manifest.Trust) (*manifest.Release, error) {
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	v, err := manifest.VerifyForResign(data, trust, time.Now(), manifest.ParseOptions{})
	if err != nil {
		return nil, cli.Failure(fmt.Errorf("%s: %w", path, err))
	}
	r := v.Manifest.Release(id)
	if r == nil {
		return nil, cli.Failure(fmt.Errorf("%s: release %q: %w", path, id, manifest.ErrNoRelease))
	}
	return r, nil
}

// summarize reads the reports file, warns about skipped lines on stderr and
// summarizes the release.
func summarize(stderr io.Writer, path, release string, ro *manifest.Rollout, now time.Time) (*reports.Summary, error) {
	f, err := reports.ReadReports(path)
	if err != nil {
		return nil, cli.Failure(err)
	}
	const maxWarnings = 5
	for i, b := range f.Bad {
		if i == maxWarnings {
			fmt.Fprintf(stderr, "warning: %s: %d more line(s) skipped\n", path, len(f.Bad)-maxWarnings)
			break
		}
		fmt.Fprintf(stderr, "warning: %s: %s\n", path, b)
	}
	if f.Duplicates > 0 {
		fmt.Fprintf(stderr, "%s: %d repeated report(s) (same id, sent again by an agent) counted once\n", path, f.Duplicates)
	}
	return reports.Summarize(f.Records, release, ro, now), nil
}

// summarizeFrom summarizes the release from the reports file, or from the
// fleet server when --server is given.
func summarizeFrom(cmd *cobra.Command, fl *adminFlags, path, release string, ro *manifest.Rollout, now time.Time) (*reports.Summary, error) {
	if path != "" {
		return summarize(cmd.ErrOrStderr(), path, release, ro, now)
	}
	recs, err := serverRecords(cmd, fl, release)
	if err != nil {
		return nil, err
	}
	return reports.Summarize(recs, release, ro, now), nil
}
