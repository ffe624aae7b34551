package journal

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestStepEntriesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	for want := 1; want <= 3; want++ {
		n, err := j.EnterStep(StepDownload)
		if err != nil || n != want {
			t.Fatalf("EnterStep = %d, %v; want %d", n, err, want)
		}
	}
	attempt := j.State().Current.AttemptID
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j2 := open(t, dir)
	st := j2.State()
	if st.Current == nil || st.Current.Step != StepDownload || st.Current.AttemptID != attempt {
		t.Fatalf("reopened state lost the update: %+v", st.Current)
	}
	n, err := j2.EnterStep(StepDownload)
	if err != nil || n != 4 {
		t.Fatalf("EnterStep after reopen = %d, %v; want 4", n, err)
	}
	if n, _ := j2.EnterStep(StepVerify); n != 1 {
		t.Fatalf("a new step starts at %d, want 1", n)
	}
}

func TestTheStepIsOnDiskBeforeEnterStepReturns(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	if _, err := j.EnterStep(StepInstall); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(filepath.Join(dir, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Current.Step != StepInstall || st.Current.StepEntries[StepInstall] != 1 {
		t.Fatalf("on disk: %+v", st.Current)
	}
}

func TestASecondOpenOfTheSameDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("error does not name the holder: %v", err)
	}
	j.Close()
	j2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
}

func TestAFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	if _, err := j.EnterStep(StepDownload); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	j.writeFile = func(string, []byte, os.FileMode) error { return errors.New("disk full") }

	_, err = j.EnterStep(StepVerify)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("EnterStep with a failing disk: %v", err)
	}
	if st := j.State(); st.Current.Step != StepDownload || st.Current.StepEntries[StepVerify] != 0 {
		t.Fatalf("memory changed after a failed write: %+v", st.Current)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "journal.json"))
	if string(after) != string(before) {
		t.Fatal("file changed after a failed write")
	}
}

func TestAReadOnlyDirectoryKeepsThePreviousFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories; TestAFailedWriteChangesNothing covers the failure")
	}
	dir := t.TempDir()
	j := open(t, dir)
	if _, err := j.EnterStep(StepDownload); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "journal.json"))
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, err := j.EnterStep(StepVerify); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
	after, _ := os.ReadFile(filepath.Join(dir, "journal.json"))
	if string(after) != string(before) || j.State().Current.Step != StepDownload {
		t.Fatal("state changed after a failed write")
	}
}

func TestUpdateErrorsLeaveTheStateAlone(t *testing.T) {
	j := open(t, t.TempDir())
	err := j.Update(func(s *State) error {
		s.LastSerial = 42
		return errors.New("changed my mind")
	})
	if err == nil || j.State().LastSerial != 0 {
		t.Fatalf("err %v, serial %d", err, j.State().LastSerial)
	}
	st := j.State()
	st.Quarantine = map[string]Quarantine{"x": {}}
	if j.State().Quarantine != nil {
		t.Fatal("State() returned shared memory")
	}
}

func TestCorruptJournalsAreRefusedNotReset(t *testing.T) {
	cases := []struct{ name, content, want string }{
		{"truncated JSON", `{"version":1,"current":{`, "unexpected end"},
		{"an empty file", "", "unexpected end"},
		{"a newer format", `{"version":99}`, "newer agent"},
		{"an unknown step", `{"version":1,"current":{"attempt_id":"a","step":"flashing"}}`, `unknown step "flashing"`},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "journal.json")
			os.WriteFile(path, []byte(tc.content), 0o600)
			_, err := Open(dir)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			for _, part := range []string{path, tc.want, "move it aside"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q lacks %q", err, part)
				}
			}
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Error("the corrupt file was changed")
			}
			// The lock was released: once the file is moved aside, Open works.
			os.Rename(path, path+".bad")
			j, err := Open(dir)
			if err != nil {
				t.Fatalf("Open after moving the file aside: %v", err)
			}
			j.Close()
		})
	}
}

