package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestExitCodes(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := &cobra.Command{Use: "prog"}
		root.AddCommand(&cobra.Command{Use: "two A B", Args: ExactArgs(2), RunE: func(*cobra.Command, []string) error { return nil }})
		root.AddCommand(&cobra.Command{Use: "refuse", RunE: func(*cobra.Command, []string) error { return Failure(errors.New("no")) }})
		root.AddCommand(&cobra.Command{Use: "plain", RunE: func(*cobra.Command, []string) error { return errors.New("boom") }})
		root.AddCommand(&cobra.Command{Use: "quiet", RunE: func(*cobra.Command, []string) error { return WithCode(3, nil) }})
		return root
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"a good command exits 0", []string{"two", "a", "b"}, ExitOK, ""},
		{"a wrong argument count is a usage error", []string{"two", "a"}, ExitUsage, "takes 2 argument(s), got 1"},
		{"an unknown command is a usage error", []string{"nope"}, ExitUsage, "unknown command"},
		{"an unknown flag is a usage error", []string{"two", "--nope", "a", "b"}, ExitUsage, "unknown flag"},
		{"a refusal exits 1", []string{"refuse"}, ExitFailure, "prog: no"},
		{"a plain error exits 1", []string{"plain"}, ExitFailure, "prog: boom"},
		{"a code without an error exits silently", []string{"quiet"}, 3, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := Execute(context.Background(), newRoot(), tc.args, &out, &errb)
			code := ExitCode("prog", err, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (%v)", code, tc.code, err)
			}
			if !strings.Contains(errb.String(), tc.stderr) || (tc.stderr == "" && errb.Len() > 0) {
				t.Fatalf("stderr %q, want %q", errb.String(), tc.stderr)
			}
		})
	}
}
