package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
)

// maxInputFile caps what fwctl reads as a payload or envelope.
const maxInputFile = manifest.MaxEnvelopeSize

func newSignCmd() *cobra.Command {
	var (
		keys    []string
		out     string
		maxSize int64
	)
	c := &cobra.Command{
		Use:   "sign --key FILE [--key FILE2] [-o OUT] INPUT",
		Short: "Sign a manifest payload, or add signatures to a signed envelope",
		Long: `Sign INPUT with each --key. INPUT is either a manifest payload (JSON), which
is checked strictly first (a bad manifest is refused, with the reason), or an
existing envelope, to which the new signatures are added: threshold signing
by several people, one after the other. A key that already signed is skipped.
The envelope goes to OUT (written atomically) or to standard output.`,
		Example: `  fwctl sign --key alice.key -o manifest.dsse.json manifest.json
  fwctl sign --key bob.key -o manifest.dsse.json manifest.dsse.json`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			privs, err := loadPrivateKeys(keys)
			if err != nil {
				return err
			}
			data, err := readInput(args[0])
			if err != nil {
				return err
			}
			opt := manifest.ParseOptions{MaxImageSize: maxSize}
			var env []byte
			var m *manifest.Manifest
			if isEnvelope(data) {
				u, err := manifest.ReadUnverified(data, opt)
				if err != nil {
					return cli.Failure(fmt.Errorf("%s: %w", args[0], err))
				}
				if u.ParseErr != nil {
					return cli.Failure(fmt.Errorf("%s: refusing to sign: the payload inside the envelope is invalid: %w", args[0], u.ParseErr))
				}
				m = u.Manifest
				if env, err = manifest.AddSignatures(data, privs...); err != nil {
					return cli.Failure(err)
				}
			} else {
				if m, err = manifest.ParsePayload(data, opt); err != nil {
					return cli.Failure(fmt.Errorf("%s: refusing to sign: %w", args[0], err))
				}
				if env, err = manifest.Sign(data, privs...); err != nil {
					return cli.Failure(err)
				}
			}
			if !m.Expires.After(time.Now()) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: this manifest expired at %s: devices will refuse it\n", m.Expires.UTC().Format(time.RFC3339))
			}
			if err := writeOutput(cmd.OutOrStdout(), out, env); err != nil {
				return err
			}
			for _, k := range privs {
				fmt.Fprintf(cmd.ErrOrStderr(), "signed serial %d with key %s\n", m.Serial, manifest.KeyID(k.Public().(ed25519.PublicKey)))
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&keys, "key", nil, "private key PEM file (repeatable)")
	c.Flags().StringVarP(&out, "output", "o", "", "write the envelope to this file instead of standard output")
	c.Flags().Int64Var(&maxSize, "max-image-size", manifest.DefaultMaxImageSize, "largest image size accepted, in bytes")
	return c
}

// isEnvelope reports whether data looks like a DSSE envelope rather than a
// payload: a JSON object with a payloadType key.
func isEnvelope(data []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	_, ok := probe["payloadType"]
	return ok
}

// loadPrivateKeys loads every --key file; at least one is required.
func loadPrivateKeys(paths []string) ([]ed25519.PrivateKey, error) {
	if len(paths) == 0 {
		return nil, cli.Usage(errors.New("--key FILE is required (a private key from `fwctl keygen` or openssl)"))
	}
	var out []ed25519.PrivateKey
	for _, p := range paths {
		k, err := manifest.LoadPrivateKey(p)
		if err != nil {
			return nil, cli.Failure(err)
		}
		out = append(out, k)
	}
	return out, nil
}

// loadPublicKeys loads every --pub file; at least one is required.
func loadPublicKeys(paths []string) ([]ed25519.PublicKey, error) {
	if len(paths) == 0 {
		return nil, cli.Usage(errors.New("--pub FILE is required (a public key from `fwctl keygen` or openssl)"))
	}
	var out []ed25519.PublicKey
	for _, p := range paths {
		k, err := manifest.LoadPublicKey(p)
		if err != nil {
			return nil, cli.Failure(err)
		}
		out = append(out, k)
	}
	return out, nil
}

// readInput reads a payload or envelope file ("-" is standard input), capped.
func readInput(path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, cli.Failure(err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInputFile+1))
	if err != nil {
		return nil, cli.Failure(fmt.Errorf("read %s: %w", path, err))
	}
	if len(data) > maxInputFile {
		return nil, cli.Failure(fmt.Errorf("%s is larger than %d bytes: it is not a manifest", path, maxInputFile))
	}
	return data, nil
}

// writeOutput writes data atomically to path, or to stdout when path is "".
func writeOutput(stdout io.Writer, path string, data []byte) error {
	if path == "" {
		_, err := stdout.Write(data)
		return err
	}
	if err := renameio.WriteFile(path, data, 0o644); err != nil {
		return cli.Failure(fmt.Errorf("write %s: %w", path, err))
	}
	return nil
}