func TestFinishRecordsHistoryAndClearsTheUpdate(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	j.HistoryMax = 5
	for i := 0; i < 8; i++ {
		if _, err := j.EnterStep(StepDownload); err != nil {
			t.Fatal(err)
		}
		j.Update(func(s *State) error { s.Current.ReleaseID = fmt.Sprintf("rel-%d", i); return nil })
		if err := j.Finish(Result{Outcome: OutcomeFailure, Message: "cut"}); err != nil {
			t.Fatal(err)
		}
	}
	st := j.State()
	if st.Current != nil || st.LastResult == nil || st.LastResult.ReleaseID != "rel-7" || st.LastResult.Step != StepDownload {
		t.Fatalf("after Finish: current %+v, last %+v", st.Current, st.LastResult)
	}
	h, err := j.History(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 5 || h[0].ReleaseID != "rel-3" || h[4].ReleaseID != "rel-7" {
		t.Fatalf("history not bounded to the last 5: %+v", h)
	}
	if h2, _ := j.History(2); len(h2) != 2 || h2[1].ReleaseID != "rel-7" {
		t.Fatalf("History(2) = %+v", h2)
	}

	t.Run("finishing the same attempt again after a crash records it once", func(t *testing.T) {
		j.EnterStep(StepConfirm)
		id := j.State().Current.AttemptID
		r := Result{AttemptID: id, Outcome: OutcomeSuccess}
		if err := j.appendHistory(r); err != nil { // the crash came after the history write
			t.Fatal(err)
		}
		if err := j.Finish(r); err != nil {
			t.Fatal(err)
		}
		h, _ := j.History(0)
		n := 0
		for _, e := range h {
			if e.AttemptID == id {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("attempt recorded %d times", n)
		}
	})
}

func TestACorruptHistoryIsReportedAndSetAside(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	path := filepath.Join(dir, "history.jsonl")
	os.WriteFile(path, []byte("{\"attempt_id\":\"a\",\"outcome\":\"success\"}\nnot json\n"), 0o600)
	_, err := j.History(0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path+":2") {
		t.Fatalf("History: %v, want ErrCorrupt naming %s:2", err, path)
	}
	if err := j.Finish(Result{AttemptID: "b", Outcome: OutcomeFailure}); err != nil {
		t.Fatalf("Finish with a corrupt history: %v", err)
	}
	h, err := j.History(0)
	if err != nil || len(h) != 1 || h[0].AttemptID != "b" {
		t.Fatalf("new history %+v, %v", h, err)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("the corrupt history was not kept aside: %v", aside)
	}
}

func TestQuarantineAndRefusalHelpers(t *testing.T) {
	s := State{
		Quarantine:       map[string]Quarantine{"r1": {Serial: 10, Reason: "3 failed attempts", At: time.Now()}},
		RefusalsReported: map[string]int64{"r2": 7},
	}
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"a quarantined release stays quarantined at the same serial", s.Quarantined("r1", 10), true},
		{"a higher serial lifts the quarantine", s.Quarantined("r1", 11), false},
		{"other releases are not quarantined", s.Quarantined("r9", 1), false},
		{"a refusal is reported once per serial", s.RefusalReported("r2", 7), true},
		{"a new serial reports the refusal again", s.RefusalReported("r2", 8), false},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Fatalf("got %v", c.got)
			}
		})
	}
}

func TestStaleTempFilesAreRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".journal.json12345")
	os.WriteFile(stale, []byte("half"), 0o600)
	open(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("stale temp file survived Open")
	}
}

func TestConcurrentUseIsSafe(t *testing.T) {
	j := open(t, t.TempDir())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 10; k++ {
				j.EnterStep(StepDownload)
				_ = j.State()
			}
		}()
	}
	wg.Wait()
	if n := j.State().Current.StepEntries[StepDownload]; n != 40 {
		t.Fatalf("entries %d, want 40", n)
	}
	j.Close()
	if _, err := j.EnterStep(StepDownload); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"current":{"attempt_id":"a","step":"download","step_entries":{"download":3}},"quarantine":{"r":{"serial":3}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(data)
		if err != nil {
			return
		}
		if s.Current != nil && !s.Current.Step.Known() {
			t.Fatalf("accepted unknown step %q", s.Current.Step)
		}
		_ = s.clone()
	})
}

