package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestVersionAndCompletion(t *testing.T) {
	for args, want := range map[string]string{"--version": "fwctl ", "completion bash": "bash completion", "completion zsh": "#compdef fwctl", "completion fish": "complete -c fwctl"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), strings.Fields(args), &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), want) {
			t.Errorf("fwctl %s: %v, stdout lacks %q, stderr %q", args, err, want, stderr.String())
		}
	}
}
