// Package cli holds what fwagent's three commands (fwagent, fwctl, nvrsim)
// share: exit codes carried by errors, cobra's own flag and argument errors
// mapped to usage errors, and main's signal handling. It knows nothing of
// what the commands do.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes every command shares, and those of fwagent's cycle commands
// (check, update). docs/reference/exit-codes.md documents them.
const (
	ExitOK            = 0
	ExitFailure       = 1 // an error, a refusal or invalid input
	ExitUsage         = 2 // the command line is wrong
	ExitNothing       = 3 // fwagent: nothing to do, not in the rollout yet, paused, or waiting for a window
	ExitRefused       = 4 // fwagent: refused by policy
	ExitInstallFailed = 5 // fwagent update: the install (upload, flash, reboot or post-install check) failed
)

// Error carries the exit code a command wants. Err may be nil: the process
// then exits with Code without printing anything.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// WithCode marks err with an exit code.
func WithCode(code int, err error) error { return &Error{Code: code, Err: err} }

// Usage marks err as a usage error (exit 2).
func Usage(err error) error { return WithCode(ExitUsage, err) }

// Failure marks err as a refusal or invalid input (exit 1).
func Failure(err error) error { return WithCode(ExitFailure, err) }

// Execute runs root with args the way every command does: quiet cobra,
// output to stdout and stderr, and flag or argument mistakes as usage
// errors. Tests call it through each command's run function.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) error {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return Usage(err) })
	usageArgs(root)
	return root.ExecuteContext(ctx)
}

// usageArgs makes every argument check of the tree return a usage error,
// so that no cobra message has to be recognised by its text: each
// command's Args is wrapped, and a command that only groups others
// refuses an unknown subcommand (cobra would show the help and exit 0).
func usageArgs(c *cobra.Command) {
	if orig := c.Args; orig != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				var e *Error
				if errors.As(err, &e) {
					return err
				}
				return Usage(err)
			}
			return nil
		}
	}
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		if c.Args == nil {
			c.Args = cobra.ArbitraryArgs
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += ": did you mean " + strings.Join(s, " or ") + "?"
			}
			return Usage(fmt.Errorf("%s: see %s --help", msg, cmd.CommandPath()))
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// ExactArgs is cobra.ExactArgs returning a usage error that says what to do.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return Usage(fmt.Errorf("%s takes %d argument(s), got %d: see %s --help", cmd.CommandPath(), n, len(args), cmd.CommandPath()))
		}
		return nil
	}
}

// ExitCode prints err, prefixed with the program's name, and returns the
// exit code it carries (1 when it carries none).
func ExitCode(prog string, err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, e.Err)
		}
		return e.Code
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	return ExitFailure
}

// Main runs a command's run function with a context that SIGINT and SIGTERM
// cancel, and exits with its code.
func Main(prog string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(prog, err, os.Stderr))
}
