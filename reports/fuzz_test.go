package reports

import (
	"bytes"
	"testing"
)

// FuzzParseReport feeds arbitrary bodies to the report validator: it must
// never panic, and whatever it accepts must read back from a file line.
func FuzzParseReport(f *testing.F) {
	f.Add([]byte(`{"id":"a","time":"2026-12-01T00:00:00Z","device_serial":"S","release_id":"r","step":"done","result":"installed"}`))
	f.Add([]byte(`{"id":"a","time":"2026-12-01T00:00:00Z","step":"cycle","codes":["x"],"extra":[1,{"y":null}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, compact, err := ParseReport(body)
		if err != nil {
			return
		}
		if bytes.ContainsAny(compact, "\n\r") {
			t.Fatalf("compact form %q spans lines", compact)
		}
		got, err := parseLine(encodeLine(t0, compact))
		if err != nil {
			t.Fatalf("accepted body does not read back: %v", err)
		}
		if got.Report.ID != r.ID || got.Report.DeviceSerial != r.DeviceSerial || !got.Received.Equal(t0) {
			t.Fatalf("read back %+v, want %+v", got.Report, r)
		}
	})
}

// FuzzParseReports feeds arbitrary file content to the reader: it must
// never panic or fail, only skip lines.
func FuzzParseReports(f *testing.F) {
	line := encodeLine(t0, []byte(`{"id":"a","time":"2026-12-01T00:00:00Z","step":"download"}`))
	f.Add(line)
	f.Add(append(append([]byte{}, line...), line[:20]...))
	f.Add([]byte("\n\n{}\nnot json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ParseReports(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if lines := bytes.Count(data, []byte("\n")) + 1; len(out.Records)+len(out.Bad)+out.Duplicates > lines {
			t.Fatalf("%d records, %d bad, %d duplicates from %d lines", len(out.Records), len(out.Bad), out.Duplicates, lines)
		}
	})
}
