package agent

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/design.md")

const (
	tablesBegin = "<!-- BEGIN failure tables: generated from agent/step_*.go by `go test ./agent -run TestDesignDocFailureTables -update`; do not edit -->"
	tablesEnd   = "<!-- END failure tables -->"
)

// TestDesignDocFailureTables fails when docs/design.md's failure tables
// differ from the tables the steps declare.
func TestDesignDocFailureTables(t *testing.T) {
	const path = "../docs/design.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, tablesBegin), strings.Index(doc, tablesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", path, tablesBegin, tablesEnd)
	}
	want := tablesBegin + "\n\n" + describeTables() + tablesEnd
	got := doc[i : j+len(tablesEnd)]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i]+want+doc[j+len(tablesEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s: the failure tables differ from agent/step_*.go: run go test ./agent -run TestDesignDocFailureTables -update", path)
}
