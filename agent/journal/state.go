package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fwagent/fwagent/internal/redact"
)

// Version is the journal.json format this package writes.
const Version = 1

// Step is a stable name of a step of the update cycle. Step names are stored
// in journal.json and read back by future agents: never rename one.
type Step string

// The steps of the update cycle, in their usual order.
const (
	StepIdle          Step = "idle"
	StepIdentify      Step = "identify"
	StepFetchManifest Step = "fetch_manifest"
	StepDecide        Step = "decide"
	StepDownload      Step = "download"
	StepVerify        Step = "verify"
	StepWaitWindow    Step = "wait_window"
	StepInstall       Step = "install"
	StepReboot        Step = "reboot"
	StepConfirm       Step = "confirm"
	StepDone          Step = "done"
)

// Steps lists every known step in cycle order.
var Steps = []Step{StepIdle, StepIdentify, StepFetchManifest, StepDecide, StepDownload, StepVerify,
	StepWaitWindow, StepInstall, StepReboot, StepConfirm, StepDone}

// Known reports whether s is one of the steps this agent knows.
func (s Step) Known() bool {
	for _, k := range Steps {
		if s == k {
			return true
		}
	}
	return false
}

// DefaultMaxStepEntries is the suggested cap on how often one step of one
// update may be entered (as Mender does): beyond it the agent fails the
// update instead of looping through crashes.
const DefaultMaxStepEntries = 30

// Error classes recorded with a failure.
const (
	ClassTransient = "transient" // retry later with backoff
	ClassFatal     = "fatal"     // stop, report, count an attempt / quarantine
)

// Outcomes of a finished update attempt.
const (
	OutcomeSuccess = "success" // installed and confirmed
	// OutcomeDegraded: installed and confirmed, but the recorder's channels
	// or disks did not return to what they were before the upload.
	OutcomeDegraded = "degraded"
	OutcomeFailure  = "failure" // an attempt failed
	OutcomeRefused  = "refused" // refused by policy; nothing was installed
	OutcomeNothing  = "nothing" // nothing to do
)

// State is everything journal.json records.
type State struct {
	Version int `json:"version"`
	// Current is the update in progress, nil when idle.
	Current *Update `json:"current,omitempty"`
	// LastSerial and LastDigest identify the last accepted manifest
	// (rollback protection).
	LastSerial int64  `json:"last_serial"`
	LastDigest string `json:"last_digest,omitempty"`
	// ManifestETag and ManifestLastModified make the next fetch conditional.
	ManifestETag         string `json:"manifest_etag,omitempty"`
	ManifestLastModified string `json:"manifest_last_modified,omitempty"`
	// Quarantine holds releases not to try again until a manifest with a
	// serial above Quarantine[id].Serial arrives.
	Quarantine map[string]Quarantine `json:"quarantine,omitempty"`
	// Attempts counts failed attempts per release id since its last success
	// or quarantine; the agent maintains it.
	Attempts map[string]int `json:"attempts,omitempty"`
	// RefusalsReported maps a release id to the manifest serial for which
	// its refusal was already reported, so a refusal is reported once per
	// serial, not on every poll.
	RefusalsReported map[string]int64 `json:"refusals_reported,omitempty"`
	// LastResult is the last finished attempt.
	LastResult *Result `json:"last_result,omitempty"`
	// LastCycle is how the last update cycle ended, also one that failed
	// before any update started (refused credentials at identify, an
	// unreachable recorder or manifest server): fwagent status shows it.
	LastCycle *Cycle `json:"last_cycle,omitempty"`
}

// Cycle is the outcome of one update cycle of the agent, as the agent
// summarised it (agent.Outcome): its result word, reason codes and message.
type Cycle struct {
	Result   string    `json:"result"`
	Codes    []string  `json:"codes,omitempty"`
	Message  string    `json:"message,omitempty"`
	Release  string    `json:"release,omitempty"`
	Step     string    `json:"step,omitempty"` // the journal step an update ended in
	Finished time.Time `json:"finished"`
}

