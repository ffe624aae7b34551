package reports

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseReportsSkipsBadLines(t *testing.T) {
	good := func(id string) string {
		return string(encodeLine(t0, mustJSON(t, rep(id, "SN1", "rel", "download", ""))))
	}
	content := good("a") +
		"\n" + // a blank line is ignored
		"not json at all\n" +
		`{"report":{"id":"b","time":"2026-12-01T00:00:00Z","step":"x"}}` + "\n" + // no received time
		`{"received":"2026-12-01T00:00:00Z","report":{"id":"c","step":"x"}}` + "\n" + // invalid report
		good("a") + // a duplicate
		good("d")
	f, err := ParseReports(strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Records) != 2 || f.Records[0].Report.ID != "a" || f.Records[1].Report.ID != "d" || f.Duplicates != 1 {
		t.Fatalf("records %+v duplicates %d", f.Records, f.Duplicates)
	}
	want := []struct {
		line int
		text string
	}{{3, "not a reports file line"}, {4, `"received" is missing`}, {5, `"time" is missing`}}
	if len(f.Bad) != len(want) {
		t.Fatalf("bad lines %v", f.Bad)
	}
	for i, w := range want {
		t.Run(fmt.Sprintf("line %d is skipped with a reason", w.line), func(t *testing.T) {
			if f.Bad[i].Line != w.line || !strings.Contains(f.Bad[i].Problem, w.text) {
				t.Fatalf("bad %v, want line %d with %q", f.Bad[i], w.line, w.text)
			}
		})
	}
}

func TestReadReportsSkipsAnIncompleteLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports.jsonl")
	whole := string(encodeLine(t0, mustJSON(t, rep("a", "SN1", "rel", "download", ""))))
	partial := `{"received":"2026-12-01T00:00:00Z","report":{"id":"b","ti`
	if err := os.WriteFile(path, []byte(whole+partial), 0o600); err != nil {
		t.Fatal(err)
	}
	f := readFile(t, path)
	if len(f.Records) != 1 || len(f.Bad) != 1 || f.Bad[0].Line != 2 || !strings.Contains(f.Bad[0].Problem, "incomplete") {
		t.Fatalf("records %d bad %v: want a, and line 2 skipped as incomplete", len(f.Records), f.Bad)
	}
}
