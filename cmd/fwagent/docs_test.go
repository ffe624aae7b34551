package main

import (
	"testing"

	"github.com/fwagent/fwagent/internal/gendocs"
)

// TestGeneratedDocs fails when docs/man or docs/reference/cli differ from
// what this command tree generates (go generate ./cmd/... rewrites them).
func TestGeneratedDocs(t *testing.T) {
	gendocs.Test(t, newRootCmd(), "../../docs")
}

// TestHelpExamplesParse fails when a help example names a command or flag
// that does not exist.
func TestHelpExamplesParse(t *testing.T) {
	gendocs.TestExamples(t, newRootCmd())
}

// TestDocCommandsParse fails when a fwagent command line in README.md or
// docs/ names a command or flag that does not exist.
func TestDocCommandsParse(t *testing.T) {
	gendocs.TestDocCommands(t, newRootCmd(), "../..")
}
