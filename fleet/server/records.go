package server

import (
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/reports"
)

// ImportKeyID marks reports imported from an old reports file.
const ImportKeyID = "import"

// ToRecord converts a stored report to the reports file's Record, so the
// rollout statistics (package reports) count both the same way.
func ToRecord(r fleet.ReportRecord) reports.Record {
	p := r.Report
	return reports.Record{Received: r.Received, Report: report.Report{
		ID: p.ID, Time: p.Time, DeviceSerial: p.DeviceSerial, Model: p.Model, FirmwareVersion: p.FirmwareVersion,
		ReleaseID: p.ReleaseID, Version: p.Version, AttemptID: p.AttemptID, Step: p.Step, Progress: p.Progress,
		Result: p.Result, Codes: p.Codes, Message: p.Message, AgentVersion: p.AgentVersion, Dropped: p.Dropped,
		AuditSeq: p.AuditSeq, AuditHead: p.AuditHead,
	}}
}

// FromRecord converts an old reports file's record (never signed).
func FromRecord(rec reports.Record) fleet.ReportRecord {
	p := rec.Report
	result := p.Result
	switch result {
	case reports.ResultSuccess:
		result = fleet.ResultInstalled
	case reports.ResultFailure:
		result = fleet.ResultFailed
	}
	return fleet.ReportRecord{Received: rec.Received, KeyID: ImportKeyID, Report: fleet.Report{
		ID: p.ID, Time: p.Time, DeviceSerial: p.DeviceSerial, Model: p.Model, FirmwareVersion: p.FirmwareVersion,
		ReleaseID: p.ReleaseID, Version: p.Version, AttemptID: p.AttemptID, Step: p.Step, Progress: p.Progress,
		Result: result, Codes: p.Codes, Message: p.Message, AgentVersion: p.AgentVersion, Dropped: p.Dropped,
		AuditSeq: p.AuditSeq, AuditHead: p.AuditHead,
	}}
}
