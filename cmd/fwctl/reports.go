package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
)

// migrationDoc is where moving from the old reports receiver to the fleet
// server is documented.
const migrationDoc = "docs/fleet.md#from-fwctl-reports-serve"

// newReportsCmd keeps the old name of the report receiver: `fwctl reports
// serve` is now `fwctl fleet serve`.
func newReportsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "reports",
		Short: "Old name of the fleet server: fwctl reports serve runs fwctl fleet serve",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Usage(errors.New("fwctl reports needs a subcommand: serve, which is now fwctl fleet serve (see fwctl fleet --help)"))
		},
	}
	c.AddCommand(newReportsServeCmd())
	return c
}

// removedServeFlag is a flag of the old `fwctl reports serve` that has no
// meaning on the fleet server: it is still parsed, so that an old command
// line gets this advice instead of "unknown flag".
type removedServeFlag struct {
	name, was, instead string
}

var removedServeFlags = []removedServeFlag{
	{"token-file", "the bearer token every agent shared",
		"agents no longer share a token: each signs its reports with its own device key. Set every agent's fleet.url and enrol the keys (fwctl fleet approve SERIAL, or --enrolment open); the server's own --admin-token-file is never given to agents"},
	{"out", "the JSON Lines file reports were appended to",
		"reports go into the fleet server's database (--db). Bring the old file in once with fwctl fleet import OLD.jsonl --admin-token-file F; fwctl rollout status --reports OLD.jsonl still reads it"},
	{"max-body", "the largest report body",
		"the fleet server bounds request bodies itself: drop the flag"},
}

// newReportsServeCmd is `fwctl fleet serve` under its old name: the same
// flags and code path, a one-line notice on stderr, and a usage error for
// the old flags that mean nothing any more.
func newReportsServeCmd() *cobra.Command {
	c := newFleetServeCmd()
	c.Short = "Now fwctl fleet serve: runs the fleet server (the old --token-file, --out and --max-body are refused)"
	c.Long = `fwctl reports serve is the old name of fwctl fleet serve and runs the fleet
server with the same flags (see fwctl fleet serve --help), after one line on
standard error saying so.

The old receiver let every agent post reports with one shared bearer token,
so anyone holding it could report "installed" for any serial. The fleet
server takes reports signed by each device's own key instead, so the old
flags are refused with what to do instead:
  --token-file  set the agents' fleet.url and enrol their keys (fwctl fleet approve)
  --out         fwctl fleet import OLD.jsonl brings the old reports file in
  --max-body    the fleet server bounds bodies itself
The migration is described in ` + migrationDoc + `.`
	c.Example = `  fwctl reports serve --admin-token-file admin.token
  fwctl fleet import reports.jsonl --admin-token-file admin.token`
	for _, f := range removedServeFlags {
		c.Flags().String(f.name, "", "removed: "+f.was)
		_ = c.Flags().MarkHidden(f.name)
	}
	serve := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		for _, f := range removedServeFlags {
			if cmd.Flags().Changed(f.name) {
				return cli.Usage(fmt.Errorf("fwctl reports serve is now fwctl fleet serve and has no --%s (%s): %s (see %s)", f.name, f.was, f.instead, migrationDoc))
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "fwctl reports serve is now fwctl fleet serve; moving from the old reports file and shared token: %s\n", migrationDoc)
		return serve(cmd, args)
	}
	return c
}
