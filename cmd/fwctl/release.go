package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

func newReleaseCmd() *cobra.Command {
	var (
		image, version, variant, id, build string
		expectSHA                          string
		models, urls                       []string
		maxSize                            int64
		skipFormat                         bool
	)
	c := &cobra.Command{
		Use:   "release --image FILE --model M --version V --variant custom|standard --url URL [--expect-sha256 HEX]",
		Short: "Print a release JSON object, with size and sha256 computed from the image",
		Long: `Read the image once (streamed) and print one release object for the
"releases" list of a manifest payload, so nobody types a digest by hand.
The image must be a well-formed digicap.dav (not the vendor's .zip) unless
--skip-format-check is given. Standard firmware for iDS-9632NXI-I8/16S is
refused: that model takes only the custom firmware, version written exactly
4.1.25.

Nothing inside an image tells the custom firmware from the standard one, so
for iDS-9632NXI-I8/16S pass --expect-sha256 with the digest the vendor
publishes for the custom firmware: a file with another digest is refused.
Without it fwctl warns: then only a second signer (fwctl sign) or a digest
pinned on the devices (policy.pins) can catch a wrong file. --expect-sha256
is checked for every model when given.`,
		Example: `  fwctl release --image digicap.dav --model iDS-9632NXI-I8/16S --version 4.1.25 \
    --build 200316 --variant custom --url https://fw.example.com/16s/digicap.dav \
    --expect-sha256 <the SHA-256 from the vendor's product page>`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case image == "":
				return cli.Usage(errors.New("--image FILE is required"))
			case len(models) == 0:
				return cli.Usage(errors.New("--model is required (repeat it for several models)"))
			case version == "":
				return cli.Usage(errors.New("--version is required, like 4.1.25"))
			case variant == "":
				return cli.Usage(errors.New("--variant custom|standard is required"))
			case len(urls) == 0:
				return cli.Usage(errors.New("--url is required (repeat it for mirrors, tried in order)"))
			}
			want := strings.ToLower(strings.TrimSpace(expectSHA))
			if expectSHA != "" && !verify.IsSHA256Hex(want) {
				return cli.Usage(fmt.Errorf("--expect-sha256 %q is not a SHA-256 digest: give the 64 hex digits the vendor publishes", expectSHA))
			}
			protected := false
			for _, m := range models {
				if !verify.IsProtectedModel(m) {
					continue
				}
				protected = true
				if variant != string(verify.Custom) || !verify.IsProtectedVersion(version) {
					return cli.Failure(fmt.Errorf("model %s takes only the custom firmware, version written exactly %s: %s firmware %q would damage it permanently (and every fwagent refuses it)", m, verify.ProtectedVersion, variant, version))
				}
			}
			facts, err := verify.InspectFile(image)
			if err != nil {
				return cli.Failure(err)
			}
			if facts.FormatErr != nil && !skipFormat {
				return cli.Failure(fmt.Errorf("%s: %w", image, facts.FormatErr))
			}
			switch {
			case want != "" && facts.SHA256 != want:
				return cli.Failure(fmt.Errorf("%s has SHA-256 %s, not the expected %s: this is not the file the vendor published under that digest; do not publish or sign it: download the image again from the product page and compare the digests", image, facts.SHA256, want))
			case want == "" && protected:
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: no --expect-sha256: nothing checked that %s is the custom firmware %s the vendor publishes for %s (standard and custom images look alike); only a second signer (fwctl sign) or a digest pinned on the devices (policy.pins) can catch a wrong file. Pass --expect-sha256 with the digest from the vendor's product page.\n", image, verify.ProtectedVersion, verify.ProtectedModel)
			}
			if id == "" {
				id = defaultReleaseID(models[0], version)
			}
			r := manifest.Release{ID: id, Models: models, Version: version, Build: build, Variant: variant,
				Image: manifest.Image{URLs: urls, Size: facts.Size, SHA256: facts.SHA256}}
			if err := r.Validate(manifest.ParseOptions{MaxImageSize: maxSize}); err != nil {
				return cli.Failure(err)
			}
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&image, "image", "", "the image file (digicap.dav)")
	f.StringArrayVar(&models, "model", nil, "exact model ID the image is for (repeatable)")
	f.StringVar(&version, "version", "", "firmware version, like 4.1.25")
	f.StringVar(&build, "build", "", "firmware build digits, like 200316")
	f.StringVar(&variant, "variant", "", "custom or standard")
	f.StringArrayVar(&urls, "url", nil, "http(s) or file URL of the image (repeatable; tried in order)")
	f.StringVar(&id, "id", "", "release id (default: model and version)")
	f.Int64Var(&maxSize, "max-size", manifest.DefaultMaxImageSize, "largest image size accepted, in bytes")
	f.BoolVar(&skipFormat, "skip-format-check", false, "accept an image that is not a well-formed digicap.dav")
	f.StringVar(&expectSHA, "expect-sha256", "", "SHA-256 the image must have: the digest the vendor publishes (strongly advised for iDS-9632NXI-I8/16S)")
	return c
}

// defaultReleaseID makes an id like iDS-9632NXI-I8-16S-4.1.25.
func defaultReleaseID(model, version string) string {
	s := strings.TrimSpace(model) + "-" + strings.TrimLeft(strings.TrimSpace(version), "vV")
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-._")
}
