// Command fwctl is the integrator's tool: it makes keys, builds and signs
// manifests, stages rollouts and reads reports. It only parses flags and wires
// packages together; the work happens in manifest/, verify/ and reports/.
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

// Exit codes shared by every fwctl command.
const (
	exitOK      = 0
	exitInvalid = 1 // refused or invalid input
	exitUsage   = 2
)

// exitError carries the exit code a command wants.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// invalid marks err as a refusal or invalid input (exit 1).
func invalid(err error) error { return &exitError{code: exitInvalid, err: err} }

// usage marks err as a usage error (exit 2).
func usage(err error) error { return &exitError{code: exitUsage, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err and maps it to the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "fwctl:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitInvalid
}

// run executes fwctl with args; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "fwctl",
		Short:         "Make keys, sign manifests, stage rollouts and read reports for fwagent",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usage(err) })
	root.AddCommand(subcommands()...)
	err := root.ExecuteContext(ctx)
	if err != nil && isCobraUsageError(err) {
		return usage(err)
	}
	return err
}

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
	}
}
