// Package journal owns the agent's crash-safe record in the state directory:
// journal.json (the update in progress, written atomically before each step
// runs, the accepted manifest serial and digest, quarantined releases,
// reported refusals and the last result), history.jsonl (the last finished
// attempts, bounded) and the lock file that keeps a second agent away.
//
// It must not decide anything: which step comes next, when to retry and when
// to quarantine belong to the agent. It never resets a file it cannot read.
// It never stores a credential or the user information of a URL: free text
// and the release record pass through redact.Record before they are written.
package journal

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fwagent/fwagent/internal/statefile"
	"github.com/sirupsen/logrus"
)

// File names inside the state directory.
const (
	lockFile    = "lock"
	stateFile   = "journal.json"
	historyFile = "history.jsonl"
)

// DefaultHistoryMax is how many finished attempts history.jsonl keeps.
const DefaultHistoryMax = 200

// Journal is the open journal of one state directory. Its methods are safe
// for concurrent use. Set the exported fields right after Open, before use.
type Journal struct {
	// Now is the clock used for timestamps.
	Now func() time.Time
	// Logger receives warnings (e.g. a corrupt history set aside).
	Logger logrus.FieldLogger
	// HistoryMax bounds history.jsonl (default DefaultHistoryMax).
	HistoryMax int

	dir       string
	mu        sync.Mutex
	lock      *os.File
	state     State
	writeFile func(path string, data []byte, perm os.FileMode) error // statefile.Write; a test seam
}

// Open opens the journal in dir, creating dir (mode 0700) if needed, and
// takes the directory's lock: a second Open of the same directory, in this
// or another process, fails with ErrLocked until Close. A journal.json that
// cannot be read is an ErrCorrupt error, never silently replaced.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	discard := logrus.New()
	discard.Out = io.Discard
	j := &Journal{
		Now:        time.Now,
		Logger:     discard,
		HistoryMax: DefaultHistoryMax,
		dir:        dir,
		lock:       lock,
		state:      State{Version: Version},
		writeFile:  statefile.Write,
	}
	j.removeStaleTemps()
	path := filepath.Join(dir, stateFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case err != nil:
		unlockDir(lock)
		return nil, fmt.Errorf("read journal: %w", err)
	}
	st, err := ParseState(data)
	if err != nil {
		unlockDir(lock)
		return nil, fmt.Errorf("%w: %s: %v: move it aside (mv %s %s.bad) and start again; the agent then starts from an empty journal and verifies everything again", ErrCorrupt, path, err, path, path)
	}
	j.state = st
	return j, nil
}

// removeStaleTemps deletes temporary files a crash left behind.
func (j *Journal) removeStaleTemps() {
	for _, base := range []string{stateFile, historyFile} {
		matches, _ := filepath.Glob(filepath.Join(j.dir, "."+base+"*"))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
}

// Close releases the lock. The journal is unusable afterwards.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lock == nil {
		return nil
	}
	err := unlockDir(j.lock)
	j.lock = nil
	return err
}

// State returns a copy of the current state.
func (j *Journal) State() State {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.clone()
}

// Update applies fn to a copy of the state and writes the result to
// journal.json atomically (fsynced) before returning. If fn or the write
// fails, the state, in memory and on disk, is unchanged.
func (j *Journal) Update(fn func(*State) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.update(fn)
}

