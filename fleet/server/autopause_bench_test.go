package server

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/sqlite"
)

// BenchmarkAutoPauseCheck is one auto-pause check of a release with
// 20,000 reports (one finished install per device, one in ten failed) on
// SQLite: it reads and counts every report.
func BenchmarkAutoPauseCheck(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "fleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const n = 20000
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]fleet.ReportRecord, n)
	for i := range recs {
		r := fleet.Report{Seq: 1, Report: report.Report{ID: fmt.Sprintf("rep-%06d", i), Time: now, DeviceSerial: fmt.Sprintf("NVR-%06d", i), Model: "iDS-9632NXI-I8/16S",
			ReleaseID: "r2", Version: "V4.1.25", Step: "confirm", Progress: 100, Result: fleet.ResultInstalled, AgentVersion: "1.0"}}
		if i%10 == 0 {
			r.Result, r.Codes = fleet.ResultFailed, []string{"badFlash"}
		}
		recs[i] = fleet.ReportRecord{Received: now, Report: r, KeyID: "k"}
	}
	if err := st.Update(ctx, func(tx fleet.Tx) error { return tx.AddReports(ctx, recs) }); err != nil {
		b.Fatal(err)
	}
	s, err := New(st, Options{MaxFailureRate: 0.2, MinInstalls: 10})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, cause, err := s.autoPauseCause(ctx, "r2"); err != nil || cause != "" {
			b.Fatalf("cause %q, err %v", cause, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/report")
}
