package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
)

// newRolloutCmd groups the rollout commands. `rollout status` and
// `rollout advance` (built on resignFlags and manifest.Rollout.Advance) are
// added here by the reports side.
func newRolloutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Stage, pause, resume and preview a release's rollout",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Usage(errors.New("fwctl rollout needs a subcommand: set, pause, resume, preview, status or advance (see fwctl rollout --help)"))
		},
	}
	c.AddCommand(newRolloutSetCmd(), newRolloutPauseCmd(true), newRolloutPauseCmd(false), newRolloutPreviewCmd())
	c.AddCommand(newRolloutStatusCmd(), newRolloutAdvanceCmd())
	return c
}

// resignFlags are the flags of every command that rewrites and re-signs an
// envelope; resign does the rewrite.
type resignFlags struct {
	release   string
	keys      []string
	pubs      []string
	threshold int
	out       string
	expiresIn time.Duration
}

func (f *resignFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.release, "release", "", "id of the release to change")
	c.Flags().StringArrayVar(&f.keys, "key", nil, "private key PEM file to re-sign with (repeatable)")
	c.Flags().StringArrayVar(&f.pubs, "pub", nil, "trusted public key PEM file the envelope must verify with before it is re-signed (repeatable; required)")
	c.Flags().IntVar(&f.threshold, "threshold", 1, "distinct trusted keys (--pub) that must have signed the envelope")
	c.Flags().StringVarP(&f.out, "output", "o", "", "write the new envelope here instead of replacing ENVELOPE")
	c.Flags().DurationVar(&f.expiresIn, "expires-in", 0, "set expires to now plus this duration (default: keep expires)")
}

// trust is the Trust built from --pub and --threshold.
func (f *resignFlags) trust() (manifest.Trust, error) {
	pubs, err := loadPublicKeys(f.pubs)
	if err != nil {
		return manifest.Trust{}, err
	}
	if f.threshold < 1 {
		return manifest.Trust{}, cli.Usage(errors.New("--threshold must be at least 1"))
	}
	return manifest.NewTrust(f.threshold, pubs...), nil
}

// resign reads the envelope at path, verifies it with --pub and
// --threshold (every check but expiry: an envelope changed after signing
// is refused, never re-signed), applies edit to the release named by
// --release, bumps the serial, refreshes issued, re-signs with --key and
// writes the result atomically (in place, or to -o).
func (f *resignFlags) resign(cmd *cobra.Command, path string, edit func(r *manifest.Release, now time.Time) error) (*manifest.Manifest, error) {
	if f.release == "" {
		return nil, cli.Usage(errors.New("--release ID is required"))
	}
	privs, err := loadPrivateKeys(f.keys)
	if err != nil {
		return nil, err
	}
	trust, err := f.trust()
	if err != nil {
		return nil, err
	}
	if f.expiresIn < 0 {
		return nil, cli.Usage(errors.New("--expires-in must be positive"))
	}
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	opt := manifest.RewriteOptions{Now: now}
	if f.expiresIn > 0 {
		opt.Expires = now.Add(f.expiresIn)
	}
	env, m, err := manifest.Resign(data, trust, privs, opt, manifest.ReleaseEdit(f.release, func(r *manifest.Release) error {
		return edit(r, now)
	}))
	if err != nil {
		return nil, cli.Failure(fmt.Errorf("%s: %w", path, err))
	}
	out := f.out
	if out == "" {
		out = path
	}
	if out == "-" {
		out = ""
	}
	if err := writeEnvelope(cmd.OutOrStdout(), out, env); err != nil {
		return nil, err
	}
	if out != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: serial %d, signed by %d key(s); collect more signatures with fwctl sign if devices need a threshold above that\n", out, m.Serial, len(privs))
	}
	noteSecondProof(cmd.ErrOrStderr(), m, env)
	return m, nil
}

func newRolloutSetCmd() *cobra.Command {
	var (
		f                        resignFlags
		stages, rolloutID        string
		include, exclude, groups []string
	)
	c := &cobra.Command{
		Use:   "set --release ID --stages STAGES --key FILE --pub FILE [--threshold N] [-o OUT] ENVELOPE",
		Short: "Give a release staged rollout stages, bump the serial and re-sign",
		Long: `Set the rollout stages of a release: STAGES is a comma-separated list of
PERCENT%@TIME (RFC 3339), in time order, percent never decreasing. The
rollout keeps its id (so devices keep their buckets), lists and paused flag
unless flags change them; a release without rollout gets one whose id is the
release id. ENVELOPE must first verify with the --pub keys (at least
--threshold of them; expiry is not checked): an envelope changed after
signing, or signed by other keys, is refused (exit 1), never re-signed.
The serial is bumped, issued set to now, the envelope re-signed with --key
(old signatures are dropped) and written atomically.`,
		Example: `  fwctl rollout set --release iDS-9632NXI-I8-16S-4.1.25 --key keys/release-1.key \
    --pub keys/release-1.pub --pub keys/release-2.pub --threshold 2 \
    --stages "5%@2026-12-01T02:00:00Z,25%@2026-12-03T02:00:00Z,100%@2026-12-07T02:00:00Z" \
    manifest.dsse.json`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := manifest.ParseStages(stages)
			if err != nil {
				return cli.Usage(fmt.Errorf("--stages: %w", err))
			}
			m, err := f.resign(cmd, args[0], func(r *manifest.Release, _ time.Time) error {
				r.SetStages(st)
				if rolloutID != "" {
					r.Rollout.ID = rolloutID
				}
				if cmd.Flags().Changed("include") {
					r.Rollout.Include = include
				}
				if cmd.Flags().Changed("exclude") {
					r.Rollout.Exclude = exclude
				}
				if cmd.Flags().Changed("group") {
					r.Rollout.Groups = groups
				}
				return nil
			})
			if err != nil {
				return err
			}
			printRollout(cmd.ErrOrStderr(), m.Release(f.release).Rollout, time.Now())
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&stages, "stages", "", `stages, like "5%@2026-12-01T02:00:00Z,100%@2026-12-07T02:00:00Z"`)
	c.Flags().StringVar(&rolloutID, "rollout-id", "", "new rollout id (reshuffles every device's bucket)")
	c.Flags().StringArrayVar(&include, "include", nil, "serial always eligible (repeatable; replaces the list)")
	c.Flags().StringArrayVar(&exclude, "exclude", nil, "serial never eligible (repeatable; replaces the list)")
	c.Flags().StringArrayVar(&groups, "group", nil, "device group always eligible (repeatable; replaces the list)")
	return c
}