// TestHelperHoldLock is not a test: run as a subprocess, it opens the journal
// in $FWAGENT_JOURNAL_HOLD, says so, and waits to be killed.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv("FWAGENT_JOURNAL_HOLD")
	if dir == "" {
		t.Skip("helper process only")
	}
	j, err := Open(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	j.EnterStep(StepInstall)
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin) // blocks until killed
	os.Exit(0)
}

func TestTheLockDiesWithAKilledAgent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "FWAGENT_JOURNAL_HOLD="+dir)
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("Open while another process holds the lock: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	j, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	defer j.Close()
	if st := j.State(); st.Current == nil || st.Current.Step != StepInstall {
		t.Fatalf("the killed agent's step was lost: %+v", st.Current)
	}
}

// The journal never stores a credential or a URL's user information, in
// any of its free-text fields or in the release record.
func TestTheJournalKeepsNoCredentialsOrURLUserinfo(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	leak := "http://mirror-user:Mirr0rPass@127.0.0.1:9/fw.dav"
	rel := json.RawMessage(`{"id":"r1","image":{"urls":["` + leak + `"],"sha256":"ab"},"notes":"a&b <c>"}`)
	if err := j.Update(func(s *State) error {
		s.Current = &Update{AttemptID: "a1", ReleaseID: "r1", Release: rel, LastError: "download image " + leak + ": EOF"}
		s.Quarantine = map[string]Quarantine{"r0": {Reason: "fatal: " + leak}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := j.Finish(Result{Outcome: OutcomeFailure, Message: "all 1 urls failed: " + leak + " password=Hunter2"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{stateFile, historyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"mirror-user", "Mirr0rPass", "Hunter2"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s holds %q:\n%s", name, bad, b)
			}
		}
	}
	if err := j.Update(func(s *State) error {
		s.Current = &Update{AttemptID: "a2", Release: rel}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Image struct{ URLs []string } `json:"image"`
		Notes string                  `json:"notes"`
	}
	if err := json.Unmarshal(j.State().Current.Release, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Image.URLs) != 1 || got.Image.URLs[0] != "http://127.0.0.1:9/fw.dav" || got.Notes != "a&b <c>" {
		t.Errorf("release record = %s; want the URL without userinfo and the rest unchanged", j.State().Current.Release)
	}
}

// TestRecordCycleSurvivesReopenWithoutCredentials: the last cycle's outcome
// is on disk when RecordCycle returns, its message without credentials, and
// the update in progress is left alone.
func TestRecordCycleSurvivesReopenWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.EnterStep(StepDownload); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := j.RecordCycle(Cycle{Result: "failed", Codes: []string{"credentials_refused"}, Finished: at,
		Message: "identify: http://admin:Hunter2@127.0.0.1:9/ISAPI/System/deviceInfo: 401 password=Hunter2"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "Hunter2") {
		t.Errorf("journal.json holds the password:\n%s", b)
	}
	j = open(t, dir)
	st := j.State()
	c := st.LastCycle
	if c == nil || c.Result != "failed" || len(c.Codes) != 1 || c.Codes[0] != "credentials_refused" || !c.Finished.Equal(at) || !strings.Contains(c.Message, "401") {
		t.Fatalf("last cycle after reopen: %+v", c)
	}
	if st.Current == nil || st.Current.Step != StepDownload {
		t.Errorf("RecordCycle changed the update in progress: %+v", st.Current)
	}
	// State returns a copy: changing it changes nothing recorded.
	c.Codes[0] = "changed"
	if j.State().LastCycle.Codes[0] != "credentials_refused" {
		t.Error("State shares the last cycle's codes")
	}
}
