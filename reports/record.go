package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fwagent/fwagent/agent/report"
)

// Record is one line of a reports file: the report as the agent sent it
// and when the server received it (server clock, UTC).
type Record struct {
	Received time.Time     `json:"received"`
	Report   report.Report `json:"report"`
}

// Result values a report may carry. The agent sends "installed", "failed"
// and "refused"; "success" and "failure" are accepted as synonyms.
const (
	ResultInstalled = "installed"
	ResultSuccess   = "success"
	ResultFailed    = "failed"
	ResultFailure   = "failure"
	ResultRefused   = "refused"
)

// Field limits of a report, in bytes (codes: items).
const (
	maxIDLen      = 128
	maxShortLen   = 64
	maxMessageLen = 8192
	maxCodes      = 32
)

// ParseReport validates one report body: exactly one JSON object, every
// known field of the right type and within its limits, id, time and step
// present, device_serial present when release_id is, result one of the
// known values. Unknown fields are accepted (newer agents may add some) and
// kept in the compact form. It returns the report and its compact JSON form; a
// refusal is an *InvalidError.
func ParseReport(body []byte) (report.Report, []byte, error) {
	var r report.Report
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return r, nil, &InvalidError{Problem: "the body is empty: send one JSON object"}
	}
	if trimmed[0] != '{' {
		return r, nil, &InvalidError{Problem: "the body is not a JSON object: send one report as {...}"}
	}
	if !utf8.Valid(trimmed) {
		return r, nil, &InvalidError{Problem: "the body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&r); err != nil {
		return r, nil, &InvalidError{Problem: "is not valid JSON for a report: " + jsonProblem(err)}
	}
	if dec.More() || dec.InputOffset() != int64(len(trimmed)) {
		return r, nil, &InvalidError{Problem: "holds data after the JSON object: send one report per request"}
	}
	if err := validate(&r); err != nil {
		return r, nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		return r, nil, &InvalidError{Problem: "is not valid JSON: " + err.Error()}
	}
	return r, compact.Bytes(), nil
}

// jsonProblem turns a decoder error into a sentence that names the field.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has a %s value, want %s", te.Field, te.Value, te.Type)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("field \"time\" %q is not an RFC 3339 time", pe.Value)
	}
	return err.Error()
}

func validate(r *report.Report) error {
	strs := []struct {
		field, value string
		max          int
		required     bool
	}{
		{"id", r.ID, maxIDLen, true},
		{"device_serial", r.DeviceSerial, maxIDLen, r.ReleaseID != ""},
		{"model", r.Model, maxIDLen, false},
		{"firmware_version", r.FirmwareVersion, maxShortLen, false},
		{"release_id", r.ReleaseID, maxIDLen, false},
		{"version", r.Version, maxShortLen, false},
		{"attempt_id", r.AttemptID, maxIDLen, false},
		{"step", r.Step, maxShortLen, true},
		{"result", r.Result, maxShortLen, false},
		{"agent_version", r.AgentVersion, maxShortLen, false},
	}
	for _, s := range strs {
		if s.value == "" {
			if s.required {
				why := "is missing or empty"
				if s.field == "device_serial" {
					why = "is missing: a report about a release must name the device"
				}
				return &InvalidError{Field: s.field, Problem: why}
			}
			continue
		}
		if err := checkString(s.field, s.value, s.max); err != nil {
			return err
		}
	}
	if r.Time.IsZero() {
		return &InvalidError{Field: "time", Problem: "is missing: give the RFC 3339 time the report was made"}
	}
	if r.Progress < 0 || r.Progress > 100 {
		return &InvalidError{Field: "progress", Problem: fmt.Sprintf("is %d, want 0 to 100", r.Progress)}
	}
	if r.Dropped < 0 {
		return &InvalidError{Field: "dropped", Problem: fmt.Sprintf("is %d, want 0 or more", r.Dropped)}
	}
	switch r.Result {
	case "", ResultInstalled, ResultSuccess, ResultFailed, ResultFailure, ResultRefused:
	default:
		return &InvalidError{Field: "result", Problem: fmt.Sprintf("is %q, want installed, failed or refused (or success, failure)", r.Result)}
	}
	if len(r.Codes) > maxCodes {
		return &InvalidError{Field: "codes", Problem: fmt.Sprintf("has %d items, the limit is %d", len(r.Codes), maxCodes)}
	}
	for i, c := range r.Codes {
		if err := checkString(fmt.Sprintf("codes[%d]", i), c, maxShortLen); err != nil {
			return err
		}
		if c == "" {
			return &InvalidError{Field: fmt.Sprintf("codes[%d]", i), Problem: "is empty"}
		}
	}
	if len(r.Message) > maxMessageLen {
		return &InvalidError{Field: "message", Problem: fmt.Sprintf("is %d bytes long, the limit is %d", len(r.Message), maxMessageLen)}
	}
	return nil
}

// checkString bounds an identifier-like field and refuses control
// characters (they would garble the status table and terminals).
func checkString(field, v string, max int) error {
	if len(v) > max {
		return &InvalidError{Field: field, Problem: fmt.Sprintf("is %d bytes long, the limit is %d", len(v), max)}
	}
	for _, c := range v {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return &InvalidError{Field: field, Problem: fmt.Sprintf("holds the control or invalid character %U", c)}
		}
	}
	return nil
}
