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
