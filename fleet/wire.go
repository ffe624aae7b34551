package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fwagent/fwagent/agent/report"
)

// URL paths of the fleet server's agent API.
const (
	CheckInPath = "/v1/checkin"
	ReportPath  = "/v1/report"
)

// Envelope types: the first input of PAE, so a signed check-in can never
// be taken for a report or the other way round.
const (
	TypeCheckIn = "application/vnd.fwagent.fleet.checkin.v1+json"
	TypeReport  = "application/vnd.fwagent.fleet.report.v1+json"
)

// MaxBody bounds a request body the server reads and a reply the Client
// reads, in bytes.
const MaxBody = 64 << 10

// Field limits, in bytes (lists: items).
const (
	maxIDLen      = 128
	maxShortLen   = 64
	maxMessageLen = 4096
	maxList       = 32
)

// CheckIn is what an agent tells the server at every poll: who it is and
// where it stands. It is small and holds no personal data: serial, model
// and versions are not personal; the device and site names are the
// integrator's labels.
type CheckIn struct {
	// Seq is the device's sequence number: it only grows (shared with
	// reports); the server ignores a check-in whose Seq is not above the
	// last one it accepted.
	Seq uint64 `json:"seq"`
	// Time is when the agent made the check-in (UTC).
	Time time.Time `json:"time"`

	Serial     string `json:"serial"`
	Model      string `json:"model"`
	Firmware   string `json:"firmware,omitempty"`    // version the device runs
	DeviceName string `json:"device_name,omitempty"` // the integrator's label
	Site       string `json:"site,omitempty"`        // the integrator's label

	// Step is the update step under way ("" or "idle" when none; see
	// StepPendingImage), ReleaseID the release it works on, Progress its
	// percent.
	Step      string `json:"step,omitempty"`
	ReleaseID string `json:"release_id,omitempty"`
	Progress  int    `json:"progress,omitempty"`

	// LastResult ("installed", "failed", "refused") and LastCode (a reason
	// code) are those of the last finished attempt, on LastReleaseID.
	LastResult    string `json:"last_result,omitempty"`
	LastCode      string `json:"last_code,omitempty"`
	LastReleaseID string `json:"last_release_id,omitempty"`

	QueueDepth     int      `json:"queue_depth"`               // reports waiting in the agent's queue
	AgentVersion   string   `json:"agent_version"`             // fwagent version
	ManifestSerial uint64   `json:"manifest_serial,omitempty"` // serial of the last verified manifest
	Groups         []string `json:"groups,omitempty"`          // the agent's configured rollout groups
	// IntervalSeconds is the interval the agent announces: the longer of
	// its check-in interval and its longest sleep between two polls (the
	// next check-in comes within twice it); the server marks the device
	// stale after three of them without a check-in.
	IntervalSeconds int64 `json:"interval_seconds,omitempty"`
}

// StepPendingImage is a Step the server shows as state pending_image, as
// it does a failed last attempt with code pending_image (CodePendingImage,
// which is what the agent sends: its recorder holds an image it did not
// send, waiting for a reboot).
const StepPendingImage = "pending_image"

// Hold tells an agent not to start a release. A hold can only stop: an
// agent honours it before starting a download and before the upload to the
// device, never interrupts a flash, and never treats a hold (or its
// absence) as permission to install anything.
type Hold struct {
	ReleaseID string    `json:"release_id"`
	Reason    string    `json:"reason"` // who or what paused it, for the agent's log
	Since     time.Time `json:"since"`
}

// CheckInReply is the server's answer to a check-in.
type CheckInReply struct {
	// Enrolment is EnrolAccepted, or EnrolPending while an administrator
	// has not approved the device's key.
	Enrolment string `json:"enrolment"`
	// Holds lists the releases the agent must not start.
	Holds []Hold `json:"holds"`
	// CheckInSeconds is the interval the server wants between check-ins
	// (0: keep the configured one). An agent bounds it with its own limits.
	CheckInSeconds int64 `json:"checkin_seconds,omitempty"`
	// ServerTime is the server's clock, for the agent's log only.
	ServerTime time.Time `json:"server_time"`
}

// Enrolment answers.
const (
	EnrolAccepted = "accepted"
	EnrolPending  = "pending"
)

// Held reports whether the reply holds releaseID, and the hold.
func (r *CheckInReply) Held(releaseID string) (Hold, bool) {
	for _, h := range r.Holds {
		if h.ReleaseID == releaseID {
			return h, true
		}
	}
	return Hold{}, false
}

// Report is one report of an update attempt (a step change or its result)
// as the fleet server receives it: the agent's report (package
// agent/report, also the reports file's format) with the sequence number
// of the device key that signed it. The agent signs it when it queues it,
// so a report delivered days later still verifies.
type Report struct {
	Seq uint64 `json:"seq"`
	report.Report
}

// Report results.
const (
	ResultInstalled = "installed"
	ResultFailed    = "failed"
	ResultRefused   = "refused"
)

