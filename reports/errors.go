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
