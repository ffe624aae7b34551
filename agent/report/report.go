// Package report owns the reports the agent sends to the integrator's
// server: their JSON form, a durable bounded queue in the state directory,
// and in-order delivery through go-retryablehttp.
//
// It must not decide what to report or when; the agent does. It never logs
// the bearer token and never deletes a report before the server accepted it
// (or rejected it for good, in which case it is kept in reports/rejected/).
package report

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Report is one report: a step change or a result of an update attempt.
// Its JSON form is the wire format; see the Reports section of README.md.
type Report struct {
	// ID is unique per report (random); a server uses it to drop the
	// duplicates that at-least-once delivery can produce.
	ID string `json:"id"`
	// Time is when the agent created the report (UTC).
	Time time.Time `json:"time"`
	// DeviceSerial and Model identify the recorder.
	DeviceSerial string `json:"device_serial"`
	Model        string `json:"model"`
	// FirmwareVersion is what the device reported running when the report
	// was made.
	FirmwareVersion string `json:"firmware_version,omitempty"`
	// ReleaseID and Version name the release being installed, if any.
	ReleaseID string `json:"release_id,omitempty"`
	Version   string `json:"version,omitempty"`
	// AttemptID ties together every report of one update attempt.
	AttemptID string `json:"attempt_id,omitempty"`
	// Step is the journal step name ("download", "install", ...).
	Step string `json:"step"`
	// Progress is the step's progress in percent, 0-100.
	Progress int `json:"progress"`
	// Result is set on the last report of an attempt: "installed" (and
	// confirmed), "failed" or "refused" (by policy).
	Result string `json:"result,omitempty"`
	// Codes are the stable reason codes (e.g. "standard_firmware_forbidden").
	Codes []string `json:"codes,omitempty"`
	// Message is a human sentence; it must hold no personal data.
	Message string `json:"message,omitempty"`
	// AgentVersion is the fwagent version that made the report.
	AgentVersion string `json:"agent_version"`
	// Dropped counts reports the queue dropped (oldest first, because it was
	// full) just before this one was queued.
	Dropped int64 `json:"dropped,omitempty"`
	// AuditSeq and AuditHead are the sequence number and hash of the last
	// entry of the device's audit trail when the report was made. Kept by
	// the integrator, they anchor the trail off the device: a trail later
	// rewritten on the device no longer matches them.
	AuditSeq  uint64 `json:"audit_seq,omitempty"`
	AuditHead string `json:"audit_head,omitempty"`
}

// newID returns 16 random bytes in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
