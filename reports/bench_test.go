package reports

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkReadAndSummarize reads and summarizes 100,000 reports of 10,000
// devices.
func BenchmarkReadAndSummarize(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; i < 100_000; i++ {
		body := mustJSON(b, rep(fmt.Sprint("id", i), fmt.Sprintf("SN%05d", i%10_000), "rel", "download", ""))
		buf.Write(encodeLine(t0.Add(time.Duration(i)*time.Second), body))
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	ro := testRollout()
	for b.Loop() {
		f, err := ParseReports(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if s := Summarize(f.Records, "rel", ro, t0.Add(4*time.Hour)); s.Total.Devices != 10_000 {
			b.Fatalf("%d devices", s.Total.Devices)
		}
	}
}
