package audit

import (
	"errors"
	"fmt"
)

// Sentinels that classify a broken audit trail; every *Error wraps one.
var (
	// ErrEdited: an entry's content no longer matches its own hash.
	ErrEdited = errors.New("entry edited")
	// ErrChain: an entry's prev does not match the entry before it (an entry
	// was removed, inserted, reordered or rewritten with a new hash).
	ErrChain = errors.New("hash chain broken")
	// ErrSequence: sequence numbers are not consecutive from 1.
	ErrSequence = errors.New("sequence broken")
	// ErrMalformed: a line is not a valid audit entry.
	ErrMalformed = errors.New("entry malformed")
	// ErrIncomplete: the last line has no newline, as after a crash during a write.
	ErrIncomplete = errors.New("last entry incomplete (crash during write?)")
	// ErrTruncated: the file holds fewer entries than the head file recorded.
	ErrTruncated = errors.New("audit trail truncated")
)

// Error names the first broken entry of an audit trail.
type Error struct {
	Line   int    // 1-based line number in audit.jsonl (0: not about one line)
	Seq    uint64 // the entry's sequence number when it could be read
	Err    error  // one of the sentinels above
	Detail string // what exactly does not match
}

func (e *Error) Error() string {
	where := ""
	switch {
	case e.Line > 0 && e.Seq > 0:
		where = fmt.Sprintf("entry %d (line %d): ", e.Seq, e.Line)
	case e.Line > 0:
		where = fmt.Sprintf("line %d: ", e.Line)
	}
	msg := where + e.Err.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }
