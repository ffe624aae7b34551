package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
)

func newManifestCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "manifest",
		Short: "Write manifest payloads from release objects",
	}
	c.AddCommand(newManifestNewCmd())
	return c
}

func newManifestNewCmd() *cobra.Command {
	var (
		releases  []string
		serial    int64
		expiresIn time.Duration
		out       string
	)
	c := &cobra.Command{
		Use:   "new --release FILE [--release FILE2] --serial N [--expires-in 720h] [-o OUT]",
		Short: "Write a manifest payload (to sign with fwctl sign) from release objects made by fwctl release",
		Long: `Build a manifest payload: schema 1, the given serial, issued now, expiring
after --expires-in, and the releases read from the files (each one JSON
release object as printed by fwctl release). The result is checked exactly
as devices check it before it is written; sign it with fwctl sign.
The serial must be above every serial devices have accepted.`,
		Example: `  fwctl release --image digicap.dav --model iDS-9632NXI-I8/16S --version 4.1.25 \
    --variant custom --url https://fw.example.com/16s/digicap.dav > 16s.json
  fwctl manifest new --release 16s.json --serial 7 --expires-in 720h -o manifest.json
  fwctl sign --key keys/release-1.key -o manifest.dsse.json manifest.json`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serial < 1 {
				return cli.Usage(errors.New("--serial N is required and must be at least 1 (above the serial devices last accepted)"))
			}
			if expiresIn <= 0 {
				return cli.Usage(errors.New("--expires-in must be positive, like 720h"))
			}
			now := time.Now().UTC().Truncate(time.Second)
			m := &manifest.Manifest{Schema: manifest.SchemaVersion, Serial: serial, Issued: now, Expires: now.Add(expiresIn), Releases: []manifest.Release{}}
			for _, path := range releases {
				r, err := readRelease(path)
				if err != nil {
					return cli.Failure(err)
				}
				m.Releases = append(m.Releases, r)
			}
			payload, err := m.Marshal(manifest.ParseOptions{})
			if err != nil {
				return cli.Failure(err)
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(payload)
				return err
			}
			if err := renameio.WriteFile(out, payload, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: serial %d, %d release(s), expires %s: sign it with fwctl sign\n", out, serial, len(m.Releases), m.Expires.Format(time.RFC3339))
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&releases, "release", nil, "a file holding one release object from fwctl release (repeatable)")
	f.Int64Var(&serial, "serial", 0, "the manifest's serial: above every serial devices have accepted")
	f.DurationVar(&expiresIn, "expires-in", 30*24*time.Hour, "how long devices accept the manifest (devices refuse it afterwards)")
	f.StringVarP(&out, "output", "o", "", "write the payload here (atomically) instead of standard output")
	return c
}

// readRelease reads one release object strictly: unknown fields are errors.
func readRelease(path string) (manifest.Release, error) {
	var r manifest.Release
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%s: not a release object (%v): make it with fwctl release", path, err)
	}
	if dec.More() {
		return r, fmt.Errorf("%s: more than one JSON value: give one release object per file", path)
	}
	return r, nil
}
