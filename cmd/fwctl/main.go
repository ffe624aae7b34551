// Command fwctl is the integrator's tool: it makes keys, builds and signs
// manifests, stages rollouts and reads reports. It only parses flags and wires
// packages together; the work happens in manifest/, verify/ and reports/.
//go:generate env FWAGENT_UPDATE_DOCS=1 go test -run ^TestGeneratedDocs$ .

package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
)

// Exit codes shared by every fwctl command.
const (
	exitOK      = cli.ExitOK
	exitInvalid = cli.ExitFailure // refused or invalid input
	exitUsage   = cli.ExitUsage
)

func main() { cli.Main("fwctl", run) }

// Set at build time with -ldflags "-X main.version=1.2.3 -X main.commit=abc1234";
// without them, Go's build info fills them.
var version, commit string

// run executes fwctl with args; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Execute(ctx, newRootCmd(), args, stdout, stderr)
}

// newRootCmd builds fwctl's whole command tree (also for the generated man
// pages and CLI reference).
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "fwctl",
		Short: "Make keys, sign manifests, stage rollouts and read reports for fwagent",
	}
	root.AddCommand(subcommands()...)
	cli.SetVersion(root, cli.Build{Version: version, Commit: commit})
	return root
}

// exitCode prints err and maps it to the process exit code (for tests).
func exitCode(err error, stderr io.Writer) int { return cli.ExitCode("fwctl", err, stderr) }

// subcommands lists every fwctl command; each lives in its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		// keep one constructor per line: newKeygenCmd(), newSignCmd(), ...
		newKeygenCmd(),
		newReleaseCmd(),
		newManifestCmd(),
		newSignCmd(),
		newVerifyCmd(),
		newInspectCmd(),
		newRolloutCmd(),
		newImageCmd(),
		newReportsCmd(),
		newFleetCmd(),
	}
}
