package reports

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestServerAnswers(t *testing.T) {
	_, hs, path := startServer(t, ServerOptions{MaxBody: 4096})
	url := hs.URL + Path
	good := mustJSON(t, rep("r1", "SN1", "rel", "download", ""))
	tests := []struct {
		name   string
		token  string
		body   []byte
		status int
		want   string
	}{
		{"a report without token is refused", "", good, http.StatusUnauthorized, "missing bearer token"},
		{"a report with a wrong token is refused", "wrong-token-wrong-token", good, http.StatusUnauthorized, "wrong bearer token"},
		{"a report with a token one byte short is refused", testToken[:len(testToken)-1], good, http.StatusUnauthorized, "wrong bearer token"},
		{"a report with the right token is stored", testToken, good, http.StatusOK, `"stored":"r1"`},
		{"a body above the size limit is refused", testToken, mustJSON(t, func() map[string]any {
			m := rep("r2", "SN1", "rel", "download", "")
			m["message"] = strings.Repeat("x", 5000)
			return m
		}()), http.StatusRequestEntityTooLarge, "larger than 4096 bytes"},
		{"an empty body is refused", testToken, nil, http.StatusBadRequest, "empty"},
		{"broken JSON is refused", testToken, []byte(`{"id":"r3",`), http.StatusBadRequest, "not valid JSON"},
		{"a JSON array is refused", testToken, []byte(`[{"id":"r3"}]`), http.StatusBadRequest, "not a JSON object"},
		{"two objects in one body are refused", testToken, append(append([]byte{}, good...), good...), http.StatusBadRequest, "after the JSON object"},
		{"a field of the wrong type is refused", testToken, bytes.Replace(good, []byte(`"progress":0`), []byte(`"progress":"0"`), 1), http.StatusBadRequest, `"progress"`},
		{"a bad time is refused", testToken, bytes.Replace(good, []byte(`2026-12-01T02:10:00Z`), []byte(`yesterday`), 1), http.StatusBadRequest, "RFC 3339"},
		{"a report without id is refused", testToken, mustJSON(t, rep("", "SN1", "rel", "download", "")), http.StatusBadRequest, `"id" is missing`},
		{"a release report without serial is refused", testToken, mustJSON(t, rep("r4", "", "rel", "download", "")), http.StatusBadRequest, "must name the device"},
		{"an unknown result is refused", testToken, mustJSON(t, rep("r5", "SN1", "rel", "done", "great")), http.StatusBadRequest, `"result"`},
		{"progress above 100 is refused", testToken, bytes.Replace(good, []byte(`"progress":0`), []byte(`"progress":101`), 1), http.StatusBadRequest, "0 to 100"},
		{"a control character in the serial is refused", testToken, mustJSON(t, rep("r6", "SN\u001b[2J", "rel", "download", "")), http.StatusBadRequest, "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, url, tt.token, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("status %d body %s, want %d and %q", status, body, tt.status, tt.want)
			}
		})
	}
	f := readFile(t, path)
	if len(f.Records) != 1 || f.Records[0].Report.ID != "r1" || len(f.Bad) != 0 {
		t.Fatalf("file holds %d records %+v and bad %v, want only r1", len(f.Records), f.Records, f.Bad)
	}
}

func TestServerRoutes(t *testing.T) {
	s, hs, _ := startServer(t, ServerOptions{})
	get := func(path string) int {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("GET on the reports path is not allowed", func(t *testing.T) {
		if got := get(Path); got != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", got)
		}
	})
	t.Run("other paths are not found", func(t *testing.T) {
		if status, _ := post(t, hs.URL+"/", testToken, mustJSON(t, rep("x", "SN", "r", "download", ""))); status != http.StatusNotFound {
			t.Fatalf("status %d", status)
		}
	})
	t.Run("a non-JSON content type is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+Path, strings.NewReader("id=1"))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("health is ok while the server can write and 503 once closed", func(t *testing.T) {
		if got := get(HealthPath); got != http.StatusOK {
			t.Fatalf("status %d", got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := get(HealthPath); got != http.StatusServiceUnavailable {
			t.Fatalf("status %d after close", got)
		}
		if status, _ := post(t, hs.URL+Path, testToken, mustJSON(t, rep("late", "SN", "r", "download", ""))); status != http.StatusServiceUnavailable {
			t.Fatalf("post after close: status %d, want 503 so the agent keeps it", status)
		}
	})
}

func TestServerKeepsUnknownFields(t *testing.T) {
	_, hs, path := startServer(t, ServerOptions{})
	m := rep("r1", "SN1", "rel", "download", "")
	m["new_field"] = map[string]any{"a": 1}
	if status, body := post(t, hs.URL+Path, testToken, mustJSON(t, m)); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(`"new_field":{"a":1}`)) || bytes.Count(data, []byte("\n")) != 1 {
		t.Fatalf("line %q does not keep the unknown field on one line", data)
	}
}

