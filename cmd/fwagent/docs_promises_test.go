package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/nvrsim"
)

// docTable returns the rows of the first table after the line starting
// with heading in a doc under docs/, each as its cells.
func docTable(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", doc))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\n"+heading)
	if !ok {
		t.Fatalf("docs/%s has no heading %q", doc, heading)
	}
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(after, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if strings.HasPrefix(cells[0], "---") || len(rows) == 0 && !strings.HasPrefix(cells[0], "`") {
			continue // the header and its rule
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("docs/%s: no table under %q", doc, heading)
	}
	return rows
}

var backticked = regexp.MustCompile("`([^`]+)`")

// names lists the `code` spans of a table cell.
func names(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestSupportBundleHoldsWhatTheSupportGuideLists(t *testing.T) {
	l := startLab(t, "")
	if _, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath); code != exitOK {
		t.Fatalf("update exited %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if _, stderr, code := runFwagent(t, "support-bundle", "-o", out, "--config", l.ConfigPath); code != exitOK {
		t.Fatalf("support-bundle exited %d: %s", code, stderr)
	}
	files := readBundle(t, out)
	var patterns []string
	for _, row := range docTable(t, "support-guide.md", "## Support bundle\n") {
		patterns = append(patterns, names(row[0])...)
	}
	match := func(p, name string) bool {
		if prefix, ok := strings.CutSuffix(p, "…"); ok {
			return strings.HasPrefix(name, prefix)
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(name, prefix)
		}
		return p == name
	}
	for _, p := range patterns {
		found := false
		for name := range files {
			found = found || match(p, name)
		}
		if !found {
			t.Errorf("docs/support-guide.md lists %s, which the bundle of an update does not hold", p)
		}
	}
	for name := range files {
		listed := false
		for _, p := range patterns {
			listed = listed || match(p, name)
		}
		if !listed {
			t.Errorf("the bundle holds %s, which docs/support-guide.md does not list", name)
		}
	}
}

func TestLogLinesCarryTheFieldsTheOperatorGuideLists(t *testing.T) {
	l := startLab(t, "")
	l.Sim.SetFaults(nvrsim.Faults{RejectUpload: "badFlash"}) // a failure, so failure lines are logged too
	if _, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath); code != exitInstallFailed {
		t.Fatalf("update exited %d: %s", code, stderr)
	}
	var fields []string
	for _, row := range docTable(t, "operator-guide.md", "Every line of an update attempt carries these fields") {
		fields = append(fields, names(row[0])...)
	}
	f, err := os.Open(filepath.Join(l.LogDir, "fwagent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	attemptLines, failureLines := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m["attempt"] == nil {
			continue
		}
		attemptLines++
		for _, f := range fields {
			if m[f] == nil {
				t.Errorf("line of attempt %v lacks %q: %s", m["attempt"], f, sc.Text())
			}
		}
		if m["level"] == "error" {
			failureLines++
			if m["codes"] == nil {
				t.Errorf("failure line without codes: %s", sc.Text())
			}
		}
	}
	if attemptLines == 0 || failureLines == 0 {
		t.Fatalf("%d attempt lines, %d failure lines: the test saw nothing", attemptLines, failureLines)
	}
}
