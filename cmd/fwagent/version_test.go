package main

import (
	"strings"
	"testing"
)

func TestVersionFlagAndCommandPrintOneLine(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		stdout, stderr, code := runFwagent(t, args...)
		if code != exitOK || !strings.HasPrefix(stdout, "fwagent ") || !strings.Contains(stdout, "(commit ") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestCompletionPrintsAScriptForEveryShell(t *testing.T) {
	for shell, want := range map[string]string{"bash": "bash completion", "zsh": "#compdef fwagent", "fish": "complete -c fwagent"} {
		stdout, stderr, code := runFwagent(t, "completion", shell)
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, stderr %q, stdout lacks %q", shell, code, stderr, want)
		}
	}
}
