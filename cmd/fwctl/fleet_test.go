package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
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

// writeToken writes a token file (mode 0600) of the length servers accept.
func writeToken(t *testing.T, dir string) (path, token string) {
	t.Helper()
	token = "0123456789abcdef0123456789abcdef"
	path = filepath.Join(dir, "admin.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

// startFleetServe runs `fwctl fleet serve` with args in the background
// and returns the URL it prints.
func startFleetServe(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	return startServe(t, []string{"fleet", "serve"}, args...)
}

// startServe runs the server command (fleet serve or its old name, reports
// serve) on a loopback port with args in the background, returns the URL
// it prints, and stops it at the end of the test, which fails unless it
// exited 0.
func startServe(t *testing.T, command []string, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		err := run(ctx, append(append(append([]string{}, command...), "--listen", "127.0.0.1:0"), args...), pw, stderr)
		code := exitCode(err, stderr)
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil {
		cancel()
		t.Fatalf("fwctl %s printed no URL (exit %d): %s", strings.Join(command, " "), <-done, stderr.String())
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("fwctl %s exited %d: %s", strings.Join(command, " "), code, stderr.String())
			}
		})
	})
	return strings.TrimSpace(strings.TrimPrefix(line, "fleet server at ")), stderr
}

func fwctl3(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	r := fwctl(t, args...)
	return r.stdout, r.stderr, r.code
}

func TestFleetCommandsDriveTheServer(t *testing.T) {
	dir := t.TempDir()
	tokenPath, _ := writeToken(t, dir)
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath)
	admin := []string{"--server", url, "--admin-token-file", tokenPath}

	_, priv, _ := ed25519.GenerateKey(nil)
	agent := fleet.NewClient(url, fleet.NewDeviceKey(priv))
	ci := fleet.CheckIn{Serial: "SN1", Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.24", DeviceName: "rec-1", Site: "site-a", AgentVersion: "1"}
	reply, err := agent.CheckIn(context.Background(), ci)
	if err != nil || reply.Enrolment != fleet.EnrolPending {
		t.Fatalf("first check-in: %+v, %v", reply, err)
	}

	out, errs, code := fwctl3(t, append([]string{"fleet", "devices", "--state", "pending_enrolment"}, admin...)...)
	if code != 0 || !strings.Contains(out, "SN1") || !strings.Contains(out, "site-a/rec-1") || !strings.Contains(out, "pending_enrolment") {
		t.Fatalf("devices: exit %d\n%s%s", code, out, errs)
	}
	serials := filepath.Join(dir, "serials.txt")
	_ = os.WriteFile(serials, []byte("# site A\nSN1\nSN2\n"), 0o600)
	if out, errs, code := fwctl3(t, append([]string{"fleet", "approve", "--file", serials}, admin...)...); code != 0 || !strings.Contains(out, "approved 1 pending key(s), registered 1 new serial(s)") {
		t.Fatalf("approve: exit %d\n%s%s", code, out, errs)
	}
	if reply, err := agent.CheckIn(context.Background(), ci); err != nil || reply.Enrolment != fleet.EnrolAccepted {
		t.Fatalf("check-in after approval: %+v, %v", reply, err)
	}
	if out, errs, code := fwctl3(t, append([]string{"fleet", "pause", "--release", "r1", "--cause", "site B reports badFlash"}, admin...)...); code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: exit %d\n%s%s", code, out, errs)
	}
	reply, _ = agent.CheckIn(context.Background(), ci)
	if h, held := reply.Held("r1"); !held || !strings.Contains(h.Reason, "site B reports badFlash") {
		t.Fatalf("after pause the reply is %+v", reply)
	}
	if _, errs, code := fwctl3(t, append([]string{"fleet", "resume", "--release", "r1"}, admin...)...); code != 0 {
		t.Fatalf("resume: exit %d %s", code, errs)
	}
	if reply, _ = agent.CheckIn(context.Background(), ci); len(reply.Holds) != 0 {
		t.Fatalf("holds after resume: %+v", reply.Holds)
	}

	// Reports: one signed, one imported from the old file; rollout status reads both.
	if err := agent.Report(context.Background(), fleet.Report{Report: report.Report{ID: "x", DeviceSerial: "SN1", ReleaseID: "r1", Step: "confirm", Result: fleet.ResultInstalled, AgentVersion: "1"}}); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "reports.jsonl")
	_ = os.WriteFile(old, []byte(`{"received":"2026-11-30T12:00:00Z","report":{"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"OLD1","model":"m","release_id":"r1","step":"install","result":"failed","codes":["badFlash"],"agent_version":"0.9"}}`+"\n"), 0o600)
	if out, errs, code := fwctl3(t, append([]string{"fleet", "import", old}, admin...)...); code != 0 || !strings.Contains(out, "imported 1 report(s), registered 1 device(s)") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = fwctl3(t, append([]string{"rollout", "status", "--release", "r1", "--devices"}, admin...)...)
	if code != 0 || !strings.Contains(out, "SN1") || !strings.Contains(out, "OLD1") {
		t.Fatalf("rollout status --server: exit %d\n%s%s", code, out, errs)
	}
	// A reinstalled recorder (new key) is a forgery until its key is forgotten.
	_, priv2, _ := ed25519.GenerateKey(nil)
	reinstalled := fleet.NewClient(url, fleet.NewDeviceKey(priv2))
	if _, err := reinstalled.CheckIn(context.Background(), ci); err == nil {
		t.Fatal("a new key for an enrolled serial was accepted")
	}
	if out, errs, code := fwctl3(t, append([]string{"fleet", "forget", "SN1"}, admin...)...); code != 0 || !strings.Contains(out, "forgot the key of 1 device(s)") {
		t.Fatalf("forget: exit %d\n%s%s", code, out, errs)
	}
	if reply, err := reinstalled.CheckIn(context.Background(), ci); err != nil || reply.Enrolment != fleet.EnrolAccepted {
		t.Fatalf("check-in of the new key after forget: %+v, %v", reply, err)
	}
	out, _, code = fwctl3(t, append([]string{"fleet", "devices", "--json"}, admin...)...)
	var devs []server.DeviceJSON
	if code != 0 || json.Unmarshal([]byte(out), &devs) != nil || len(devs) != 3 {
		t.Fatalf("devices --json: exit %d %s", code, out)
	}
}

