package server

import (
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/reports"
)

// ToRecord converts a stored report to the reports file's Record, so the
// rollout statistics (package reports) count both the same way.
func ToRecord(r fleet.ReportRecord) reports.Record {
	return reports.Record{Received: r.Received, Report: r.Report.Report}
}

// FromRecord converts an old reports file's record (never signed).
func FromRecord(rec reports.Record) fleet.ReportRecord {
	p := rec.Report
	switch p.Result {
	case reports.ResultSuccess:
		p.Result = fleet.ResultInstalled
	case reports.ResultFailure:
		p.Result = fleet.ResultFailed
	}
	return fleet.ReportRecord{Received: rec.Received, KeyID: fleet.ImportKeyID, Report: fleet.Report{Report: p}}
}