func newRolloutPauseCmd(pause bool) *cobra.Command {
	var f resignFlags
	name, short := "pause", "Pause a rollout: no device starts a new install of the release"
	if !pause {
		name, short = "resume", "Resume a paused rollout"
	}
	c := &cobra.Command{
		Use:     name + " --release ID --key FILE --pub FILE [--threshold N] [-o OUT] ENVELOPE",
		Short:   short,
		Long:    short + `. ENVELOPE must first verify with the --pub keys (at least --threshold of them; expiry is not checked): an envelope changed after signing, or signed by other keys, is refused (exit 1), never re-signed. The serial is bumped, issued set to now, the envelope re-signed with --key and written atomically (in place, or to -o). Devices see the change at their next manifest poll.`,
		Example: "  fwctl rollout " + name + " --release iDS-9632NXI-I8-16S-4.1.25 --key keys/release-1.key --pub keys/release-1.pub --pub keys/release-2.pub --threshold 2 manifest.dsse.json",
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := f.resign(cmd, args[0], func(r *manifest.Release, now time.Time) error {
				if !pause && r.Rollout == nil {
					return fmt.Errorf("release %s has no rollout to resume", r.ID)
				}
				r.SetPaused(pause, now)
				return nil
			})
			return err
		},
	}
	f.register(c)
	return c
}

func newRolloutPreviewCmd() *cobra.Command {
	var (
		release, devices, at string
		groups               []string
	)
	c := &cobra.Command{
		Use:   "preview --release ID --devices FILE [--at TIME] [--group G] ENVELOPE",
		Short: "Show which devices are eligible for a release now or at TIME, and the share",
		Long: `For each serial in FILE (one a line; blank lines and # comments skipped),
print whether the device is eligible for the release at TIME (default now),
its bucket and why, then the eligible share. --group gives the groups every
listed device is in. Uses the same rule as the devices; checks no signature.`,
		Example: "  fwctl rollout preview --release iDS-9632NXI-I8-16S-4.1.25 --devices serials.txt --at 2026-12-03T02:00:00Z manifest.dsse.json",
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if release == "" || devices == "" {
				return cli.Usage(errors.New("--release ID and --devices FILE are required"))
			}
			now := time.Now()
			if at != "" {
				var err error
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return cli.Usage(fmt.Errorf("--at %q: write an RFC 3339 time, like 2026-12-01T02:00:00Z", at))
				}
			}
			data, err := readInput(args[0])
			if err != nil {
				return err
			}
			u, err := manifest.ReadUnverified(data, manifest.ParseOptions{})
			if err != nil {
				return cli.Failure(fmt.Errorf("%s: %w", args[0], err))
			}
			if u.ParseErr != nil {
				return cli.Failure(fmt.Errorf("%s: the payload is invalid: %w", args[0], u.ParseErr))
			}
			r := u.Manifest.Release(release)
			if r == nil {
				return cli.Failure(fmt.Errorf("%s: release %q: %w", args[0], release, manifest.ErrNoRelease))
			}
			serials, err := readSerials(devices)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			n := 0
			for _, s := range serials {
				e := r.Rollout.Evaluate(s, groups, now)
				verdict := "not eligible"
				if e.Eligible {
					verdict = "eligible"
					n++
				}
				fmt.Fprintf(w, "%s\t%s\tbucket %d\t%s\n", s, verdict, e.Bucket, e.Reason)
			}
			share := 0.0
			if len(serials) > 0 {
				share = float64(n) * 100 / float64(len(serials))
			}
			stage := "no rollout"
			if ro := r.Rollout; ro != nil {
				cur, pct := ro.Current(now)
				stage = fmt.Sprintf("stage %d of %d at %g%%", cur+1, len(ro.Stages), pct)
				if ro.Paused {
					stage += ", PAUSED: no new install starts"
				}
			}
			fmt.Fprintf(w, "%d of %d device(s) eligible (%.1f%%) at %s, %s\n", n, len(serials), share, now.UTC().Format(time.RFC3339), stage)
			return nil
		},
	}
	c.Flags().StringVar(&release, "release", "", "id of the release")
	c.Flags().StringVar(&devices, "devices", "", "file with one serial a line")
	c.Flags().StringVar(&at, "at", "", "evaluate at this RFC 3339 time instead of now")
	c.Flags().StringArrayVar(&groups, "group", nil, "group the devices are in (repeatable)")
	return c
}

// readSerials reads one serial a line, skipping blank lines and # comments.
func readSerials(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, cli.Failure(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, cli.Failure(fmt.Errorf("read %s: %w", path, err))
	}
	return out, nil
}
