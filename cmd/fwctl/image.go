package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/verify"
)

func newImageCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "image",
		Short: "Check firmware image files",
	}
	c.AddCommand(newImageInspectCmd())
	return c
}

func newImageInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show an image's size, SHA-256 and digicap.dav structure",
		Long: `Read FILE once and print its size, SHA-256, format and, for a digicap.dav
image, the header facts (language, device class, OEM code) and every entry
with its offset, length and checksum. The header checksum, the header
length, that each entry lies inside the file and each entry's checksum are
all checked. Exit 1 with the reason when the file is not a valid
digicap.dav: a zip (the vendor's download package), an encrypted HK20/HK30
container, or a truncated or corrupt image.`,
		Example: "  fwctl image inspect digicap.dav\n  fwctl image inspect --json digicap.dav",
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			facts, err := verify.InspectFile(path)
			if err != nil {
				return cli.Failure(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := printImageJSON(w, path, facts); err != nil {
					return err
				}
			} else {
				printImage(w, path, facts)
			}
			if facts.FormatErr != nil {
				return cli.Failure(fmt.Errorf("%s: %w", path, facts.FormatErr))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the facts as one JSON object")
	return c
}

func printImage(w io.Writer, path string, f verify.ImageFacts) {
	fmt.Fprintf(w, "file:         %s\n", path)
	fmt.Fprintf(w, "size:         %d bytes\n", f.Size)
	fmt.Fprintf(w, "sha256:       %s\n", f.SHA256)
	fmt.Fprintf(w, "format:       %s\n", f.Format)
	d := f.Digicap
	if d == nil {
		fmt.Fprintf(w, "structure:    INVALID\n")
		return
	}
	fmt.Fprintf(w, "language:     %d (%s)\n", d.Language, languageName(d.Language))
	fmt.Fprintf(w, "device class: 0x%x (%d)\n", d.DeviceClass, d.DeviceClass)
	fmt.Fprintf(w, "OEM code:     %d%s\n", d.OEMCode, map[bool]string{true: " (Hikvision)"}[d.OEMCode == 1])
	fmt.Fprintf(w, "header:       %d bytes, checksum ok\n", d.HeaderLength)
	fmt.Fprintf(w, "entries:      %d, all inside the file, checksums ok\n", len(d.Entries))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tOFFSET\tLENGTH\tCHECKSUM")
	for _, e := range d.Entries {
		fmt.Fprintf(tw, "  %q\t%d\t%d\t0x%08x\n", e.Name, e.Offset, e.Length, e.Checksum)
	}
	tw.Flush()
	fmt.Fprintln(w, "structure:    ok (a well-formed digicap.dav)")
}

func languageName(l uint32) string {
	switch l {
	case 1:
		return "English/multi-language"
	case 2:
		return "Chinese"
	}
	return "unknown"
}

func printImageJSON(w io.Writer, path string, f verify.ImageFacts) error {
	out := struct {
		File string `json:"file"`
		verify.ImageFacts
		Valid bool   `json:"valid"`
		Error string `json:"error,omitempty"`
	}{File: path, ImageFacts: f, Valid: f.FormatErr == nil}
	if f.FormatErr != nil {
		out.Error = f.FormatErr.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
