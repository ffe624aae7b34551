package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	if out, errs, code := fwctl3(t, append([]string{"fleet", "import", old}, admin...)...); code != 0 || !strings.Contains(out, "imported 1 new report(s), 0 already imported; registered 1 device(s)") {
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

// An operator who runs an import twice (or whose import fwctl sent again
// after a 503) is told the reports were there already; nothing is stored
// twice.
func TestFleetImportTwiceStoresEachReportOnce(t *testing.T) {
	dir := t.TempDir()
	tokenPath, token := writeToken(t, dir)
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath)
	admin := []string{"--server", url, "--admin-token-file", tokenPath}
	old := filepath.Join(dir, "reports.jsonl")
	line := func(id, serial string) string {
		return `{"received":"2026-11-30T12:00:00Z","report":{"id":"` + id + `","time":"2026-11-30T12:00:00Z","device_serial":"` + serial + `","model":"m","release_id":"r1","step":"install","result":"failed","codes":["badFlash"],"agent_version":"0.9"}}` + "\n"
	}
	_ = os.WriteFile(old, []byte(line("a", "OLD1")+line("b", "OLD2")), 0o600)
	for _, want := range []string{
		"imported 2 new report(s), 0 already imported; registered 2 device(s)",
		"imported 0 new report(s), 2 already imported; registered 0 device(s)",
	} {
		if out, errs, code := fwctl3(t, append([]string{"fleet", "import", old}, admin...)...); code != 0 || !strings.Contains(out, want) {
			t.Fatalf("import: exit %d, want %q\n%s%s", code, want, out, errs)
		}
	}
	req, _ := http.NewRequest("GET", url+"/v1/admin/releases/r1/reports", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if n := bytes.Count(body, []byte("\n")); resp.StatusCode != http.StatusOK || n != 2 {
		t.Fatalf("the server holds %d reports on r1 after two imports (%d), want 2:\n%s", n, resp.StatusCode, body)
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

// fleetReleases reads the fleet server's releases through the admin API.
func fleetReleases(t *testing.T, url, tokenPath string) map[string]server.ReleaseJSON {
	t.Helper()
	tok, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", url+"/v1/admin/releases", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rels []server.ReleaseJSON
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&rels) != nil {
		t.Fatalf("GET /v1/admin/releases: %d", resp.StatusCode)
	}
	out := map[string]server.ReleaseJSON{}
	for _, r := range rels {
		out[r.ID] = r
	}
	return out
}

// fleetAgent is a device that checks in (open enrolment) and reports on
// release ids-4.1.25.
func fleetAgent(t *testing.T, url, serial string) *fleet.Client {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	c := fleet.NewClient(url, fleet.NewDeviceKey(priv))
	if _, err := c.CheckIn(context.Background(), fleet.CheckIn{Serial: serial, Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.24", AgentVersion: "1"}); err != nil {
		t.Fatalf("check-in of %s: %v", serial, err)
	}
	return c
}

func fleetReport(t *testing.T, c *fleet.Client, serial, result string, codes ...string) {
	t.Helper()
	step := "confirm"
	if result == fleet.ResultFailed {
		step = "install"
	}
	r := report.Report{ID: serial + "-" + result, DeviceSerial: serial, Model: "iDS-9632NXI-I8/16S", ReleaseID: "ids-4.1.25",
		Step: step, Result: result, Codes: codes, AgentVersion: "1"}
	if err := c.Report(context.Background(), fleet.Report{Report: r}); err != nil {
		t.Fatalf("report of %s: %v", serial, err)
	}
}

func TestFleetRolloutSendsTheEnvelopesStages(t *testing.T) {
	dir := t.TempDir()
	tokenPath, _ := writeToken(t, dir)
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath)
	admin := []string{"--server", url, "--admin-token-file", tokenPath}
	env, _ := stagedEnvelope(t, dir)
	bare := filepath.Join(dir, "bare.dsse.json") // the release without rollout
	bob := keygen(t, dir, "bob")
	mustOK(t, "sign", "--key", bob+".key", "-o", bare, writeJSON(t, filepath.Join(dir, "bare.json"), testPayload(3)))

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a missing --release is a usage error", []string{env}, exitUsage, "--release ID is required"},
		{"a release the envelope lacks is refused", []string{"--release", "nope", env}, exitInvalid, "no such release"},
		{"a release without rollout is refused", []string{"--release", "ids-4.1.25", bare}, exitInvalid, "has no rollout"},
		{"a missing envelope is refused", []string{"--release", "ids-4.1.25", filepath.Join(dir, "none.dsse.json")}, exitInvalid, "none.dsse.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := fwctl3(t, append(append([]string{"fleet", "rollout"}, admin...), tt.args...)...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d (want %d): %s (want %q)", code, tt.code, errs, tt.want)
			}
			if _, ok := fleetReleases(t, url, tokenPath)["ids-4.1.25"]; ok {
				t.Fatal("a refused command stored a release")
			}
		})
	}

	t.Run("the release's rollout is stored as the envelope says", func(t *testing.T) {
		out, errs, code := fwctl3(t, append(append([]string{"fleet", "rollout", "--release", "ids-4.1.25"}, admin...), env)...)
		if code != 0 || !strings.Contains(out, "release ids-4.1.25: 3 stage(s) sent to the fleet server") {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		want := verified(t, env, filepath.Join(dir, "alice.pub")).Manifest.Release("ids-4.1.25").Rollout
		got := fleetReleases(t, url, tokenPath)["ids-4.1.25"].Rollout
		if got == nil || got.ID != want.ID || len(got.Stages) != len(want.Stages) {
			t.Fatalf("stored rollout %+v, want %+v", got, want)
		}
		for i := range want.Stages {
			if !got.Stages[i].At.Equal(want.Stages[i].At) || got.Stages[i].Percent != want.Stages[i].Percent {
				t.Fatalf("stage %d stored as %+v, want %+v", i+1, got.Stages[i], want.Stages[i])
			}
		}
	})
}

