package reports

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testToken = "s3cret-token-for-tests-0123456789"

// rep builds a valid report body as a map, to change and marshal.
func rep(id, serial, release, step, result string, codes ...string) map[string]any {
	m := map[string]any{
		"id":            id,
		"time":          "2026-12-01T02:10:00Z",
		"device_serial": serial,
		"model":         "iDS-9632NXI-I8/16S",
		"release_id":    release,
		"version":       "4.1.25",
		"attempt_id":    "att-" + serial,
		"step":          step,
		"progress":      0,
		"agent_version": "test",
	}
	if result != "" {
		m["result"] = result
	}
	if len(codes) > 0 {
		m["codes"] = codes
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startServer runs a Server on a loopback httptest server writing to a
// file in a temporary directory.
func startServer(t testing.TB, opt ServerOptions) (*Server, *httptest.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "reports.jsonl")
	return startServerAt(t, path, opt)
}

func startServerAt(t testing.TB, path string, opt ServerOptions) (*Server, *httptest.Server, string) {
	t.Helper()
	if opt.Token == "" {
		opt.Token = testToken
	}
	s, err := NewServer(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		_ = s.Close()
	})
	return s, hs, path
}

// post sends body with the token (none when empty) and returns the status
// and the answer's body.
func post(t testing.TB, url, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var answer map[string]string
	if json.Unmarshal(b, &answer) == nil {
		if e, ok := answer["error"]; ok {
			return resp.StatusCode, e
		}
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func readFile(t testing.TB, path string) *File {
	t.Helper()
	f, err := ReadReports(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// httptestPost sends one authorized report straight to the handler.
func httptestPost(t testing.TB, h http.Handler, body []byte) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}
