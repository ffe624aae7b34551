// Command fwagent is the update agent: the daemon (run), one-shot cycles
// (check, update), the device-side views (status, logs, audit), the support
// bundle, and a demo against the built-in simulator. It only parses flags,
// loads the config and wires packages; the work happens in agent/.
//go:generate env FWAGENT_UPDATE_DOCS=1 go test -run ^TestGeneratedDocs$ .

package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
)

// Exit codes of every fwagent command.
const (
	exitOK      = cli.ExitOK      // success; for check: an allowed update is available; for update: installed and confirmed
	exitError   = cli.ExitFailure // error
	exitUsage   = cli.ExitUsage   // usage error
	exitNothing = cli.ExitNothing // nothing to do
	exitRefused = cli.ExitRefused // refused by policy
	// exitInstallFailed: the attempt failed while installing, rebooting or
	// confirming: the device was touched, unlike other errors.
	exitInstallFailed = cli.ExitInstallFailed
)

func main() { cli.Main("fwagent", run) }

// run executes fwagent with args; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Execute(ctx, newRootCmd(), args, stdout, stderr)
}

// newRootCmd builds fwagent's whole command tree (also for the generated
// man pages and CLI reference).
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "fwagent",
		Short: "Firmware update agent for network video recorders",
		Long: "fwagent decides, with nobody watching, whether a recorder gets flashed: it reads the recorder's\n" +
			"identity, fetches a signed manifest, proves the image, installs it inside a maintenance window and\n" +
			"confirms the version. iDS-9632NXI-I8/16S only ever receives the custom firmware 4.1.25.",
	}
	root.PersistentFlags().String("config", "/etc/fwagent/agent.yaml", "path of the agent's YAML config")
	root.AddCommand(subcommands()...)
	cli.SetVersion(root, build())
	return root
}

// subcommands lists every fwagent command; each lives in its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		runCommand(),
		checkCommand(),
		updateCommand(),
		statusCommand(),
		versionCommand(),
		demoCommand(),
		logsCommand(),
		bundleCommand(),
		auditCommand(),
		backupsCommand(),
	}
}
