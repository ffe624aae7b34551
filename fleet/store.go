package fleet

import (
	"context"
	"time"

	"github.com/fwagent/fwagent/manifest"
)

// Store keeps the fleet. Two implementations run the same test suite:
// fleet/postgres (PostgreSQL through pgx, for several servers) and
// fleet/sqlite (embedded, one host). Writes go through Update, one
// transaction; in it DevicesForUpdate locks the rows it returns, so
// several servers on one database decide on the same data.
type Store interface {
	// Update runs fn in one read-write transaction: all of fn's writes
	// land, or none. fn may run more than once (PostgreSQL runs a
	// transaction that met a lost connection, certainly uncommitted, once
	// more): what it decides must come from the transaction, and what it
	// hands back it must set afresh at each call.
	Update(ctx context.Context, fn func(Tx) error) error

	// Device returns one device (ErrNotFound).
	Device(ctx context.Context, serial string) (Device, error)
	// Devices lists devices matching f, by serial.
	Devices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// StateCounts counts devices by state at now.
	StateCounts(ctx context.Context, now time.Time) (map[State]int, error)
	// Reports returns the accepted reports on a release, in receive order.
	Reports(ctx context.Context, releaseID string) ([]ReportRecord, error)
	// Events returns a device's history (serial "" for every device),
	// newest first, at most limit.
	Events(ctx context.Context, serial string, limit int) ([]Event, error)
	// Releases lists the releases the server knows (paused or with a
	// rollout), by id.
	Releases(ctx context.Context) ([]Release, error)
	// ReportedReleases lists the ids of the releases that accepted reports
	// name, by id.
	ReportedReleases(ctx context.Context) ([]string, error)
	// Pauses returns the pause log of a release ("" for all), newest first.
	Pauses(ctx context.Context, releaseID string, limit int) ([]PauseEvent, error)
	// Held returns the paused releases.
	Held(ctx context.Context) ([]Release, error)
	// Counters returns the counters (refused forgeries, replays, ...).
	Counters(ctx context.Context) (map[string]int64, error)
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Tx is one read-write transaction of a Store.
type Tx interface {
	// DevicesForUpdate returns the devices with these serials that exist,
	// locked until the transaction ends. A serial without a device is
	// locked too: another transaction reading it waits, and then sees the
	// device this one created, so two cannot both create it.
	DevicesForUpdate(ctx context.Context, serials []string) (map[string]*Device, error)
	// PutDevices inserts or replaces devices.
	PutDevices(ctx context.Context, ds []*Device) error
	// AddReports stores accepted reports.
	AddReports(ctx context.Context, rs []ReportRecord) error
	// ImportReports stores reports imported from an old reports file,
	// under the key id ImportKeyID whatever their KeyID, each report id
	// once: a report whose id an import stored already (an import run
	// twice, or sent again after an answer was lost, on this server or
	// another on the same database) is skipped. It returns how many it
	// stored.
	ImportReports(ctx context.Context, rs []ReportRecord) (stored int, err error)
	// AddEvents appends to devices' histories.
	AddEvents(ctx context.Context, es []Event) error
	// AddCounters adds to named counters.
	AddCounters(ctx context.Context, delta map[string]int64) error
	// ReleaseForUpdate returns a release, locked (ErrNotFound).
	ReleaseForUpdate(ctx context.Context, id string) (Release, error)
	// PutRelease inserts or replaces a release.
	PutRelease(ctx context.Context, r Release) error
	// AddPause appends to the pause log.
	AddPause(ctx context.Context, p PauseEvent) error
}

// DeviceFilter selects devices; empty fields match all.
type DeviceFilter struct {
	State     State
	Model     string
	ReleaseID string // the release a device works on or last finished
	Serial    string
	Now       time.Time // for the stale state
	Limit     int       // 0: no limit
}

// ImportKeyID is the key id of the reports imported from an old reports
// file (never signed).
const ImportKeyID = "import"

// ReportRecord is an accepted report as the store keeps it.
type ReportRecord struct {
	Received time.Time
	Report   Report
	KeyID    string // the key that signed it
	// Body is Report's JSON (json.Marshal), as the store keeps it, when
	// the caller encoded it already (the server does, to refuse alone a
	// report that does not encode): AddReports stores it as it is, and
	// encodes Report when it is nil. Reports leaves it nil.
	Body []byte
}

// Event is one line of a device's history.
type Event struct {
	At     time.Time
	Serial string
	Kind   string // EventEnrolled, ...
	Detail string
}

// Event kinds.
const (
	EventPending   = "enrolment_pending"
	EventEnrolled  = "enrolled"
	EventApproved  = "approved"
	EventForged    = "forgery_refused"
	EventReplay    = "replay_ignored"
	EventReport    = "report"
	EventImported  = "imported"
	EventState     = "state"
	EventForgotten = "key_forgotten"
)

// Counter names.
const (
	CounterForged       = "forged_refused"     // a known serial under another key
	CounterReplayed     = "replayed_ignored"   // sequence not above the last
	CounterBadSignature = "bad_signature"      // did not verify
	CounterPending      = "pending_refused"    // reports from a key not approved yet
	CounterMalformed    = "malformed_refused"  // bad JSON, envelope (payload not base64) or fields
	CounterCheckIns     = "checkins_accepted"  // accepted check-ins
	CounterReports      = "reports_accepted"   // accepted reports
	CounterAutoPauses   = "auto_pauses"        // releases the server paused on its own
	CounterDBErrors     = "store_unavailable"  // never stored: counted in memory only
	CounterOversized    = "oversized_refused"  // body above the limit
	CounterWrongType    = "wrong_type_refused" // a check-in posted as a report or back
	CounterBusy         = "busy_refused"       // 503: the check-in queue was full
	CounterRateLimited  = "rate_limited"       // 429: a source address over its read or write limit
	CounterAuthLimited  = "auth_limited"       // 429: a wrong admin or viewer token from a source address over its allowance
)

// Release is a release the server knows: its rollout (from the manifest,
// for counting devices by stage) and whether it is paused.
type Release struct {
	ID      string
	Rollout *manifest.Rollout // nil: counts without stages
	Paused  bool
	// PausedAt, PausedBy and PauseCause describe the pause in force.
	PausedAt   time.Time
	PausedBy   string
	PauseCause string
}

// PauseEvent is one line of the pause log: who or what paused or resumed
// a release, and why.
type PauseEvent struct {
	At        time.Time
	ReleaseID string
	Paused    bool   // true: paused; false: resumed
	Actor     string // "admin" or "auto-pause"
	Cause     string
}