// ParseCheckIn decodes and validates a check-in payload.
func ParseCheckIn(payload []byte) (CheckIn, error) {
	var c CheckIn
	if err := decodeStrict(payload, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate checks a check-in's fields and limits.
func (c *CheckIn) Validate() error {
	if c.Seq == 0 {
		return &InvalidError{Field: "seq", Problem: "is missing: sign the check-in with a DeviceKey"}
	}
	if c.Time.IsZero() {
		return &InvalidError{Field: "time", Problem: "is missing"}
	}
	if err := checkStrings([]field{
		{"serial", c.Serial, maxIDLen, true}, {"model", c.Model, maxIDLen, true},
		{"firmware", c.Firmware, maxShortLen, false}, {"device_name", c.DeviceName, maxIDLen, false},
		{"site", c.Site, maxIDLen, false}, {"step", c.Step, maxShortLen, false},
		{"release_id", c.ReleaseID, maxIDLen, false}, {"last_result", c.LastResult, maxShortLen, false},
		{"last_code", c.LastCode, maxShortLen, false}, {"last_release_id", c.LastReleaseID, maxIDLen, false},
		{"agent_version", c.AgentVersion, maxShortLen, false},
	}); err != nil {
		return err
	}
	if c.Progress < 0 || c.Progress > 100 {
		return &InvalidError{Field: "progress", Problem: fmt.Sprintf("is %d, want 0 to 100", c.Progress)}
	}
	if c.QueueDepth < 0 {
		return &InvalidError{Field: "queue_depth", Problem: "is negative"}
	}
	if c.IntervalSeconds < 0 {
		return &InvalidError{Field: "interval_seconds", Problem: "is negative"}
	}
	switch c.LastResult {
	case "", ResultInstalled, ResultFailed, ResultRefused:
	default:
		return &InvalidError{Field: "last_result", Problem: fmt.Sprintf("is %q, want installed, failed or refused", c.LastResult)}
	}
	return checkList("groups", c.Groups)
}

// ParseReport decodes and validates a report payload.
func ParseReport(payload []byte) (Report, error) {
	var r Report
	if err := decodeStrict(payload, &r); err != nil {
		return r, err
	}
	return r, r.Validate()
}

// Validate checks a report's fields and limits (the rules of the reports
// file, plus the sequence number).
func (r *Report) Validate() error {
	if r.Seq == 0 {
		return &InvalidError{Field: "seq", Problem: "is missing: sign the report with a DeviceKey"}
	}
	if r.Time.IsZero() {
		return &InvalidError{Field: "time", Problem: "is missing"}
	}
	if err := checkStrings([]field{
		{"id", r.ID, maxIDLen, true}, {"device_serial", r.DeviceSerial, maxIDLen, true},
		{"model", r.Model, maxIDLen, false}, {"firmware_version", r.FirmwareVersion, maxShortLen, false},
		{"release_id", r.ReleaseID, maxIDLen, false}, {"version", r.Version, maxShortLen, false},
		{"attempt_id", r.AttemptID, maxIDLen, false}, {"step", r.Step, maxShortLen, true},
		{"result", r.Result, maxShortLen, false}, {"agent_version", r.AgentVersion, maxShortLen, false},
		{"audit_head", r.AuditHead, maxIDLen, false},
	}); err != nil {
		return err
	}
	if r.Progress < 0 || r.Progress > 100 {
		return &InvalidError{Field: "progress", Problem: fmt.Sprintf("is %d, want 0 to 100", r.Progress)}
	}
	if r.Dropped < 0 {
		return &InvalidError{Field: "dropped", Problem: "is negative"}
	}
	switch r.Result {
	case "", ResultInstalled, ResultFailed, ResultRefused:
	default:
		return &InvalidError{Field: "result", Problem: fmt.Sprintf("is %q, want installed, failed or refused", r.Result)}
	}
	if len(r.Message) > maxMessageLen {
		return &InvalidError{Field: "message", Problem: fmt.Sprintf("is %d bytes long, the limit is %d", len(r.Message), maxMessageLen)}
	}
	return checkList("codes", r.Codes)
}

// decodeStrict decodes exactly one JSON object with known fields only.
func decodeStrict(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return &InvalidError{Problem: "the payload is not a JSON object"}
	}
	if !utf8.Valid(data) {
		return &InvalidError{Problem: "the payload is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &InvalidError{Problem: "is not valid JSON for this message: " + err.Error()}
	}
	if dec.More() {
		return &InvalidError{Problem: "holds data after the JSON object"}
	}
	return nil
}

type field struct {
	name, value string
	max         int
	required    bool
}

func checkStrings(fs []field) error {
	for _, f := range fs {
		if f.value == "" {
			if f.required {
				return &InvalidError{Field: f.name, Problem: "is missing or empty"}
			}
			continue
		}
		if err := checkString(f.name, f.value, f.max); err != nil {
			return err
		}
	}
	return nil
}

func checkList(name string, items []string) error {
	if len(items) > maxList {
		return &InvalidError{Field: name, Problem: fmt.Sprintf("has %d items, the limit is %d", len(items), maxList)}
	}
	for i, s := range items {
		f := fmt.Sprintf("%s[%d]", name, i)
		if s == "" {
			return &InvalidError{Field: f, Problem: "is empty"}
		}
		if err := checkString(f, s, maxShortLen); err != nil {
			return err
		}
	}
	return nil
}

// checkString bounds a field and refuses control characters (they would
// garble tables, terminals and the web page).
func checkString(name, v string, max int) error {
	if len(v) > max {
		return &InvalidError{Field: name, Problem: fmt.Sprintf("is %d bytes long, the limit is %d", len(v), max)}
	}
	for _, c := range v {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return &InvalidError{Field: name, Problem: fmt.Sprintf("holds the control or invalid character %U", c)}
		}
	}
	return nil
}
