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
		keys, pubs []string
		threshold  int
		out        string
		maxSize    int64
	)
	c := &cobra.Command{
		Use:   "sign --key FILE [--key FILE2] [--pub FILE --threshold N] [-o OUT] INPUT",
		Short: "Sign a manifest payload, or add signatures to a signed envelope",
		Long: `Sign INPUT with each --key. INPUT is either a manifest payload (JSON), which
is checked strictly first (a bad manifest is refused, with the reason), or an
existing envelope, to which the new signatures are added: threshold signing
by several people, one after the other. A key that already signed is skipped.
With --pub (and --threshold, default 1) the existing signatures of an
envelope must verify first (every check but expiry): an envelope changed
after signing, or signed by other keys, is refused (exit 1). Without --pub
they are not checked: a warning says so. Either way the releases being
signed are printed on standard error: read them before you sign.
The envelope goes to OUT (written atomically) or to standard output; an
envelope above the manifest size limit is refused.`,
		Example: `  fwctl sign --key keys/release-1.key -o manifest.dsse.json manifest.json
  fwctl sign --key keys/release-2.key --pub keys/release-1.pub -o manifest.dsse.json manifest.dsse.json`,
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
			if threshold < 1 {
				return cli.Usage(errors.New("--threshold must be at least 1"))
			}
			opt := manifest.ParseOptions{MaxImageSize: maxSize}
			var env []byte
			var m *manifest.Manifest
			if isEnvelope(data) {
				if len(pubs) > 0 {
					keys, err := loadPublicKeys(pubs)
					if err != nil {
						return err
					}
					v, err := manifest.VerifyForResign(data, manifest.NewTrust(threshold, keys...), time.Now(), opt)
					if err != nil {
						return cli.Failure(fmt.Errorf("%s: %w", args[0], err))
					}
					m = v.Manifest
				} else {
					u, err := manifest.ReadUnverified(data, opt)
					if err != nil {
						return cli.Failure(fmt.Errorf("%s: %w", args[0], err))
					}
					if u.ParseErr != nil {
						return cli.Failure(fmt.Errorf("%s: refusing to sign: the payload inside the envelope is invalid: %w", args[0], u.ParseErr))
					}
					m = u.Manifest
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: the existing signatures of %s were NOT checked (no --pub given): it may have been changed after signing; check every release below before you publish, or pass --pub FILE [--threshold N]\n", args[0])
				}
				printReleases(cmd.ErrOrStderr(), m)
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
			if err := writeEnvelope(cmd.OutOrStdout(), out, env); err != nil {
				return err
			}
			for _, k := range privs {
				fmt.Fprintf(cmd.ErrOrStderr(), "signed serial %d with key %s\n", m.Serial, manifest.KeyID(k.Public().(ed25519.PublicKey)))
			}
			noteSecondProof(cmd.ErrOrStderr(), m, env)
			return nil
		},
	}
	c.Flags().StringArrayVar(&keys, "key", nil, "private key PEM file (repeatable)")
	c.Flags().StringArrayVar(&pubs, "pub", nil, "trusted public key PEM file: an existing envelope's signatures must verify with these before yours is added (repeatable)")
	c.Flags().IntVar(&threshold, "threshold", 1, "distinct --pub keys that must have signed an existing envelope")
	c.Flags().StringVarP(&out, "output", "o", "", "write the envelope to this file instead of standard output")
	c.Flags().Int64Var(&maxSize, "max-image-size", manifest.DefaultMaxImageSize, "largest image size accepted, in bytes")
	return c
}

// printReleases prints what a co-signer is about to vouch for: serial,
// dates and every release's id, models, variant, version, image size,
// sha256 and urls. Values are quoted: the payload may not be trusted yet.
func printReleases(w io.Writer, m *manifest.Manifest) {
	fmt.Fprintf(w, "signing serial %d, issued %s, expires %s, %d release(s):\n", m.Serial, m.Issued.UTC().Format(time.RFC3339), m.Expires.UTC().Format(time.RFC3339), len(m.Releases))
	for _, r := range m.Releases {
		fmt.Fprintf(w, "  release %q: models %q, variant %q, version %q", r.ID, r.Models, r.Variant, r.Version)
		if r.Build != "" {
			fmt.Fprintf(w, " build %q", r.Build)
		}
		fmt.Fprintf(w, "\n    image %d bytes, sha256 %s\n    urls %q\n", r.Image.Size, r.Image.SHA256, r.Image.URLs)
	}
}

// writeEnvelope writes a signed envelope like writeOutput, after checking
// that it fits the manifest size limit devices fetch with: an envelope
// above manifest.MaxEnvelopeSize is refused and nothing is written.
func writeEnvelope(stdout io.Writer, path string, env []byte) error {
	if len(env) > manifest.MaxEnvelopeSize {
		return cli.Failure(fmt.Errorf("refusing to write the envelope: it is %d bytes, the limit is %d (manifest.MaxEnvelopeSize; devices would refuse it): shorten the payload or drop signatures", len(env), manifest.MaxEnvelopeSize))
	}
	return writeOutput(stdout, path, env)
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
