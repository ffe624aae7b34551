// Package audit owns the agent's audit trail: an append-only file of JSON
// lines (audit.jsonl in the state directory), one per decision the agent
// takes, each carrying the SHA-256 of the line before it and of its own
// content, with the last line's hash also kept in audit.head.
//
// What Verify detects on the device alone: accidental damage (bit rot, a
// bad copy), naive edits of an entry, deleted, inserted or reordered
// entries, truncation (against audit.head) and a crash mid-write. What it
// cannot detect: someone with write access to the state directory who
// rewrites the whole chain, recomputing every hash and audit.head. The hashes
// carry no key; only a copy of the chain head kept off the device anchors
// the history. Log.Head exports that head so it can be sent away (the
// agent puts it into its reports); a trail whose entry at that seq no longer
// has that hash was rewritten.
//
// It must not decide anything: callers append what they decided. It never
// rewrites or deletes a complete entry, so it never stores a credential or
// the user information of a URL (see Log.Append).
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/internal/statefile"
)

// File names in the state directory.
const (
	FileName       = "audit.jsonl"      // the trail
	HeadFileName   = "audit.head"       // seq and line hash of the last entry, to detect truncation
	IncompleteName = "audit.incomplete" // partial lines cut off by Open after a crash
)

// Genesis is the prev of the first entry.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxMessage caps an entry's message, in bytes.
const MaxMessage = 4096

// maxLine caps one line when reading the trail.
const maxLine = 64 * 1024

// Event names what the agent decided. The names are stable.
type Event string

// Events the agent records.
const (
	EventRefused          Event = "refused"           // a release refused by policy (codes say why)
	EventDownloadVerified Event = "download_verified" // image downloaded, size, digest and format proven
	EventInstallStarted   Event = "install_started"   // upload to the device begins
	EventConfigBackup     Event = "config_backup"     // the recorder's configuration was backed up (its SHA-256)
	EventInstallDeferred  Event = "install_deferred"  // the checks before the upload made the install wait (codes say why)
	EventInstallConfirmed Event = "install_confirmed" // device reports the expected version
	EventFailed           Event = "failed"            // an attempt failed (codes say why)
	EventQuarantined      Event = "quarantined"       // a release will not be tried again
	EventManifestAccepted Event = "manifest_accepted" // a signed manifest was accepted
	EventTrailRepaired    Event = "trail_repaired"    // Open found a cut-off line or lost entries (written by Open)
)

// Entry is one line of the audit trail.
type Entry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Event   Event     `json:"event"`
	Release string    `json:"release,omitempty"`
	Attempt string    `json:"attempt,omitempty"`
	Codes   []string  `json:"codes,omitempty"`
	Message string    `json:"message,omitempty"`
	Prev    string    `json:"prev"`           // sha256 hex of the previous line's bytes; Genesis for the first
	Hash    string    `json:"hash,omitempty"` // sha256 hex of this line without its hash field
}

// head is the content of audit.head.
type head struct {
	Seq  uint64 `json:"seq"`
	Line string `json:"line_sha256"` // sha256 of the last line's bytes
}

// Log appends entries to the audit trail in a state directory. It is safe
// for concurrent use by one process.
type Log struct {
	// Now stamps entries whose Time is zero; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	dir      string
	f        *os.File
	seq      uint64
	prevLine string // sha256 hex of the last line
}

