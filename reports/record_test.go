package reports

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/fleet"
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
		// The rules every report keeps are the fleet protocol's.
		{"a time that does not encode back is refused", bytes.Replace(good, []byte(`2026-12-01T02:10:00Z`), []byte(`2026-12-01T02:10:00+24:00`), 1), `"time"`},
		{"an over-long version is refused", with(t, "version", strings.Repeat("4", fleet.MaxShortLen+1)), `"version" is 65 bytes long, the limit is 64`},
		{"a control character in the audit head is refused", with(t, "audit_head", "ab\x00"), `"audit_head" holds a NUL`},
		{"a negative audit sequence is refused", bytes.Replace(good, []byte(`"progress":0`), []byte(`"progress":0,"audit_seq":-1`), 1), `"audit_seq"`},
		{"an empty code is refused", mustJSON(t, rep("r7", "SN1", "rel", "download", "", "ok", "")), `"codes[1]" is empty`},
		{"33 codes are refused", mustJSON(t, rep("r8", "SN1", "rel", "download", "", strings.Split(strings.Repeat("c ", 33), " ")[:33]...)), `"codes" has 33 items`},
		{"a message over 8192 bytes is refused", with(t, "message", strings.Repeat("m", 8193)), `"message" is 8193 bytes long, the limit is 8192`},
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

// A reports file takes what the fleet protocol does not: the old report
// server's reports.
func TestParseReportTakesWhatTheFileAllows(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"a report without seq", mustJSON(t, rep("r1", "SN1", "rel", "download", ""))},
		{"a report about no release without serial", mustJSON(t, rep("r1", "", "", "cycle", "failed"))},
		{"the synonym success", mustJSON(t, rep("r1", "SN1", "rel", "done", ResultSuccess))},
		{"the synonym failure", mustJSON(t, rep("r1", "SN1", "rel", "done", ResultFailure))},
		{"a message of 8192 bytes", with(t, "message", strings.Repeat("m", 8192))},
		{"a message holding control characters", with(t, "message", "the recorder said \x1b[1mno\x00")},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is accepted", func(t *testing.T) {
			if r, _, err := ParseReport(tt.body); err != nil || r.ID != "r1" {
				t.Fatalf("report %+v, err %v", r, err)
			}
		})
	}
}

// with is the valid report r1 with one field set.
func with(t *testing.T, field string, v any) []byte {
	t.Helper()
	m := rep("r1", "SN1", "rel", "download", "")
	m[field] = v
	return mustJSON(t, m)
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
