package reports

import (
	"errors"
	"fmt"
)

// Sentinel errors of package reports; match with errors.Is.
var (
	// ErrInvalid is wrapped by every *InvalidError: a report that does not
	// follow the schema.
	ErrInvalid = errors.New("invalid report")
	// ErrNoToken means a Server was built without a bearer token.
	ErrNoToken = errors.New("no bearer token configured")
	// ErrLocked means another server already appends to the same file.
	ErrLocked = errors.New("the reports file is in use by another reports server")
	// ErrStopped means the server can no longer write (closed, or a write
	// or fsync failed); it answers 503 until restarted.
	ErrStopped = errors.New("the reports server cannot write reports")
	// ErrNoRollout means a statistic needs stages the release does not have.
	ErrNoRollout = errors.New("the release has no rollout")
	// ErrAdvanceRefused means the current stage's reports do not allow
	// opening the next stage.
	ErrAdvanceRefused = errors.New("advance refused")
)

// InvalidError says which field of a report is wrong and why.
type InvalidError struct {
	Field   string // JSON field name; empty for the body as a whole
	Problem string // what is wrong, and what to do
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return "invalid report: " + e.Problem
	}
	return fmt.Sprintf("invalid report: field %q %s", e.Field, e.Problem)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }
