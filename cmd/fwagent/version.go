package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
)

// Set at build time with
//
//	go build -ldflags "-X main.version=1.2.3 -X main.commit=$(git rev-parse --short HEAD)" ./cmd/fwagent
//
// Without them, Go's build info fills them (see cli.Build).
var (
	version = ""
	commit  = ""
)

// build is this binary's version and commit.
func build() cli.Build { return cli.Build{Version: version, Commit: commit} }

// buildVersion is the agent's version as reports and logs carry it.
func buildVersion() string { return build().Resolved().Version }

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent's version, commit and Go version (same as --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), build().String("fwagent"))
			return nil
		},
	}
}
