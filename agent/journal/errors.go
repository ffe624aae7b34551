package journal

import "errors"

// Sentinel errors of the journal; match with errors.Is.
var (
	// ErrLocked means another process holds the state directory's lock.
	ErrLocked = errors.New("state directory is in use by another fwagent")
	// ErrCorrupt means journal.json or history.jsonl cannot be read back.
	ErrCorrupt = errors.New("journal file is corrupt")
	// ErrClosed means the journal was used after Close.
	ErrClosed = errors.New("journal is closed")
	// ErrNoUpdate means an operation needs a current update and there is none.
	ErrNoUpdate = errors.New("no update in progress")
)
