package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
)

func newKeygenCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "keygen --out PREFIX",
		Short: "Make an Ed25519 signing key: PREFIX.key (private, 0600) and PREFIX.pub",
		Long: `Make an Ed25519 signing key pair. PREFIX.key is the private key (PKCS#8 PEM,
mode 0600: guard it), PREFIX.pub the public key (PKIX PEM) that devices trust.
The files are the ones OpenSSL makes with
  openssl genpkey -algorithm ed25519 -out PREFIX.key
  openssl pkey -in PREFIX.key -pubout -out PREFIX.pub
Prints the key ID (hex SHA-256 of the public key's DER). Never overwrites a file.`,
		Example: "  fwctl keygen --out keys/release-1   # writes keys/release-1.key (0600) and keys/release-1.pub",
		Args:    cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return cli.Usage(errors.New("--out PREFIX is required: keys are written to PREFIX.key and PREFIX.pub"))
			}
			pub, priv, err := manifest.GenerateKey()
			if err != nil {
				return err
			}
			keyPath, pubPath, err := manifest.WriteKeyPair(out, priv)
			if err != nil {
				return cli.Failure(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", manifest.KeyID(pub))
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (private, keep it secret) and %s (public, give it to devices)\n", keyPath, pubPath)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "path prefix of the key files (PREFIX.key, PREFIX.pub)")
	return c
}