func TestServerOptionsAreChecked(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"an empty token is refused", "", "no bearer token"},
		{"a short token is refused", "short", "at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(filepath.Join(dir, "r.jsonl"), ServerOptions{Token: tt.token})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("a second server on the same file is refused", func(t *testing.T) {
		path := filepath.Join(dir, "locked.jsonl")
		s, err := NewServer(path, ServerOptions{Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := NewServer(path, ServerOptions{Token: testToken}); !errors.Is(err, ErrLocked) {
			t.Fatalf("err %v, want ErrLocked", err)
		}
	})
}

func TestConcurrentReportsAreWholeLines(t *testing.T) {
	_, hs, path := startServer(t, ServerOptions{})
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m := rep(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("SN%d", w), "rel", "download", "")
				m["message"] = strings.Repeat(string(rune('a'+w)), 1000+w*100)
				if status, body := post(t, hs.URL+Path, testToken, mustJSON(t, m)); status != http.StatusOK {
					errs <- fmt.Sprintf("status %d: %s", status, body)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	f := readFile(t, path)
	if len(f.Records) != workers*each || len(f.Bad) != 0 || f.Duplicates != 0 {
		t.Fatalf("%d records, bad %v, %d duplicates; want %d whole records", len(f.Records), f.Bad, f.Duplicates, workers*each)
	}
	for _, r := range f.Records {
		if strings.Trim(r.Report.Message, r.Report.Message[:1]) != "" {
			t.Fatalf("report %s has an interleaved message", r.Report.ID)
		}
	}
}

func TestRestartKeepsAcceptedReports(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports.jsonl")
	s1, err := NewServer(path, ServerOptions{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		rec := httptestPost(t, s1, mustJSON(t, rep(fmt.Sprint("a", i), "SN1", "rel", "download", "")))
		if rec != http.StatusOK {
			t.Fatalf("status %d", rec)
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	_, hs, _ := startServerAt(t, path, ServerOptions{})
	if status, body := post(t, hs.URL+Path, testToken, mustJSON(t, rep("b0", "SN1", "rel", "done", "installed"))); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	f := readFile(t, path)
	if len(f.Records) != 4 || len(f.Bad) != 0 {
		t.Fatalf("%d records, bad %v: want the 3 reports accepted before the restart and 1 after", len(f.Records), f.Bad)
	}
}

func TestPartialLastLineIsRepaired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports.jsonl")
	whole := string(encodeLine(t0, mustJSON(t, rep("a", "SN1", "rel", "download", ""))))
	partial := `{"received":"2026-12-01T00:00:00Z","report":{"id":"b","ti`
	if err := os.WriteFile(path, []byte(whole+partial), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("a reader skips the incomplete last line", func(t *testing.T) {
		f := readFile(t, path)
		if len(f.Records) != 1 || len(f.Bad) != 1 || !strings.Contains(f.Bad[0].Problem, "incomplete") {
			t.Fatalf("records %d bad %v", len(f.Records), f.Bad)
		}
	})
	t.Run("the server terminates it and later lines stay whole", func(t *testing.T) {
		s, hs, _ := startServerAt(t, path, ServerOptions{})
		if s.Repaired() != int64(len(partial)) {
			t.Fatalf("repaired %d bytes, want %d", s.Repaired(), len(partial))
		}
		if status, body := post(t, hs.URL+Path, testToken, mustJSON(t, rep("c", "SN1", "rel", "done", "installed"))); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		f := readFile(t, path)
		if len(f.Records) != 2 || f.Records[1].Report.ID != "c" || len(f.Bad) != 1 || f.Bad[0].Line != 2 {
			t.Fatalf("records %+v bad %v: want a and c, line 2 skipped", f.Records, f.Bad)
		}
	})
}

func TestFailedWriteAnswers503(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	s, err := NewServer("/dev/full", ServerOptions{Token: testToken})
	if err != nil {
		t.Skipf("cannot open /dev/full: %v", err)
	}
	defer s.Close()
	if status := httptestPost(t, s, mustJSON(t, rep("a", "SN1", "rel", "download", ""))); status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 so the agent keeps the report queued", status)
	}
}
