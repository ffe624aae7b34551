package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTrail appends n entries to a fresh trail in a temp dir and returns the dir.
func writeTrail(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		err := l.Append(Entry{Time: base.Add(time.Duration(i) * time.Minute), Event: EventRefused, Release: "r1", Attempt: "a1",
			Codes: []string{"model_mismatch"}, Message: "refused release r1"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readLines(t *testing.T, dir string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

func writeLines(t *testing.T, dir string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, FileName), bytes.Join(lines, nil), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestAppendAndVerify(t *testing.T) {
	dir := writeTrail(t, 5)
	n, err := Verify(dir)
	if err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v; want 5, nil", n, err)
	}
	// Reopening continues the chain.
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Entry{Event: EventInstallConfirmed, Release: "r1"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := Verify(dir); err != nil || n != 6 {
		t.Fatalf("after reopen Verify = %d, %v; want 6, nil", n, err)
	}
}

func TestVerifyNamesTheFirstBrokenEntry(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(lines [][]byte) [][]byte
		sentinel error
		want     string
	}{
		{"an edited message is named by its own hash", func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte("refused release r1"), []byte("installed release r1"), 1)
			return l
		}, ErrEdited, "entry 3 (line 3)"},
		{"an edited entry with a recomputed hash is named by the next entry's prev", func(l [][]byte) [][]byte {
			e, _ := ParseEntry(bytes.TrimSuffix(l[1], []byte("\n")))
			e.Message = "forged"
			line, _ := encode(e)
			l[1] = append(line, '\n')
			return l
		}, ErrChain, "entry 3 (line 3)"},
		{"a deleted entry is named", func(l [][]byte) [][]byte {
			return append(l[:1], l[2:]...)
		}, ErrSequence, "entry 3 (line 2)"},
		{"reordered entries are named", func(l [][]byte) [][]byte {
			l[1], l[2] = l[2], l[1]
			return l
		}, ErrSequence, "entry 3 (line 2)"},
		{"a removed first entry is named", func(l [][]byte) [][]byte {
			return l[1:]
		}, ErrSequence, "entry 2 (line 1)"},
		{"entries removed from the end are detected by the head file", func(l [][]byte) [][]byte {
			return l[:3]
		}, ErrTruncated, "trail ends at entry 3"},
		{"a partial last line is reported as incomplete", func(l [][]byte) [][]byte {
			l[4] = l[4][:20]
			return l
		}, ErrIncomplete, "crash during write"},
		{"a line that is not JSON is malformed", func(l [][]byte) [][]byte {
			l[0] = []byte("hello\n")
			return l
		}, ErrMalformed, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTrail(t, 5)
			writeLines(t, dir, tt.tamper(readLines(t, dir)))
			_, err := Verify(dir)
			var ae *Error
			if !errors.As(err, &ae) || !errors.Is(err, tt.sentinel) {
				t.Fatalf("Verify error = %v; want *Error wrapping %v", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify error %q does not name %q", err, tt.want)
			}
		})
	}
}

func TestOpenCutsAPartialLineAndKeepsIt(t *testing.T) {
	dir := writeTrail(t, 3)
	lines := readLines(t, dir)
	partial := append([]byte(nil), lines[2][:30]...)
	writeLines(t, dir, append(lines[:2], partial))
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Entry{Event: EventFailed, Codes: []string{"device_unreachable"}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	kept, err := os.ReadFile(filepath.Join(dir, IncompleteName))
	if err != nil || !bytes.Contains(kept, partial) {
		t.Fatalf("partial line not kept in %s: %q, %v", IncompleteName, kept, err)
	}
	// The chain goes on, and the trail itself says what Open found: the cut
	// line and the entry the head file had recorded.
	n, err := Verify(dir)
	if err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
	repair, err := ParseEntry(bytes.TrimSuffix(readLines(t, dir)[2], []byte("\n")))
	if err != nil || repair.Event != EventTrailRepaired || !strings.Contains(repair.Message, "cut an incomplete last line") || !strings.Contains(repair.Message, "entries were lost") {
		t.Fatalf("entry 3 = %+v, %v; want a trail_repaired entry naming the cut and the lost entry", repair, err)
	}
}

func TestVerifyWithoutTrail(t *testing.T) {
	if n, err := Verify(t.TempDir()); n != 0 || err != nil {
		t.Fatalf("Verify(empty dir) = %d, %v; want 0, nil", n, err)
	}
}

func TestExistsTellsNoTrailFromAnEmptyOne(t *testing.T) {
	dir := t.TempDir()
	if Exists(dir) {
		t.Error("Exists(empty dir) = true")
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if !Exists(dir) {
		t.Error("Exists after Open = false")
	}
}

func TestHeadIsTheLastLineHashAndSurvivesReopening(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if seq, h := l.Head(); seq != 0 || h != Genesis {
		t.Fatalf("Head of an empty trail = %d, %s; want 0, Genesis", seq, h)
	}
	for i := 0; i < 3; i++ {
		if err := l.Append(Entry{Event: EventRefused, Time: time.Date(2026, 3, 1, 0, i, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	seq, h := l.Head()
	lines := readLines(t, dir)
	if want := lineHash(bytes.TrimSuffix(lines[2], []byte("\n"))); seq != 3 || h != want {
		t.Fatalf("Head = %d, %s; want 3, %s", seq, h, want)
	}
	hb, _ := os.ReadFile(filepath.Join(dir, HeadFileName))
	if !strings.Contains(string(hb), h) {
		t.Errorf("Head %s differs from %s: %s", h, HeadFileName, hb)
	}
	l.Close()
	l2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if seq2, h2 := l2.Head(); seq2 != seq || h2 != h {
		t.Fatalf("Head after reopening = %d, %s; want %d, %s", seq2, h2, seq, h)
	}
}

// The honest limit: a whole-chain rewrite by someone with write access to
// the state directory verifies on the device; only a head kept elsewhere
// shows it.
func TestAWholeChainRewriteIsCaughtOnlyByAnOffDeviceHead(t *testing.T) {
	dir := writeTrail(t, 2)
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	anchorSeq, anchor := l.Head()
	l.Close()
	os.Remove(filepath.Join(dir, FileName))
	os.Remove(filepath.Join(dir, HeadFileName))
	forged, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		forged.Append(Entry{Event: EventInstallConfirmed, Release: "r1", Time: time.Date(2026, 3, 1, 2, i, 0, 0, time.UTC)})
	}
	seq, h := forged.Head()
	forged.Close()
	if n, err := Verify(dir); n != 2 || err != nil {
		t.Fatalf("Verify(rewritten chain) = %d, %v; the rewrite is consistent", n, err)
	}
	if seq != anchorSeq || h == anchor {
		t.Fatalf("rewritten head = %d, %s; anchored %d, %s: the anchor must differ", seq, h, anchorSeq, anchor)
	}
}

func TestAppendRequiresAnEvent(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Entry{Message: "x"}); err == nil {
		t.Fatal("Append without event succeeded")
	}
}

func FuzzParseEntry(f *testing.F) {
	e := Entry{Seq: 1, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Event: EventRefused, Codes: []string{"x"}, Prev: Genesis}
	line, _ := encode(e)
	f.Add(line)
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			return
		}
		// A line that parses is exactly what encode produces for its entry.
		again, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseEntry(again); err != nil {
			t.Fatalf("re-encoded entry does not parse: %v", err)
		}
	})
}

// Regression: a manifest URL's password entered the trail in clear, where
// the hash chain keeps it for ever.
func TestAppendKeepsCredentialsOutOfTheTrail(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Append(Entry{Event: EventManifestAccepted, Release: "r1", Codes: []string{"c1"},
		Message: `serial 5 from http://site-user:Pa55word@127.0.0.1:8080/m.json; Authorization: Basic dXNlcjpQYTU1d29yZA== token=tok-123456`})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"Pa55word", "site-user", "dXNlcjpQYTU1d29yZA==", "tok-123456"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("the trail holds %q:\n%s", bad, b)
		}
	}
	if !strings.Contains(string(b), "serial 5 from http://127.0.0.1:8080/m.json") {
		t.Errorf("the trail lost the URL's host and path:\n%s", b)
	}
	if n, err := Verify(dir); n != 1 || err != nil {
		t.Errorf("Verify = %d, %v; want 1 intact entry", n, err)
	}
}
