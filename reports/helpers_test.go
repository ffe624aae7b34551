package reports

import (
	"encoding/json"
	"testing"
	"time"
)

// rep builds a valid report body as a map, to change and marshal.
func rep(id, serial, release, step, result string, codes ...string) map[string]any {
	m := map[string]any{
		"id":            id,
		"time":          "2026-12-01T02:10:00Z",
		"device_serial": serial,
		"model":         "iDS-9632NXI-I8/16S",
		"release_id":    release,
		"version":       "4.1.25",
		"attempt_id":    "att-" + serial,
		"step":          step,
		"progress":      0,
		"agent_version": "test",
	}
	if result != "" {
		m["result"] = result
	}
	if len(codes) > 0 {
		m["codes"] = codes
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t testing.TB, path string) *File {
	t.Helper()
	f, err := ReadReports(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// encodeLine builds the reports file line for a report received at t: the
// report's compact JSON wrapped with its receive time, ending in a newline.
func encodeLine(received time.Time, compact []byte) []byte {
	line := make([]byte, 0, len(compact)+64)
	line = append(line, `{"received":"`...)
	line = received.UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, `","report":`...)
	line = append(line, compact...)
	line = append(line, "}\n"...)
	return line
}