// TestRolloutStatusAndAdvanceReadTheFleetServersReports: status and
// advance with --server count the reports the fleet server verified, per
// stage of the envelope's rollout; advance refuses above the limit and
// opens the next stage within it.
func TestRolloutStatusAndAdvanceReadTheFleetServersReports(t *testing.T) {
	dir := t.TempDir()
	tokenPath, _ := writeToken(t, dir)
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath, "--enrolment", "open")
	admin := []string{"--server", url, "--admin-token-file", tokenPath}
	env, alice := stagedEnvelope(t, dir)
	keys := []string{"--key", alice + ".key", "--pub", alice + ".pub"}

	// Stage 1 (5%): two confirmed, one failed; a device of stage 2 is
	// not admitted yet and does not report.
	serials := serialsInBuckets(t, "ids-4.1.25", 0, 500, 3)
	for i, sn := range serials {
		c := fleetAgent(t, url, sn)
		if i == 2 {
			fleetReport(t, c, sn, fleet.ResultFailed, "badFlash")
		} else {
			fleetReport(t, c, sn, fleet.ResultInstalled)
		}
	}

	r := mustOK(t, append(append([]string{"rollout", "status", "--release", "ids-4.1.25", "--devices"}, admin...), env)...)
	for _, want := range []string{"stage 1 of 3 (5%)", "33.3%", "failures in stage 1 (5%): badFlash 1", serials[0], serials[2]} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("rollout status --server: stdout lacks %q:\n%s", want, r.stdout)
		}
	}

	before, _ := os.ReadFile(env)
	advance := func(rate string) result {
		args := append(append([]string{"rollout", "advance", "--release", "ids-4.1.25", "--max-failure-rate", rate}, admin...), keys...)
		return fwctl(t, append(args, env)...)
	}
	t.Run("above the limit nothing changes", func(t *testing.T) {
		r := advance("20%")
		if r.code != exitInvalid || !strings.Contains(r.stderr, "1 failed of 3 finished") || !strings.Contains(r.stderr, "above the 20% limit") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if after, _ := os.ReadFile(env); string(after) != string(before) {
			t.Fatal("a refused advance changed the envelope")
		}
	})
	t.Run("without the admin token it is a usage error", func(t *testing.T) {
		args := append([]string{"rollout", "advance", "--release", "ids-4.1.25", "--max-failure-rate", "50%", "--server", url}, keys...)
		r := fwctl(t, append(args, env)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--admin-token-file") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("within the limit the next stage opens", func(t *testing.T) {
		r := advance("50%")
		if r.code != 0 || !strings.Contains(r.stdout, "opened stage 2 of 3 (50%)") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		v := verified(t, env, alice+".pub")
		if cur, _ := v.Manifest.Release("ids-4.1.25").Rollout.Current(time.Now()); cur != 1 || v.Manifest.Serial != 12 {
			t.Fatalf("after advance: stage %d in force, serial %d; want stage 2, serial 12", cur+1, v.Manifest.Serial)
		}
	})
}

