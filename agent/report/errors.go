package report

import "errors"

// Sentinel errors of the report queue; match with errors.Is.
var (
	// ErrUndelivered means Flush stopped at a report the server did not
	// accept yet (unreachable, 5xx, 408, 429): it stays queued, in order.
	ErrUndelivered = errors.New("report not delivered")
)
