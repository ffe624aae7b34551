package reports

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseReport(t *testing.T) {
	good := mustJSON(t, rep("r1", "SN1", "rel", "download", ""))
	tests := []struct {
		name string
		body []byte
		want string // "" when the report is valid
	}{
		{"a valid report is accepted", good, ""},
		{"an empty body is refused", nil, "empty"},
		{"broken JSON is refused", []byte(`{"id":"r3",`), "not valid JSON"},
		{"a JSON array is refused", []byte(`[{"id":"r3"}]`), "not a JSON object"},
		{"two objects in one body are refused", append(append([]byte{}, good...), good...), "after the JSON object"},
		{"a field of the wrong type is refused", bytes.Replace(good, []byte(`"progress":0`), []byte(`"progress":"0"`), 1), `"progress"`},
		{"a bad time is refused", bytes.Replace(good, []byte(`2026-12-01T02:10:00Z`), []byte(`yesterday`), 1), "RFC 3339"},
		{"a report without id is refused", mustJSON(t, rep("", "SN1", "rel", "download", "")), `"id" is missing`},
		{"a release report without serial is refused", mustJSON(t, rep("r4", "", "rel", "download", "")), "must name the device"},
		{"an unknown result is refused", mustJSON(t, rep("r5", "SN1", "rel", "done", "great")), `"result"`},
		{"progress above 100 is refused", bytes.Replace(good, []byte(`"progress":0`), []byte(`"progress":101`), 1), "0 to 100"},
		{"a control character in the serial is refused", mustJSON(t, rep("r6", "SN\u001b[2J", "rel", "download", "")), "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, err := ParseReport(tt.body)
			if tt.want == "" {
				if err != nil || r.ID != "r1" {
					t.Fatalf("report %+v, err %v", r, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrInvalid saying %q", err, tt.want)
			}
		})
	}
}

func TestParseReportKeepsUnknownFields(t *testing.T) {
	m := rep("r1", "SN1", "rel", "download", "")
	m["new_field"] = map[string]any{"a": 1}
	_, compact, err := ParseReport(append([]byte("  \n"), mustJSON(t, m)...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(compact, []byte(`"new_field":{"a":1}`)) || bytes.ContainsAny(compact, "\n ") {
		t.Fatalf("compact form %q does not keep the unknown field on one line", compact)
	}
}
