package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/spf13/cobra"
)

// corruptionFlag names a testimage corruption on the command line: its
// String with spaces as dashes, e.g. "bad-magic".
func corruptionFlag(c testimage.Corruption) string {
	return strings.ReplaceAll(c.String(), " ", "-")
}

func newMkimageCmd(stdout io.Writer) *cobra.Command {
	var (
		spec         testimage.Spec
		out, corrupt string
	)
	names := []string{}
	for _, c := range testimage.Corruptions() {
		names = append(names, corruptionFlag(c))
	}
	cmd := &cobra.Command{
		Use: "mkimage -o FILE",
		Example: "  nvrsim mkimage --version 4.1.25 --build 200316 --variant custom -o digicap.dav\n" +
			"  nvrsim mkimage --corrupt bad-magic -o broken.dav",
		Short: "Write a test digicap.dav image (for tests and the simulator only, never for a real device)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return cli.Usage(fmt.Errorf("mkimage needs -o FILE"))
			}
			if spec.Variant != "custom" && spec.Variant != "standard" {
				return cli.Usage(fmt.Errorf("--variant %q: use custom or standard", spec.Variant))
			}
			if strings.Trim(spec.Build, "0123456789") != "" {
				return cli.Usage(fmt.Errorf("--build %q: give the build digits only, like 200316", spec.Build))
			}
			if spec.Size < 0 {
				return cli.Usage(fmt.Errorf("--size %d: give zero (small) or a byte count", spec.Size))
			}
			if corrupt != "" {
				found := false
				for _, c := range testimage.Corruptions() {
					if corruptionFlag(c) == corrupt {
						spec.Corrupt, found = c, true
					}
				}
				if !found {
					return cli.Usage(fmt.Errorf("--corrupt %q: use one of %s", corrupt, strings.Join(names, ", ")))
				}
			}
			size, sum, err := testimage.WriteFile(out, spec)
			if err != nil {
				return err
			}
			build := ""
			if spec.Build != "" {
				build = " build " + spec.Build
			}
			fmt.Fprintf(stdout, "%s: %s %s%s %s, %d bytes, sha256 %s\n", out, spec.Model, spec.Version, build, spec.Variant, size, sum)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&spec.Model, "model", testimage.DefaultModel, "model written into the image's fwagent.id entry")
	fl.StringVar(&spec.Version, "version", testimage.DefaultVersion, "firmware version written into the image")
	fl.StringVar(&spec.Variant, "variant", testimage.DefaultVariant, "firmware variant: custom or standard")
	fl.StringVar(&spec.Build, "build", "", "firmware build digits written into the image, like 200316 (the simulator reports it after the reboot; give the release's --build)")
	fl.Int64Var(&spec.Size, "size", 0, "total image size in bytes (0 = a small image)")
	fl.StringVarP(&out, "output", "o", "", "file to write")
	fl.StringVar(&corrupt, "corrupt", "", "build a broken image: "+strings.Join(names, ", "))
	return cmd
}
