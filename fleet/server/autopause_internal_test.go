package server

import (
	"testing"
	"time"
)

// A release checked a moment ago waits for its spacing; another release
// does not wait for it.
func TestAutoPauseQueueSpacesChecksOfOneRelease(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	q := autoQueue{pending: map[string]bool{"r1": true}, notBefore: map[string]time.Time{"r1": now.Add(9 * time.Second)}}
	if id, wait := q.next(now); id != "" || wait != 9*time.Second {
		t.Fatalf("next = %q, %s; want nothing for 9s", id, wait)
	}
	if id, wait := q.next(now.Add(9 * time.Second)); id != "r1" || wait != 0 {
		t.Fatalf("after the spacing next = %q, %s; want r1 now", id, wait)
	}
	q.pending["r2"] = true
	if id, _ := q.next(now); id != "r2" {
		t.Fatalf("next = %q; want r2, never checked, at once", id)
	}
}