// Update is the update in progress.
type Update struct {
	AttemptID string `json:"attempt_id"`
	ReleaseID string `json:"release_id,omitempty"`
	Version   string `json:"version,omitempty"`
	Variant   string `json:"variant,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Size      int64  `json:"size,omitempty"`
	ImagePath string `json:"image_path,omitempty"`
	Step      Step   `json:"step"`
	Attempts  int    `json:"attempts,omitempty"` // this attempt's number for the release, from 1
	// StepEntries counts how often each step was entered in this attempt.
	StepEntries map[Step]int `json:"step_entries,omitempty"`
	Bytes       int64        `json:"bytes,omitempty"`    // bytes downloaded so far
	Verified    bool         `json:"verified,omitempty"` // the staged image passed every check
	Started     time.Time    `json:"started"`
	Updated     time.Time    `json:"updated"`
	LastError   string       `json:"last_error,omitempty"`
	ErrorClass  string       `json:"error_class,omitempty"`
	Codes       []string     `json:"codes,omitempty"`
	// Serial is the manifest serial the release came from.
	Serial int64 `json:"serial,omitempty"`
	// Release is the signed release as the manifest gave it (manifest.Release
	// as JSON), so a restarted agent can finish or check the update without
	// the manifest.
	Release json.RawMessage `json:"release,omitempty"`
	// Before is the device identity (model, firmware) read before the
	// install, for the post-install check.
	Before json.RawMessage `json:"before,omitempty"`
	// Health is what the checks before the upload found: the recorder's
	// health baseline (online channels, disks) and the configuration
	// backup, as the agent wrote it; the confirm step compares against it.
	Health json.RawMessage `json:"health,omitempty"`
	// Flashing is set when the device first reported writing this
	// attempt's image: a restarted agent then knows the image reached it.
	Flashing bool `json:"flashing,omitempty"`
}

// Quarantine records why a release is not tried again.
type Quarantine struct {
	Serial int64     `json:"serial"` // quarantined until a manifest serial above this
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Result is one finished attempt, as kept in history.jsonl and LastResult.
type Result struct {
	AttemptID  string    `json:"attempt_id"`
	ReleaseID  string    `json:"release_id,omitempty"`
	Version    string    `json:"version,omitempty"`
	Outcome    string    `json:"outcome"`        // OutcomeSuccess, OutcomeFailure, ...
	Step       Step      `json:"step,omitempty"` // the step it ended in
	Codes      []string  `json:"codes,omitempty"`
	Message    string    `json:"message,omitempty"`
	ErrorClass string    `json:"error_class,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished"`
}

// scrub removes credentials and the user information of URLs from the free
// text the journal stores (redact.Record): error messages, quarantine
// reasons, results and the release record, whose image URLs may carry a
// mirror's user name and password. The record is only read back for the
// target (version, digest, size), never to download.
func (s *State) scrub() {
	if u := s.Current; u != nil {
		u.LastError = redact.Record(u.LastError)
		u.Release = scrubJSON(u.Release)
	}
	for id, q := range s.Quarantine {
		q.Reason = redact.Record(q.Reason)
		s.Quarantine[id] = q
	}
	if s.LastResult != nil {
		s.LastResult.scrub()
	}
	if s.LastCycle != nil {
		s.LastCycle.Message = redact.Record(s.LastCycle.Message)
	}
}

// scrub applies redact.Record to the result's message.
func (r *Result) scrub() { r.Message = redact.Record(r.Message) }

// scrubJSON applies redact.Record to every string of a JSON document; a
// document that needs no change, or does not decode, comes back as it is.
func scrubJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	changed := false
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			r := redact.Record(v)
			changed = changed || r != v
			return r
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
		}
		return v
	}
	v = walk(v)
	if !changed {
		return raw
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return raw
	}
	return json.RawMessage(bytes.TrimRight(b.Bytes(), "\n"))
}

// Quarantined reports whether release id is quarantined for a manifest with
// the given serial.
func (s *State) Quarantined(id string, serial int64) bool {
	q, ok := s.Quarantine[id]
	return ok && serial <= q.Serial
}

// RefusalReported reports whether the refusal of release id was already
// reported for this manifest serial.
func (s *State) RefusalReported(id string, serial int64) bool {
	v, ok := s.RefusalsReported[id]
	return ok && v >= serial
}

// clone returns a deep copy.
func (s State) clone() State {
	c := s
	if s.Current != nil {
		u := *s.Current
		u.StepEntries = cloneMap(s.Current.StepEntries)
		u.Codes = append([]string(nil), s.Current.Codes...)
		u.Release = append(json.RawMessage(nil), s.Current.Release...)
		u.Before = append(json.RawMessage(nil), s.Current.Before...)
		c.Current = &u
	}
	c.Quarantine = cloneMap(s.Quarantine)
	c.Attempts = cloneMap(s.Attempts)
	c.RefusalsReported = cloneMap(s.RefusalsReported)
	if s.LastResult != nil {
		r := *s.LastResult
		r.Codes = append([]string(nil), s.LastResult.Codes...)
		c.LastResult = &r
	}
	if s.LastCycle != nil {
		r := *s.LastCycle
		r.Codes = append([]string(nil), s.LastCycle.Codes...)
		c.LastCycle = &r
	}
	return c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ParseState decodes and checks journal.json content.
func ParseState(data []byte) (State, error) {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, err
	}
	switch {
	case s.Version == 0:
		return State{}, fmt.Errorf("no version field")
	case s.Version > Version:
		return State{}, fmt.Errorf("written by a newer agent (format %d, this agent reads %d)", s.Version, Version)
	case s.Version < 0:
		return State{}, fmt.Errorf("bad version %d", s.Version)
	case s.LastSerial < 0:
		return State{}, fmt.Errorf("negative last_serial %d", s.LastSerial)
	}
	if u := s.Current; u != nil {
		if !u.Step.Known() {
			return State{}, fmt.Errorf("unknown step %q", u.Step)
		}
		if u.AttemptID == "" {
			return State{}, fmt.Errorf("current update without attempt_id")
		}
		if u.Size < 0 || u.Bytes < 0 || u.Attempts < 0 {
			return State{}, fmt.Errorf("negative size, bytes or attempts")
		}
		for step, n := range u.StepEntries {
			if n < 0 {
				return State{}, fmt.Errorf("negative entry count for step %q", step)
			}
		}
	}
	return s, nil
}
