package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
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

// MaxBody bounds a request body the server reads, in bytes.
const MaxBody = 64 << 10

// MaxReply bounds a reply the Client reads, in bytes. A check-in answer
// lists every paused release with its cause (at most about 500 bytes
// each): 1 MiB holds thousands. A reply over the limit fails the check-in,
// and an agent whose check-in before an upload fails goes on with the
// holds it knew, so the limit must be far above any real list of pauses.
const MaxReply = 1 << 20

// Limits of the text fields of messages and admin requests, in bytes.
const (
	// MaxIDLen bounds identifiers and labels: serials, models, release
	// ids, device and site names.
	MaxIDLen = 128
	// MaxShortLen bounds short words: versions, steps, results, reason
	// codes, groups.
	MaxShortLen = 64
	// MaxMessageLen bounds a report's message.
	MaxMessageLen = 4096
)

// Limits of a list field (codes, groups): MaxListItems bounds it, in
// items; MaxListItemLen bounds each item, in bytes.
const (
	MaxListItems   = 32
	MaxListItemLen = MaxShortLen
)

// Bounds of the numeric fields. Each keeps a value inside the database
// column that holds it (fleet/postgres/migrations: INTEGER is 32 bits on
// PostgreSQL, BIGINT 64; a uint64 is stored as an int64) and inside what
// the server computes with it, so no message the server accepted can fail
// the transaction that stores it with the messages of other devices:
//
//	check-in seq              devices.checkin_seq BIGINT      1 .. 2^63-1
//	check-in progress         devices.progress INTEGER        0 .. 100
//	check-in queue_depth      devices.queue_depth INTEGER     0 .. MaxQueueDepth
//	check-in manifest_serial  devices.manifest_serial BIGINT  0 .. 2^63-1
//	check-in interval_seconds devices.interval_seconds BIGINT 0 .. MaxIntervalSeconds (3 intervals make stale_after)
//	report seq                reports.seq, devices.report_seq BIGINT  1 .. 2^63-1
//	report progress           reports.body (JSON)             0 .. 100
//	report dropped            reports.body (JSON)             0 .. 2^63-1
//	report audit_seq          reports.body (JSON)             0 .. 2^63-1
const (
	// MaxQueueDepth bounds a check-in's queue_depth: far above any
	// agent's report queue (report.queue_max, 1,000 by default).
	MaxQueueDepth = 1_000_000
	// MaxIntervalSeconds bounds a check-in's interval_seconds (366 days):
	// far above any sensible fleet.checkin_interval, and far below what
	// would overflow the time the device becomes stale.
	MaxIntervalSeconds = 366 * 24 * 60 * 60
	maxSeq             = math.MaxInt64
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

// Validate checks a check-in's fields and limits: what it accepts, both
// stores can store (see the bounds above).
func (c *CheckIn) Validate() error {
	if c.Seq == 0 {
		return &InvalidError{Field: "seq", Problem: "is missing: sign the check-in with a DeviceKey"}
	}
	if err := checkTime("time", c.Time); err != nil {
		return err
	}
	if err := checkStrings(c.textFields()); err != nil {
		return err
	}
	if err := firstError(
		inRangeU("seq", c.Seq, 1, maxSeq),
		inRange("progress", int64(c.Progress), 0, 100),
		inRange("queue_depth", int64(c.QueueDepth), 0, MaxQueueDepth),
		inRangeU("manifest_serial", c.ManifestSerial, 0, maxSeq),
		inRange("interval_seconds", c.IntervalSeconds, 0, MaxIntervalSeconds),
	); err != nil {
		return err
	}
	switch c.LastResult {
	case "", ResultInstalled, ResultFailed, ResultRefused:
	default:
		return &InvalidError{Field: "last_result", Problem: fmt.Sprintf("is %q, want installed, failed or refused", c.LastResult)}
	}
	return CheckList("groups", c.Groups)
}

// textFields lists the check-in's text fields with their limits: the one
// table Validate checks and Fit fits.
func (c *CheckIn) textFields() []field {
	return []field{
		{"serial", &c.Serial, MaxIDLen, true, false}, {"model", &c.Model, MaxIDLen, true, false},
		{"firmware", &c.Firmware, MaxShortLen, false, false}, {"device_name", &c.DeviceName, MaxIDLen, false, false},
		{"site", &c.Site, MaxIDLen, false, false}, {"step", &c.Step, MaxShortLen, false, false},
		{"release_id", &c.ReleaseID, MaxIDLen, false, false}, {"last_result", &c.LastResult, MaxShortLen, false, false},
		{"last_code", &c.LastCode, MaxShortLen, false, false}, {"last_release_id", &c.LastReleaseID, MaxIDLen, false, false},
		{"agent_version", &c.AgentVersion, MaxShortLen, false, false},
	}
}

// ParseReport decodes and validates a report payload.
func ParseReport(payload []byte) (Report, error) {
	var r Report
	if err := decodeStrict(payload, &r); err != nil {
		return r, err
	}
	return r, r.Validate()
}

// Validate checks a report's fields and limits: its sequence number, the
// rules of every report (CheckReportFields), and the protocol's own: the
// device named, the result one of its three words, the message within
// MaxMessageLen. What it accepts, both stores can store (see the bounds
// above).
func (r *Report) Validate() error {
	if r.Seq == 0 {
		return &InvalidError{Field: "seq", Problem: "is missing: sign the report with a DeviceKey"}
	}
	if err := inRangeU("seq", r.Seq, 1, maxSeq); err != nil {
		return err
	}
	if err := CheckReportFields(&r.Report); err != nil {
		return err
	}
	if r.DeviceSerial == "" {
		return &InvalidError{Field: "device_serial", Problem: "is missing or empty: a report must name its device"}
	}
	switch r.Result {
	case "", ResultInstalled, ResultFailed, ResultRefused:
	default:
		return &InvalidError{Field: "result", Problem: fmt.Sprintf("is %q, want installed, failed or refused", r.Result)}
	}
	return checkStrings([]field{messageField(&r.Report)})
}

// CheckReportFields checks the rules every agent report keeps, whether it
// reaches the fleet server signed (Report.Validate) or is read from an old
// reports file (package reports): its time present and storable, its text
// fields but the message within their limits and without control
// characters (device_serial only when given), progress 0-100, dropped and
// audit_seq not negative nor above what a BIGINT holds, and the codes a
// list (CheckList). Whether the device must be named, which result
// words and what message pass is the caller's rule. The error is an
// *InvalidError naming the field.
func CheckReportFields(r *report.Report) error {
	if err := checkTime("time", r.Time); err != nil {
		return err
	}
	if err := checkStrings(reportTextFields(r)); err != nil {
		return err
	}
	if err := firstError(
		inRange("progress", int64(r.Progress), 0, 100),
		inRange("dropped", r.Dropped, 0, math.MaxInt64),
		inRangeU("audit_seq", r.AuditSeq, 0, maxSeq),
	); err != nil {
		return err
	}
	return CheckList("codes", r.Codes)
}

// reportTextFields lists a report's text fields but its message with their
// limits: the one table CheckReportFields checks and Report.Fit fits.
// device_serial is optional here: Report.Validate requires it, a reports
// file only in a report about a release.
func reportTextFields(r *report.Report) []field {
	return []field{
		{"id", &r.ID, MaxIDLen, true, false}, {"device_serial", &r.DeviceSerial, MaxIDLen, false, false},
		{"model", &r.Model, MaxIDLen, false, false}, {"firmware_version", &r.FirmwareVersion, MaxShortLen, false, false},
		{"release_id", &r.ReleaseID, MaxIDLen, false, false}, {"version", &r.Version, MaxShortLen, false, false},
		{"attempt_id", &r.AttemptID, MaxIDLen, false, false}, {"step", &r.Step, MaxShortLen, true, false},
		{"result", &r.Result, MaxShortLen, false, false}, {"agent_version", &r.AgentVersion, MaxShortLen, false, false},
		{"audit_head", &r.AuditHead, MaxIDLen, false, false},
	}
}

// messageField is a report's message as the protocol takes it: prose
// (tabs and line breaks pass) within MaxMessageLen, checked after the
// other fields.
func messageField(r *report.Report) field {
	return field{"message", &r.Message, MaxMessageLen, false, true}
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

// field is a text field of a message and its rules: at most max bytes,
// present when required, and the characters checkText allows (prose: a
// report's message).
type field struct {
	name     string
	value    *string
	max      int
	required bool
	prose    bool
}

func checkStrings(fs []field) error {
	for _, f := range fs {
		v := *f.value
		if v == "" {
			if f.required {
				return &InvalidError{Field: f.name, Problem: "is missing or empty"}
			}
			continue
		}
		if err := checkString(f.name, v, f.max, f.prose); err != nil {
			return err
		}
	}
	return nil
}

// CheckList checks a list field of an agent message (codes, groups): at
// most MaxListItems items, each a non-empty text of at most MaxListItemLen
// bytes (CheckString's characters). The error is an *InvalidError naming
// the list, or its first bad item as name[i].
func CheckList(name string, items []string) error {
	if len(items) > MaxListItems {
		return &InvalidError{Field: name, Problem: fmt.Sprintf("has %d items, the limit is %d: remove some", len(items), MaxListItems)}
	}
	for i, s := range items {
		f := fmt.Sprintf("%s[%d]", name, i)
		if s == "" {
			return &InvalidError{Field: f, Problem: "is empty: remove it"}
		}
		if err := CheckString(f, s, MaxListItemLen); err != nil {
			return err
		}
	}
	return nil
}

// CheckString checks a text field of an agent message or an admin request
// (a serial, a release id, a pause cause): at most max bytes, valid UTF-8,
// and no control character (NUL included) nor U+FFFD (what JSON decoding
// makes of an invalid escape). Control characters garble tables,
// terminals and the web page; PostgreSQL refuses NUL and invalid UTF-8 in
// a text column. The error is an *InvalidError naming field.
func CheckString(field, v string, max int) error { return checkString(field, v, max, false) }

// checkString is CheckString, for prose too (a report's message).
func checkString(field, v string, max int, prose bool) error {
	if len(v) > max {
		return &InvalidError{Field: field, Problem: fmt.Sprintf("is %d bytes long, the limit is %d: shorten it", len(v), max)}
	}
	return checkText(field, v, prose)
}

// checkText is the character rule of text fields: valid UTF-8, and only
// runes textRune allows (prose: a report's message, made of error texts).
func checkText(field, v string, prose bool) error {
	if !utf8.ValidString(v) {
		return &InvalidError{Field: field, Problem: "is not valid UTF-8: use UTF-8 text"}
	}
	for i, c := range v {
		switch {
		case textRune(c, prose):
		case c == 0:
			return &InvalidError{Field: field, Problem: fmt.Sprintf("holds a NUL character at byte %d: use text without control characters", i)}
		case c == utf8.RuneError:
			return &InvalidError{Field: field, Problem: fmt.Sprintf("holds %U (the mark of an invalid character) at byte %d: use valid text", c, i)}
		default:
			return &InvalidError{Field: field, Problem: fmt.Sprintf("holds the control character %U at byte %d: use text without control characters", c, i)}
		}
	}
	return nil
}

// textRune reports whether c may stand in a text field: no control
// character (NUL included) nor U+FFFD (what JSON decoding makes of an
// invalid escape); in prose (a report's message) tabs, line breaks and
// U+FFFD pass.
func textRune(c rune, prose bool) bool {
	switch {
	case prose && (c == '\t' || c == '\n' || c == '\r' || c == utf8.RuneError):
		return true
	case unicode.IsControl(c), c == utf8.RuneError:
		return false
	}
	return true
}

// inRange checks a numeric field against its bounds.
func inRange(field string, v, min, max int64) error {
	if v < min || v > max {
		return &InvalidError{Field: field, Problem: fmt.Sprintf("is %d, want %d to %d", v, min, max)}
	}
	return nil
}

// inRangeU checks an unsigned numeric field against its bounds.
func inRangeU(field string, v, min, max uint64) error {
	if v < min || v > max {
		return &InvalidError{Field: field, Problem: fmt.Sprintf("is %d, want %d to %d", v, min, max)}
	}
	return nil
}

// firstError returns the first error that is not nil.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkTime refuses a missing time, and one that does not encode back to
// JSON (a year outside 0-9999, in its own offset or in UTC, or an offset
// of 24 hours or more: "+24:00" parses but does not encode), which the
// store could not keep.
func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return &InvalidError{Field: field, Problem: "is missing: give the RFC 3339 time it was made"}
	}
	if _, err := t.MarshalJSON(); err != nil {
		return &InvalidError{Field: field, Problem: fmt.Sprintf("is %s, which cannot be stored (%v): send an RFC 3339 time in UTC", t.Format(time.RFC3339Nano), err)}
	}
	if _, err := t.UTC().MarshalJSON(); err != nil {
		return &InvalidError{Field: field, Problem: fmt.Sprintf("is %s, whose UTC year is outside 0-9999: send an RFC 3339 time in UTC", t.Format(time.RFC3339Nano))}
	}
	return nil
}