// Open opens (creating if needed) the audit trail in dir and reads its last
// entry to continue the chain. A partial last line, left by a crash during a
// write, was never acknowledged: Open moves it to audit.incomplete and
// continues after the last complete entry. A broken chain earlier in the file
// does not stop Open (decisions must still be recorded); Verify reports it.
func Open(dir string) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state directory for the audit trail: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit trail: %w", err)
	}
	l := &Log{dir: dir, f: f, prevLine: Genesis}
	cut, err := l.load()
	if err != nil {
		f.Close()
		return nil, err
	}
	var notes []string
	if cut > 0 {
		notes = append(notes, fmt.Sprintf("cut an incomplete last line of %d bytes (kept in %s)", cut, IncompleteName))
	}
	if h, err := readHead(dir); err != nil {
		notes = append(notes, err.Error())
	} else if h != nil && h.Seq > l.seq {
		notes = append(notes, fmt.Sprintf("%s recorded entry %d but the trail ended at entry %d: entries were lost", HeadFileName, h.Seq, l.seq))
	}
	if len(notes) > 0 {
		if err := l.Append(Entry{Event: EventTrailRepaired, Message: strings.Join(notes, "; ")}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// readHead reads audit.head; a missing file is (nil, nil).
func readHead(dir string) (*head, error) {
	hb, err := os.ReadFile(filepath.Join(dir, HeadFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", HeadFileName, err)
	}
	h := new(head)
	if err := json.Unmarshal(hb, h); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON", HeadFileName)
	}
	return h, nil
}

// load finds the last complete line, cutting off a partial one; it returns
// the number of bytes cut.
func (l *Log) load() (int, error) {
	data, err := io.ReadAll(io.NewSectionReader(l.f, 0, 1<<62))
	if err != nil {
		return 0, fmt.Errorf("read audit trail: %w", err)
	}
	complete, cut := data, 0
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		complete, cut = data[:i+1], len(data)-(i+1)
		if err := l.saveIncomplete(data[i+1:]); err != nil {
			return 0, err
		}
		if err := l.f.Truncate(int64(i + 1)); err != nil {
			return 0, fmt.Errorf("cut incomplete audit entry: %w", err)
		}
		if err := l.f.Sync(); err != nil {
			return 0, fmt.Errorf("sync audit trail: %w", err)
		}
	}
	if len(complete) == 0 {
		return cut, nil
	}
	lines := bytes.Split(bytes.TrimSuffix(complete, []byte("\n")), []byte("\n"))
	last := lines[len(lines)-1]
	l.prevLine = lineHash(last)
	if e, err := ParseEntry(last); err == nil {
		l.seq = e.Seq
	} else {
		l.seq = uint64(len(lines))
	}
	return cut, nil
}

func (l *Log) saveIncomplete(b []byte) error {
	f, err := os.OpenFile(filepath.Join(l.dir, IncompleteName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("keep incomplete audit entry: %w", err)
	}
	_, err = f.Write(append(append([]byte(nil), b...), '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keep incomplete audit entry: %w", err)
	}
	return nil
}

// Append stamps e with the next sequence number, the time (when zero), the
// previous line's hash and its own hash, writes it as one line and syncs the
// file before returning. Credentials and the user information of URLs are
// removed from every text field first (redact.Record); Message is capped at
// MaxMessage bytes.
func (l *Log) Append(e Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("audit trail is closed")
	}
	if e.Event == "" {
		return errors.New("audit entry without event: name what was decided")
	}
	if e.Time.IsZero() {
		now := time.Now
		if l.Now != nil {
			now = l.Now
		}
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	// The chain means an entry can never be scrubbed later: no credential
	// and no URL user information enters it, whatever the caller passed.
	e.Message = redact.Record(e.Message)
	e.Release = redact.Record(e.Release)
	e.Attempt = redact.Record(e.Attempt)
	if e.Codes != nil {
		codes := make([]string, len(e.Codes))
		for i, c := range e.Codes {
			codes[i] = redact.Record(c)
		}
		e.Codes = codes
	}
	if len(e.Message) > MaxMessage {
		e.Message = strings.ToValidUTF8(e.Message[:MaxMessage], "") + "..."
	}
	e.Seq = l.seq + 1
	e.Prev = l.prevLine
	line, err := encode(e)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync audit trail: %w", err)
	}
	l.seq = e.Seq
	l.prevLine = lineHash(line)
	hb, err := json.Marshal(head{Seq: l.seq, Line: l.prevLine})
	if err != nil {
		return err
	}
	if err := statefile.Write(filepath.Join(l.dir, HeadFileName), append(hb, '\n'), 0o640); err != nil {
		return fmt.Errorf("write audit head: %w", err)
	}
	return nil
}

// Head returns the chain head: the last entry's seq and the SHA-256 (hex) of
// its line as stored, the value audit.head records and the next entry's prev
// will carry; (0, Genesis) for an empty trail. Kept off the device (in the
// reports), it anchors the history: the on-device files alone cannot show a
// rewrite of the whole chain by someone with write access to the state
// directory, but such a rewrite changes the line hash of an anchored seq.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.prevLine
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// encode renders e as its line: the JSON of e without hash, then the hash of
// those bytes appended as the last field.
func encode(e Entry) ([]byte, error) {
	e.Hash = ""
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode audit entry: %w", err)
	}
	sum := sha256.Sum256(body)
	line := append(body[:len(body)-1:len(body)-1], `,"hash":"`...)
	line = append(line, hex.EncodeToString(sum[:])...)
	return append(line, `"}`...), nil
}

func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// hashSuffixLen is len(`,"hash":"` + 64 hex + `"}`).
const hashSuffixLen = 9 + 64 + 2

// ParseEntry parses one line of the trail (without its newline) strictly and
// checks the entry's own hash.
func ParseEntry(line []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Entry{}, fmt.Errorf("%w: text after the entry", ErrMalformed)
	}
	if e.Seq == 0 || e.Event == "" || !isHex64(e.Prev) || !isHex64(e.Hash) {
		return e, fmt.Errorf("%w: seq, event, prev and hash are required", ErrMalformed)
	}
	if len(line) < hashSuffixLen || string(line[len(line)-hashSuffixLen:]) != `,"hash":"`+e.Hash+`"}` {
		return e, fmt.Errorf("%w: hash must be the last field", ErrMalformed)
	}
	body := append(append([]byte(nil), line[:len(line)-hashSuffixLen]...), '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != e.Hash {
		return e, fmt.Errorf("%w: content does not match its hash", ErrEdited)
	}
	return e, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Verify checks the audit trail in dir: every entry's own hash, the chain of
// prev hashes, consecutive sequence numbers, and that the file still holds
// the last entry the head file recorded. It returns the number of intact
// entries and, when the trail is broken, an *Error naming the first broken
// entry. A directory without an audit trail verifies as 0 entries (Exists
// tells that case apart). Verify cannot detect a consistent rewrite of the
// whole chain and head file: compare with a head kept off the device (Head).
func Verify(dir string) (int, error) {
	h, herr := readHead(dir)
	if herr != nil {
		return 0, &Error{Err: ErrMalformed, Detail: herr.Error()}
	}
	f, err := os.Open(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		if h != nil && h.Seq > 0 {
			return 0, &Error{Err: ErrTruncated, Detail: fmt.Sprintf("%s is missing but %s records %d entries", FileName, HeadFileName, h.Seq)}
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open audit trail: %w", err)
	}
	defer f.Close()
	n, last, err := verify(f)
	if err != nil {
		return n, err
	}
	if h != nil && last.seq < h.Seq {
		return n, &Error{Err: ErrTruncated, Detail: fmt.Sprintf("%s records entry %d but the trail ends at entry %d: entries were removed from the end", HeadFileName, h.Seq, last.seq)}
	}
	if h != nil && last.seq == h.Seq && last.line != h.Line {
		return n, &Error{Line: n, Seq: last.seq, Err: ErrEdited, Detail: "the last entry was rewritten: it differs from the one " + HeadFileName + " recorded"}
	}
	return n, nil
}

// Exists reports whether dir holds an audit trail or its head file, so that
// "no audit trail" is not mistaken for an intact trail of 0 entries.
func Exists(dir string) bool {
	for _, n := range []string{FileName, HeadFileName} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

type lastEntry struct {
	seq  uint64
	line string
}

func verify(r io.Reader) (int, lastEntry, error) {
	br := bufio.NewReader(r)
	prev := Genesis
	var last lastEntry
	n := 0
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err == io.EOF {
			return n, last, nil
		}
		if errors.Is(err, ErrIncomplete) {
			return n, last, &Error{Line: lineNo, Seq: last.seq + 1, Err: ErrIncomplete, Detail: fmt.Sprintf("%d bytes without newline", len(line))}
		}
		if err != nil {
			return n, last, &Error{Line: lineNo, Err: ErrMalformed, Detail: err.Error()}
		}
		e, err := ParseEntry(line)
		if err != nil {
			sentinel := ErrMalformed
			if errors.Is(err, ErrEdited) {
				sentinel = ErrEdited
			}
			detail := strings.TrimPrefix(strings.TrimPrefix(err.Error(), sentinel.Error()), ": ")
			return n, last, &Error{Line: lineNo, Seq: e.Seq, Err: sentinel, Detail: detail}
		}
		want := uint64(lineNo)
		if e.Seq != want {
			return n, last, &Error{Line: lineNo, Seq: e.Seq, Err: ErrSequence, Detail: fmt.Sprintf("expected entry %d here: entries were deleted, inserted or reordered", want)}
		}
		if e.Prev != prev {
			what := "the entry before it was changed, or an entry was removed or inserted"
			if lineNo == 1 {
				what = "the first entry must start from the genesis hash: entries before it were removed"
			}
			return n, last, &Error{Line: lineNo, Seq: e.Seq, Err: ErrChain, Detail: what}
		}
		prev = lineHash(line)
		last = lastEntry{seq: e.Seq, line: prev}
		n++
	}
}

// readLine returns the next line without its newline; a last line without a
// newline comes back with ErrIncomplete, an overlong line with an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(buf) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return buf, ErrIncomplete
		default:
			return nil, err
		}
	}
}