func TestFleetServeRefusesAnOpenListenWithoutTLS(t *testing.T) {
	_, errs, code := fwctl3(t, "fleet", "serve", "--listen", "0.0.0.0:0", "--db", filepath.Join(t.TempDir(), "f.db"))
	if code != exitUsage || !strings.Contains(errs, "not a loopback address") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestFleetAdminCommandsNeedTheToken(t *testing.T) {
	_, errs, code := fwctl3(t, "fleet", "devices")
	if code != exitUsage || !strings.Contains(errs, "--admin-token-file") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	dir := t.TempDir()
	tokenPath, _ := writeToken(t, dir)
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath)
	wrong := filepath.Join(dir, "wrong.token")
	_ = os.WriteFile(wrong, []byte("wrong-token-wrong-token"), 0o600)
	_, errs, code = fwctl3(t, "fleet", "pause", "--release", "r1", "--server", url, "--admin-token-file", wrong)
	if code != exitInvalid || !strings.Contains(errs, "401") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestFleetViewerTokenListsAndCannotPause(t *testing.T) {
	dir := t.TempDir()
	tokenPath, _ := writeToken(t, dir)
	viewer := filepath.Join(dir, "viewer.token")
	if err := os.WriteFile(viewer, []byte("viewer-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.token")
	_ = os.WriteFile(short, []byte("short"), 0o600)
	_, errs, code := fwctl3(t, "fleet", "serve", "--db", filepath.Join(dir, "f.db"), "--admin-token-file", tokenPath, "--viewer-token-file", short)
	if code != exitUsage || !strings.Contains(errs, "viewer token") {
		t.Fatalf("a short viewer token: exit %d: %s", code, errs)
	}
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath, "--viewer-token-file", viewer)
	if _, errs, code := fwctl3(t, "fleet", "devices", "--server", url, "--admin-token-file", viewer); code != 0 {
		t.Fatalf("devices with the viewer token: exit %d: %s", code, errs)
	}
	_, errs, code = fwctl3(t, "fleet", "pause", "--release", "r1", "--server", url, "--admin-token-file", viewer)
	if code == 0 || !strings.Contains(errs, "viewer token reads only") {
		t.Fatalf("pause with the viewer token: exit %d: %s", code, errs)
	}
}
