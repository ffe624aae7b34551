package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
)

func newVerifyCmd() *cobra.Command {
	var (
		pubs       []string
		threshold  int
		at         string
		skew       time.Duration
		lastSerial int64
		maxSize    int64
	)
	c := &cobra.Command{
		Use:   "verify --pub FILE [--pub FILE2] [--threshold N] ENVELOPE",
		Short: "Check a signed manifest exactly as a device would",
		Long: `Check ENVELOPE as fwagent does: at least N distinct trusted keys signed exactly
this payload, the payload is well formed, it has not expired and was not
issued in the future. Exit 0 with a one-line summary, or exit 1 with the
refusal code and what to do. A release for iDS-9632NXI-I8/16S signed by
fewer than two of the --pub keys gets a note on standard error: devices
refuse it unless they pin its digest (protected_needs_second_proof).`,
		Example: `  fwctl verify --pub keys/release-1.pub --pub keys/release-2.pub --threshold 2 manifest.dsse.json`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := loadPublicKeys(pubs)
			if err != nil {
				return err
			}
			if threshold < 1 {
				return cli.Usage(errors.New("--threshold must be at least 1"))
			}
			now := time.Now()
			if at != "" {
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return cli.Usage(fmt.Errorf("--at %q: write an RFC 3339 time, like 2026-12-01T02:00:00Z", at))
				}
			}
			data, err := readInput(args[0])
			if err != nil {
				return err
			}
			v, err := manifest.Verify(data, manifest.NewTrust(threshold, keys...), manifest.VerifyOptions{
				Now: now, MaxSkew: skew, LastSerial: lastSerial, MaxImageSize: maxSize,
			})
			if err != nil {
				return cli.Failure(fmt.Errorf("%s: %w", args[0], err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s\n", v)
			noteSigners(cmd.ErrOrStderr(), v.Manifest, len(v.Signers))
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&pubs, "pub", nil, "trusted public key PEM file (repeatable)")
	f.IntVar(&threshold, "threshold", 1, "distinct trusted keys that must have signed")
	f.StringVar(&at, "at", "", "check at this RFC 3339 time instead of now")
	f.DurationVar(&skew, "max-skew", 5*time.Minute, "how far in the future issued may be")
	f.Int64Var(&lastSerial, "last-serial", 0, "refuse serials below this one (rollback check)")
	f.Int64Var(&maxSize, "max-image-size", manifest.DefaultMaxImageSize, "largest image size accepted, in bytes")
	return c
}
