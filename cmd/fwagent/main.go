// Command fwagent is the update agent: the daemon (run), one-shot cycles
// (check, update), the device-side views (status, logs, audit), the support
// bundle, and a demo against the built-in simulator. It only parses flags,
// loads the config and wires packages; the work happens in agent/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes of every fwagent command.
const (
	exitOK      = 0 // success; for check: an allowed update is available; for update: installed and confirmed
	exitError   = 1 // error
	exitUsage   = 2 // usage error
	exitNothing = 3 // nothing to do
	exitRefused = 4 // refused by policy
)

// codeError carries the exit code a command wants.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// withCode marks err with an exit code; a nil err with a non-zero code still
// exits with that code, silently.
func withCode(code int, err error) error { return &codeError{code: code, err: err} }

// usage marks err as a usage error (exit 2).
func usage(err error) error { return withCode(exitUsage, err) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCodeOf(err, os.Stderr))
}

// exitCodeOf prints err (when it has a message) and maps it to an exit code.
func exitCodeOf(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		if ce.err != nil {
			fmt.Fprintln(stderr, "fwagent:", ce.err)
		}
		return ce.code
	}
	fmt.Fprintln(stderr, "fwagent:", err)
	return exitError
}

// run executes fwagent with args; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "fwagent",
		Short:         "Firmware update agent for network video recorders",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "/etc/fwagent/agent.yaml", "path of the agent's YAML config")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usage(err) })
	root.AddCommand(subcommands()...)
	return root.ExecuteContext(ctx)
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
	}
}
