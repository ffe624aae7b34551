package agent

import "github.com/fwagent/fwagent/agent/journal"

// SetBeforeStep sets the crash seam of a: f is called after a step is
// recorded in the journal and before it runs; a non-nil error stops the
// cycle there as a crash would. Tests only.
func SetBeforeStep(a *Agent, f func(step journal.Step) error) { a.beforeStep = f }

// SetMaxStepEntries lowers a's crash-loop cap. Tests only.
func SetMaxStepEntries(a *Agent, n int) { a.maxEntries = n }
