package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/internal/cli"
)

// runFwagent runs the command like main does and returns stdout, stderr and
// the exit code.
func runFwagent(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	code := cli.ExitCode("fwagent", err, &stderr)
	return stdout.String(), stderr.String(), code
}

func writeAuditTrail(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	l, err := audit.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	events := []audit.Event{audit.EventRefused, audit.EventDownloadVerified, audit.EventInstallStarted, audit.EventInstallConfirmed}
	for i := 0; i < n; i++ {
		if err := l.Append(audit.Entry{Event: events[i%len(events)], Release: "r-4.1.25", Attempt: "a1", Message: "step done"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAuditVerifyIntact(t *testing.T) {
	dir := writeAuditTrail(t, 4)
	out, errOut, code := runFwagent(t, "audit", "verify", "--state-dir", dir)
	if code != exitOK || strings.TrimSpace(out) != "audit trail intact: 4 entries" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the intact line", code, out, errOut)
	}
}

func TestAuditVerifyNamesAnEditedEntry(t *testing.T) {
	dir := writeAuditTrail(t, 4)
	path := filepath.Join(dir, audit.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[2] = strings.Replace(lines[2], `"event":"install_started"`, `"event":"refused"`, 1)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runFwagent(t, "audit", "verify", "--state-dir", dir)
	if code != exitError {
		t.Fatalf("exit %d (stdout %q); want %d", code, out, exitError)
	}
	if !strings.Contains(errOut, "entry 3 (line 3)") || !strings.Contains(errOut, "edited") {
		t.Fatalf("stderr %q does not name entry 3 as edited", errOut)
	}
}

// Regression: a directory without any audit trail read as "intact: 0 entries".
func TestAuditVerifyWithoutATrailSaysSo(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := runFwagent(t, "audit", "verify", "--state-dir", dir)
	if code != exitError || strings.Contains(out, "intact") || !strings.Contains(errOut, "no audit trail") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and \"no audit trail\"", code, out, errOut)
	}
}

func TestAuditVerifyWithoutStateDirNeedsAConfig(t *testing.T) {
	_, errOut, code := runFwagent(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"), "audit", "verify")
	if code != exitError || !strings.Contains(errOut, "--state-dir") {
		t.Fatalf("exit %d, stderr %q; want 1 and a hint at --state-dir", code, errOut)
	}
}

// Regression: an agent that had opened but not yet written its trail was
// reported as "intact: 0 entries".
func TestAuditVerifyOfAnEmptyTrailSaysEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, audit.FileName), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runFwagent(t, "audit", "verify", "--state-dir", dir)
	if code != exitOK || strings.Contains(out, "intact") || !strings.Contains(out, "empty") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and \"empty\"", code, out, errOut)
	}
}
