package main

import (
	"io"
	"testing"

	"github.com/fwagent/fwagent/internal/gendocs"
)

// TestGeneratedDocs fails when docs/man or docs/reference/cli differ from
// what this command tree generates (go generate ./cmd/... rewrites them).
func TestGeneratedDocs(t *testing.T) {
	gendocs.Test(t, newRootCmd(io.Discard, io.Discard), "../../docs")
}

// TestHelpExamplesParse fails when a help example names a command or flag
// that does not exist.
func TestHelpExamplesParse(t *testing.T) {
	gendocs.TestExamples(t, newRootCmd(io.Discard, io.Discard))
}

// TestDocCommandsParse fails when a nvrsim command line in README.md or
// docs/ names a command or flag that does not exist.
func TestDocCommandsParse(t *testing.T) {
	gendocs.TestDocCommands(t, newRootCmd(io.Discard, io.Discard), "../..")
}
