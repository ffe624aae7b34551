package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fwagent/fwagent/reports"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a later reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// reportsServer is a running `fwctl reports serve`.
type reportsServer struct {
	URL    string
	stderr *lockedBuffer
	stop   func() int // cancels the command and returns its exit code
}

// startReportsServe runs `fwctl reports serve` with args in the background and
// waits for the URL it prints.
func startReportsServe(t *testing.T, args ...string) *reportsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		err := run(ctx, append([]string{"reports", "serve", "--listen", "127.0.0.1:0"}, args...), pw, stderr)
		code := exitCode(err, stderr)
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil {
		cancel()
		t.Fatalf("fwctl reports serve printed no URL (exit %d): %s", <-done, stderr.String())
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "receiving reports at "))
	var once sync.Once
	code := 0
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return &reportsServer{URL: url, stderr: stderr, stop: stop}
}

func writeToken(t *testing.T, dir string) (path, token string) {
	t.Helper()
	token = "0123456789abcdef0123456789abcdef"
	path = filepath.Join(dir, "report.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

func postReport(t *testing.T, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReportsServe(t *testing.T) {
	dir := t.TempDir()
	tokenPath, token := writeToken(t, dir)
	out := filepath.Join(dir, "reports.jsonl")
	body := `{"id":"r1","time":"2026-12-01T02:00:00Z","device_serial":"SN1","release_id":"rel","step":"done","result":"installed","agent_version":"t"}`

	srv := startReportsServe(t, "--token-file", tokenPath, "--out", out)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") || !strings.HasSuffix(srv.URL, reports.Path) {
		t.Fatalf("printed URL %q", srv.URL)
	}
	for _, tt := range []struct {
		name, token string
		status      int
	}{
		{"a report without the token is refused", "", http.StatusUnauthorized},
		{"a report with the token from the file is stored", token, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := postReport(t, srv.URL, tt.token, body); got != tt.status {
				t.Fatalf("status %d, want %d", got, tt.status)
			}
		})
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited %d after cancel: %s", code, srv.stderr.String())
	}
	t.Run("a restarted server keeps the reports accepted before", func(t *testing.T) {
		srv := startReportsServe(t, "--token-file", tokenPath, "--out", out)
		if got := postReport(t, srv.URL, token, strings.Replace(body, `"r1"`, `"r2"`, 1)); got != http.StatusOK {
			t.Fatalf("status %d", got)
		}
		srv.stop()
		f, err := reports.ReadReports(out)
		if err != nil || len(f.Records) != 2 {
			t.Fatalf("records %v, err %v", f, err)
		}
	})

	refusals := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"serve without --out is a usage error", []string{"reports", "serve", "--token-file", tokenPath}, 2, "--out"},
		{"a missing token file is refused", []string{"reports", "serve", "--token-file", filepath.Join(dir, "nope"), "--out", out}, 1, "token file"},
		{"a half TLS configuration is a usage error", []string{"reports", "serve", "--token-file", tokenPath, "--out", out, "--tls-cert", "c.pem"}, 2, "go together"},
		{"reports without subcommand is a usage error", []string{"reports"}, 2, "subcommand"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
	t.Run("a short token is refused", func(t *testing.T) {
		short := filepath.Join(dir, "short.token")
		if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := fwctl(t, "reports", "serve", "--listen", "127.0.0.1:0", "--token-file", short, "--out", out)
		if r.code != 1 || !strings.Contains(r.stderr, "at least 16") {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

func TestReportsHelp(t *testing.T) {
	for _, args := range [][]string{{"reports"}, {"reports", "serve"}, {"rollout", "status"}, {"rollout", "advance"}} {
		t.Run(strings.Join(args, " ")+" has --help", func(t *testing.T) {
			if r := mustOK(t, append(args, "--help")...); !strings.Contains(r.stdout, "Usage:") {
				t.Fatalf("help: %s", r.stdout)
			}
		})
	}
}
