package fleet

import (
	"fmt"
	"time"

	"github.com/fwagent/fwagent/reason"
)

// State is where a device stands, as `fwctl fleet devices` and the web page
// show it.
type State string

// Device states.
const (
	StateUpToDate         State = "up_to_date"        // idle, last attempt (if any) installed or refused
	StateUpdating         State = "updating"          // a step of an update is under way
	StateFailed           State = "failed"            // the last attempt failed
	StatePendingImage     State = "pending_image"     // the recorder holds an image it waits to reboot into (code pending_image)
	StateStale            State = "stale"             // no check-in for 3 intervals
	StateNeverSeen        State = "never_seen"        // approved (or imported) but never checked in
	StatePendingEnrolment State = "pending_enrolment" // its key waits for `fwctl fleet approve`
)

// States lists every state, in the order pages and tables show them.
var States = []State{StateUpdating, StateFailed, StatePendingImage, StateStale, StateUpToDate, StateNeverSeen, StatePendingEnrolment}

// ParseState checks a state name.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown device state %q: use one of up_to_date, updating, failed, pending_image, stale, never_seen, pending_enrolment", s)
}

// Enrolment of a device's key.
const (
	EnrolRegistered = "registered" // approved by serial, no key yet: the first key wins
)

// DefaultCheckInInterval is assumed for a device that did not say its
// interval.
const DefaultCheckInInterval = time.Hour

// StaleIntervals is how many check-in intervals without a check-in make a
// device stale.
const StaleIntervals = 3

// Device is what the server knows of one recorder.
type Device struct {
	Serial    string
	Enrolment string // EnrolRegistered, EnrolPending or EnrolAccepted
	PubKey    []byte // nil while registered
	KeyID     string

	Model, Firmware, DeviceName, Site string
	Step, ReleaseID                   string
	Progress                          int
	LastResult, LastCode              string
	LastReleaseID                     string
	QueueDepth                        int
	AgentVersion                      string
	ManifestSerial                    uint64
	Groups                            []string
	IntervalSeconds                   int64

	CheckInSeq uint64 // highest check-in sequence accepted
	ReportSeq  uint64 // highest report sequence accepted

	FirstSeen, LastSeen time.Time // zero: never checked in
	// StaleAfter is when the device becomes stale without a check-in.
	StaleAfter time.Time
	// Stored is the state as of the last check-in (never stale): State
	// derives the state at a given time.
	Stored State
}

// StateAt is the device's state at now.
func (d *Device) StateAt(now time.Time) State {
	if d.Stored == StateUpToDate || d.Stored == StateUpdating || d.Stored == StateFailed || d.Stored == StatePendingImage {
		if !d.StaleAfter.IsZero() && now.After(d.StaleAfter) {
			return StateStale
		}
	}
	return d.Stored
}

// Apply records a verified check-in received at now.
func (d *Device) Apply(c CheckIn, now time.Time) {
	d.Model, d.Firmware, d.DeviceName, d.Site = c.Model, c.Firmware, c.DeviceName, c.Site
	d.Step, d.ReleaseID, d.Progress = c.Step, c.ReleaseID, c.Progress
	d.LastResult, d.LastCode, d.LastReleaseID = c.LastResult, c.LastCode, c.LastReleaseID
	d.QueueDepth, d.AgentVersion, d.ManifestSerial = c.QueueDepth, c.AgentVersion, c.ManifestSerial
	d.Groups, d.IntervalSeconds = c.Groups, c.IntervalSeconds
	if c.Seq > d.CheckInSeq {
		d.CheckInSeq = c.Seq
	}
	if d.FirstSeen.IsZero() {
		d.FirstSeen = now
	}
	d.LastSeen = now
	iv := time.Duration(c.IntervalSeconds) * time.Second
	if iv <= 0 {
		iv = DefaultCheckInInterval
	}
	d.StaleAfter = now.Add(StaleIntervals * iv)
	d.Stored = d.storedState()
}

// CodePendingImage is the reason code of an attempt that found the recorder
// holding a flashed image it did not send, waiting for a reboot: a device
// whose last attempt failed with it is in state pending_image (it needs a
// person, not another attempt).
const CodePendingImage = string(reason.PendingImage)

// storedState derives the state from the latest check-in.
func (d *Device) storedState() State {
	switch {
	case d.Enrolment == EnrolPending:
		return StatePendingEnrolment
	case d.LastSeen.IsZero():
		return StateNeverSeen
	case d.Step == StepPendingImage,
		d.LastResult == ResultFailed && d.LastCode == CodePendingImage && (d.Step == "" || d.Step == "idle"):
		return StatePendingImage
	case d.Step != "" && d.Step != "idle":
		return StateUpdating
	case d.LastResult == ResultFailed:
		return StateFailed
	}
	return StateUpToDate
}

// Refresh recomputes Stored after an enrolment change.
func (d *Device) Refresh() { d.Stored = d.storedState() }
