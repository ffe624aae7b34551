package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
)

// Record is one line of a reports file: the report as the agent sent it
// and when the server received it (server clock, UTC).
type Record struct {
	Received time.Time     `json:"received"`
	Report   report.Report `json:"report"`
}

// Result values a report may carry. The agent sends "installed", "failed"
// and "refused" (the fleet protocol's words); "success" and "failure" are
// accepted as synonyms.
const (
	ResultInstalled = fleet.ResultInstalled
	ResultSuccess   = "success"
	ResultFailed    = fleet.ResultFailed
	ResultFailure   = "failure"
	ResultRefused   = fleet.ResultRefused
)

// maxMessageLen bounds a report's message in a reports file, in bytes: the
// old report server took messages up to 8 KiB (the fleet protocol takes
// fleet.MaxMessageLen), so the files it wrote may hold them.
const maxMessageLen = 8192

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

// validate checks a report of a reports file: the rules of every report
// (fleet.CheckReportFields), and the file's own, which differ from the
// fleet protocol's: no sequence number (the reports were never signed),
// device_serial required only in a report about a release, the result
// synonyms, and a message checked for its length alone, up to
// maxMessageLen.
func validate(r *report.Report) error {
	if err := fleet.CheckReportFields(r); err != nil {
		var fe *fleet.InvalidError
		if errors.As(err, &fe) {
			return &InvalidError{Field: fe.Field, Problem: fe.Problem}
		}
		return err
	}
	if r.DeviceSerial == "" && r.ReleaseID != "" {
		return &InvalidError{Field: "device_serial", Problem: "is missing: a report about a release must name the device"}
	}
	switch r.Result {
	case "", ResultInstalled, ResultSuccess, ResultFailed, ResultFailure, ResultRefused:
	default:
		return &InvalidError{Field: "result", Problem: fmt.Sprintf("is %q, want installed, failed or refused (or success, failure)", r.Result)}
	}
	if len(r.Message) > maxMessageLen {
		return &InvalidError{Field: "message", Problem: fmt.Sprintf("is %d bytes long, the limit is %d", len(r.Message), maxMessageLen)}
	}
	return nil
}
