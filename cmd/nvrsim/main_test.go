package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/icholy/digest"
)

// lines is a writer that hands every complete line to a channel.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.ch <- strings.TrimSpace(line)
	}
}

// startCmd runs the simulator command until the test ends and returns the
// lines it printed at start-up.
func startCmd(t *testing.T, args ...string) (printed []string, stop func() error) {
	t.Helper()
	out := &lines{ch: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0", "--log-level", "error"}, args...), out, io.Discard)
	}()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case l := <-out.ch:
			printed = append(printed, l)
			if strings.HasPrefix(l, "state: ") {
				stopped := false
				stop = func() error {
					if stopped {
						return nil
					}
					stopped = true
					cancel()
					return <-done
				}
				t.Cleanup(func() { _ = stop() })
				return printed, stop
			}
		case err := <-done:
			cancel()
			t.Fatalf("nvrsim stopped at start-up: %v (printed %q)", err, printed)
		case <-timeout.C:
			cancel()
			t.Fatalf("nvrsim printed no URL: %q", printed)
		}
	}
}

var urlRe = regexp.MustCompile(`at (https?://\S+)`)

func TestServeAnswersISAPIAndStopsCleanly(t *testing.T) {
	printed, stop := startCmd(t, "--model", "DS-7608NI-K2", "--firmware", "4.62.210", "--variant", "standard",
		"--serial", "S42", "--user", "op", "--password", "pw", "--namespace", "hikvision")
	m := urlRe.FindStringSubmatch(printed[0])
	if m == nil {
		t.Fatalf("no URL in %q", printed)
	}
	c := &http.Client{Transport: &digest.Transport{Username: "op", Password: "pw"}}
	res, err := c.Get(m[1] + "/ISAPI/System/deviceInfo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"<model>DS-7608NI-K2</model>", "<firmwareVersion>V4.62.210</firmwareVersion>", "hikvision.com/ver20", "<serialNumber>S42</serialNumber>"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("deviceInfo lacks %s:\n%s", want, body)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestServeOverHTTPSPrintsTheFingerprint(t *testing.T) {
	printed, _ := startCmd(t, "--https")
	joined := strings.Join(printed, "\n")
	if !strings.Contains(joined, "at https://") || !regexp.MustCompile(`certificate sha256: [0-9a-f]{64}`).MatchString(joined) {
		t.Errorf("printed %q, want an https URL and a fingerprint", printed)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"--namespace", "onvif", "--listen", "127.0.0.1:0"},
		{"--variant", "beta", "--listen", "127.0.0.1:0"},
		{"--reboot-seconds", "-1"},
		{"mkimage"},
		{"mkimage", "-o", "x.dav", "--variant", "beta"},
		{"mkimage", "-o", "x.dav", "--corrupt", "nope"},
		{"nonsense"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if cli.ExitCode("nvrsim", err, io.Discard) != cli.ExitUsage {
			t.Errorf("%q: error %v, want a usage error (exit 2)", args, err)
		}
	}
}

func TestMkimageWritesAValidImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digicap.dav")
	var out bytes.Buffer
	err := run(context.Background(), []string{"mkimage", "--model", "iDS-9632NXI-I8/S", "--version", "4.1.30", "--variant", "standard", "--size", "100000", "-o", path}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if len(b) != 100000 || !strings.Contains(out.String(), hex.EncodeToString(sum[:])) || !strings.Contains(out.String(), "100000 bytes") {
		t.Errorf("size %d, printed %q", len(b), out.String())
	}
	id, err := testimage.ReadIdentity(bytes.NewReader(b), int64(len(b)))
	if err != nil || id.Model != "iDS-9632NXI-I8/S" || id.Version != "4.1.30" || id.Variant != "standard" {
		t.Errorf("identity %+v, %v", id, err)
	}
}

func TestMkimageWritesTheBuildIntoTheImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digicap.dav")
	var out bytes.Buffer
	err := run(context.Background(), []string{"mkimage", "--version", "4.1.25", "--build", "200316", "--variant", "custom", "-o", path}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "4.1.25 build 200316 custom") {
		t.Errorf("printed %q", out.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := testimage.ReadIdentity(bytes.NewReader(b), int64(len(b)))
	if err != nil || id.Build != "200316" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	if err := run(context.Background(), []string{"mkimage", "--build", "b200316", "-o", path}, io.Discard, io.Discard); cli.ExitCode("nvrsim", err, io.Discard) != cli.ExitUsage {
		t.Errorf("--build with letters: %v, want a usage error", err)
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "nvrsim ") || !strings.Contains(out.String(), "(commit ") {
		t.Errorf("--version: %v, printed %q", err, out.String())
	}
}

func TestServeTakesTheHealthFlags(t *testing.T) {
	printed, _ := startCmd(t, "--disks", "ok,formating,error", "--channels", "4", "--old-firmware=false",
		"--fault-disk-status", "1=reparing", "--fault-channels-lost-after-flash", "2", "--fault-export-fails", "--config-size", "1000")
	m := urlRe.FindStringSubmatch(printed[0])
	if m == nil {
		t.Fatalf("no URL in %q", printed)
	}
	res, err := http.Get(m[1] + "/debug/state")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`"status": "reparing"`, `"status": "formating"`, `"status": "error"`, `"channels_lost_after_flash": 2`, `"export_fails": true`, `"id": 4`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("state lacks %s:\n%s", want, body)
		}
	}
	c := &http.Client{Transport: &digest.Transport{Username: "admin", Password: "admin12345"}}
	res, err = c.Get(m[1] + "/ISAPI/System/configurationData")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Errorf("export answered %d, want the 500 of --fault-export-fails", res.StatusCode)
	}
}

func TestOldFirmwareFlagRemovesTheHealthEndpoints(t *testing.T) {
	printed, _ := startCmd(t, "--old-firmware", "--channels", "0")
	m := urlRe.FindStringSubmatch(printed[0])
	c := &http.Client{Transport: &digest.Transport{Username: "admin", Password: "admin12345"}}
	res, err := c.Get(m[1] + "/ISAPI/ContentMgmt/Storage")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("Storage answered %d, want 404", res.StatusCode)
	}
}
