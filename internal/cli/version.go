package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Build says which build of a command is running. Version and Commit are
// stamped with -ldflags "-X main.version=... -X main.commit=..."; when they
// are empty, Go's build info fills them (the module version of a `go
// install pkg@version`, the VCS revision of a build from a checkout).
type Build struct {
	Version, Commit string
}

// Resolved returns b with empty fields taken from Go's build info, or
// "(devel)" and "unknown" when that says nothing either.
func (b Build) Resolved() Build {
	bi, ok := debug.ReadBuildInfo()
	if b.Version == "" && ok && bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if b.Commit == "" && ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				b.Commit = s.Value
				if len(b.Commit) > 12 {
					b.Commit = b.Commit[:12]
				}
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// String is the one version line every command prints:
// "fwagent 1.0.0 (commit abc1234, go1.26.8, linux/amd64)".
func (b Build) String(prog string) string {
	r := b.Resolved()
	return fmt.Sprintf("%s %s (commit %s, %s, %s/%s)", prog, r.Version, r.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// SetVersion gives root a --version flag printing b's version line.
func SetVersion(root *cobra.Command, b Build) {
	root.Version = b.Resolved().Version
	root.SetVersionTemplate(b.String(root.Name()) + "\n")
}
