package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// isCobraUsageError reports whether err came from cobra's own argument
// checks (unknown command, wrong argument count) rather than from a command.
func isCobraUsageError(err error) bool {
	if _, ok := err.(*exitError); ok {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "received ", "required flag", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usage(fmt.Errorf("%s takes %d argument(s), got %d: see %s --help", cmd.CommandPath(), n, len(args), cmd.CommandPath()))
		}
		return nil
	}
}