func (j *Journal) update(fn func(*State) error) error {
	if j.lock == nil {
		return ErrClosed
	}
	next := j.state.clone()
	if err := fn(&next); err != nil {
		return err
	}
	next.Version = Version
	next.scrub()
	if next.Current != nil {
		next.Current.Updated = j.Now().UTC()
	}
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	if err := j.writeFile(filepath.Join(j.dir, stateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write journal: %w: check the state directory's disk space and permissions", err)
	}
	j.state = next
	return nil
}

// EnterStep records that step is about to run, before it runs, and returns
// how often the current update has entered it, this time included. The
// caller caps the count (DefaultMaxStepEntries) to end crash loops. With no
// update in progress, EnterStep starts one with a new attempt id.
func (j *Journal) EnterStep(step Step) (int, error) {
	if !step.Known() {
		return 0, fmt.Errorf("enter step %q: not a known step", step)
	}
	var n int
	err := j.Update(func(s *State) error {
		if s.Current == nil {
			s.Current = &Update{AttemptID: NewAttemptID(), Started: j.Now().UTC()}
		}
		u := s.Current
		if u.StepEntries == nil {
			u.StepEntries = map[Step]int{}
		}
		u.StepEntries[step]++
		u.Step = step
		n = u.StepEntries[step]
		return nil
	})
	return n, err
}

// Finish records the end of the current attempt: r is appended to
// history.jsonl (the last HistoryMax entries are kept), becomes LastResult,
// and the current update is cleared. Fields of r left empty are taken from
// the current update. Finishing twice after a crash records r once.
func (j *Journal) Finish(r Result) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lock == nil {
		return ErrClosed
	}
	if u := j.state.Current; u != nil {
		fill(&r.AttemptID, u.AttemptID)
		fill(&r.ReleaseID, u.ReleaseID)
		fill(&r.Version, u.Version)
		fill(&r.ErrorClass, u.ErrorClass)
		if r.Step == "" {
			r.Step = u.Step
		}
		if r.Started.IsZero() {
			r.Started = u.Started
		}
		if r.Attempts == 0 {
			r.Attempts = u.Attempts
		}
		if r.Codes == nil && len(u.Codes) > 0 {
			r.Codes = append([]string(nil), u.Codes...)
		}
	}
	if r.Finished.IsZero() {
		r.Finished = j.Now().UTC()
	}
	if r.Outcome == "" {
		return fmt.Errorf("finish: the result has no outcome")
	}
	r.scrub()
	// History first: a crash before the journal is cleared makes the agent
	// finish again, and the repeated entry is recognised below.
	if err := j.appendHistory(r); err != nil {
		return err
	}
	return j.update(func(s *State) error {
		res := r
		s.LastResult = &res
		s.Current = nil
		return nil
	})
}

// RecordCycle keeps r as LastCycle, written like every other state change
// (atomically, fsynced; its message redacted of credentials). The update in
// progress, if any, is left as it is.
func (j *Journal) RecordCycle(r Cycle) error {
	if r.Finished.IsZero() {
		r.Finished = j.Now().UTC()
	}
	r.Codes = append([]string(nil), r.Codes...)
	return j.Update(func(s *State) error {
		s.LastCycle = &r
		return nil
	})
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// appendHistory rewrites history.jsonl with r appended, bounded.
func (j *Journal) appendHistory(r Result) error {
	path := filepath.Join(j.dir, historyFile)
	entries, err := readHistory(path)
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, j.Now().UnixNano())
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("history: %v; moving it aside failed: %w", err, rerr)
		}
		j.Logger.WithField("file", aside).Warnf("history was unreadable (%v): kept it as %s and started a new one", err, aside)
		entries = nil
	}
	if n := len(entries); n > 0 && entries[n-1].AttemptID == r.AttemptID && entries[n-1].Outcome == r.Outcome {
		return nil
	}
	entries = append(entries, r)
	max := j.HistoryMax
	if max <= 0 {
		max = DefaultHistoryMax
	}
	if len(entries) > max {
		entries = entries[len(entries)-max:]
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("encode history: %w", err)
		}
	}
	if err := j.writeFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write history: %w: check the state directory's disk space and permissions", err)
	}
	return nil
}

// History returns the last n finished attempts, oldest first (all when
// n <= 0).
func (j *Journal) History(n int) ([]Result, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	entries, err := readHistory(filepath.Join(j.dir, historyFile))
	if err != nil {
		return nil, err
	}
	if n > 0 && len(entries) > n {
		entries = entries[len(entries)-n:]
	}
	return entries, nil
}

// ReadState reads a journal.json file without taking the lock (for status
// commands run beside the daemon).
func ReadState(path string) (State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return State{}, err
	}
	st, err := ParseState(data)
	if err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return st, nil
}

func readHistory(path string) ([]Result, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(text), &r); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v: move the file aside to keep it", ErrCorrupt, path, line, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return out, nil
}

// NewAttemptID returns a fresh random attempt id (16 hex characters).
func NewAttemptID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