func TestFleetDevicesFiltersByModelAndRelease(t *testing.T) {
	dir := t.TempDir()
	tokenPath, _ := writeToken(t, dir)
	url, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath, "--enrolment", "open")
	admin := []string{"--server", url, "--admin-token-file", tokenPath}
	const ids, k2 = "iDS-9632NXI-I8/16S", "DS-7608NI-K2"
	for _, ci := range []fleet.CheckIn{
		// Working on r1.
		{Serial: "A", Model: ids, Firmware: "V4.1.24", Step: "download", ReleaseID: "r1", AgentVersion: "1"},
		// Last finished r1, idle.
		{Serial: "B", Model: k2, Firmware: "V4.2.0", Step: "idle", LastResult: fleet.ResultInstalled, LastReleaseID: "r1", AgentVersion: "1"},
		// Last finished r0.
		{Serial: "C", Model: ids, Firmware: "V4.1.20", Step: "idle", LastResult: fleet.ResultInstalled, LastReleaseID: "r0", AgentVersion: "1"},
	} {
		_, priv, _ := ed25519.GenerateKey(nil)
		if _, err := fleet.NewClient(url, fleet.NewDeviceKey(priv)).CheckIn(context.Background(), ci); err != nil {
			t.Fatalf("check-in of %s: %v", ci.Serial, err)
		}
	}
	for _, tt := range []struct {
		name string
		args []string
		want string // serials, in order
	}{
		{"--model lists the devices of that model", []string{"--model", ids}, "A C"},
		{"--release lists the devices working on or last finishing it", []string{"--release", "r1"}, "A B"},
		{"--model and --release together list the devices matching both", []string{"--model", k2, "--release", "r1"}, "B"},
		{"--release of an older release lists its last finishers", []string{"--release", "r0"}, "C"},
		{"an unknown model lists no device", []string{"--model", "DS-0000"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := fwctl3(t, append(append([]string{"fleet", "devices", "--json"}, admin...), tt.args...)...)
			var devs []server.DeviceJSON
			if code != 0 || json.Unmarshal([]byte(out), &devs) != nil {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			var got []string
			for _, d := range devs {
				got = append(got, d.Serial)
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("listed %v, want %s", got, tt.want)
			}
		})
	}
	t.Run("the table shows the filtered devices", func(t *testing.T) {
		out, errs, code := fwctl3(t, append([]string{"fleet", "devices", "--model", k2}, admin...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], "B ") || !strings.Contains(lines[1], k2) || !strings.Contains(errs, "1 device(s)") {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
	})
}

func TestFleetServeLimitsEachSourceAddress(t *testing.T) {
	dir := t.TempDir()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	t.Run("loopback is exempt by default", func(t *testing.T) {
		url, _ := startFleetServe(t, "--db", filepath.Join(dir, "default.db"))
		for i := range server.DefaultReadBurst + 10 {
			if st, _ := get(url); st != http.StatusOK {
				t.Fatalf("read %d from loopback: %d", i+1, st)
			}
		}
	})
	t.Run("the flags set the limits and an explicit 0 is no limit", func(t *testing.T) {
		url, _ := startFleetServe(t, "--db", filepath.Join(dir, "limited.db"), "--rate-exempt", "", "--read-rate", "0.001", "--read-burst", "1", "--write-rate", "0")
		if st, _ := get(url); st != http.StatusOK {
			t.Fatalf("first read: %d", st)
		}
		if st, retry := get(url); st != http.StatusTooManyRequests || retry != "1000" {
			t.Fatalf("second read: %d, Retry-After %q; want 429, 1000", st, retry)
		}
		for i := range 20 {
			resp, err := http.Post(url+fleet.CheckInPath, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("write %d with --write-rate 0: %d, want 400 (not limited)", i+1, resp.StatusCode)
			}
		}
	})
	for _, c := range []struct {
		name string
		args []string
	}{
		{"a burst of 0 would refuse everything", []string{"--write-burst", "0"}},
		{"a negative rate", []string{"--read-rate", "-1"}},
		{"negative wrong tokens", []string{"--auth-failures", "-1"}},
		{"an exempt network that is not one", []string{"--rate-exempt", "10.0.0.0/8,the-proxy"}},
		{"plain HTTP behind a proxy without saying what to exempt", []string{"--insecure-listen", "--listen", "0.0.0.0:0"}},
	} {
		t.Run(c.name+" is a usage error naming the flag", func(t *testing.T) {
			_, errs, code := fwctl3(t, append([]string{"fleet", "serve", "--db", filepath.Join(dir, "refused.db")}, c.args...)...)
			if code != exitUsage || !strings.Contains(errs, c.args[0]) {
				t.Fatalf("exit %d: %s", code, errs)
			}
		})
	}
	t.Run("--insecure-listen on loopback starts without --rate-exempt: a proxy on this host is exempt already", func(t *testing.T) {
		_, errs := startFleetServe(t, "--db", filepath.Join(dir, "local-proxy.db"), "--insecure-listen")
		if strings.Contains(errs.String(), "--rate-exempt") {
			t.Fatalf("complains: %s", errs)
		}
	})
	t.Run("--insecure-listen starts with an explicit --rate-exempt, even an empty one", func(t *testing.T) {
		_, errs := startFleetServe(t, "--db", filepath.Join(dir, "proxied.db"), "--insecure-listen", "--rate-exempt", "")
		if strings.Contains(errs.String(), "--rate-exempt") {
			t.Fatalf("complains: %s", errs)
		}
	})
}
