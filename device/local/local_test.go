package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/device"
)

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newDevice(t *testing.T, cfg Config) (*Device, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	l := logrus.New()
	l.SetOutput(logs)
	l.SetLevel(logrus.DebugLevel)
	cfg.Logger = l
	// Timings the case leaves out, explicit and short (New has no defaults).
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&cfg.PollInterval, time.Millisecond}, {&cfg.InstallTimeout, 20 * time.Second},
		{&cfg.CommandTimeout, 10 * time.Second}, {&cfg.RebootTimeout, 10 * time.Second}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, logs
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    device.Identity
		wantErr string
	}{
		{"key=value lines with comments and quotes", "# written by the vendor\nmodel=iDS-9632NXI-I8/16S\nserial = S1\nfirmware_version=\"V4.1.25\"\nfirmware_build=build 200316\ndevice_type=NVR\n\nextra=1\n",
			device.Identity{Model: "iDS-9632NXI-I8/16S", Serial: "S1", FirmwareVersion: "V4.1.25", FirmwareBuild: "build 200316", DeviceType: "NVR"}, ""},
		{"a JSON object", `{"model":"M","serial":"S","firmware_version":"4.1.25","device_type":"NVR","slots":16}`,
			device.Identity{Model: "M", Serial: "S", FirmwareVersion: "4.1.25", DeviceType: "NVR"}, ""},
		{"ISAPI field names", "model=M\nserialNumber=S\nfirmwareVersion=V1\nfirmwareReleasedDate=build 1\n",
			device.Identity{Model: "M", Serial: "S", FirmwareVersion: "V1", FirmwareBuild: "build 1"}, ""},
		{"a missing model", "firmware_version=1\n", device.Identity{}, "lacks model"},
		{"a missing version", "model=M\n", device.Identity{}, "lacks firmware_version"},
		{"a line that is not key=value", "model=M\nfirmware\n", device.Identity{}, "line 2 is not key=value"},
		{"a repeated key", "model=M\nmodel=N\nfirmware_version=1\n", device.Identity{}, "repeats the key"},
		{"two names for one field that disagree", "model=M\nfirmware_version=1\nfirmwareVersion=2\n", device.Identity{}, "twice"},
		{"a JSON value that is not a string", `{"model":["M"],"firmware_version":"1"}`, device.Identity{}, "must be a string"},
		{"broken JSON", `{"model":`, device.Identity{}, "identity JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseIdentity([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Model != tt.want.Model || id.Serial != tt.want.Serial || id.FirmwareVersion != tt.want.FirmwareVersion || id.FirmwareBuild != tt.want.FirmwareBuild || id.DeviceType != tt.want.DeviceType {
				t.Errorf("identity = %+v, want %+v", id, tt.want)
			}
		})
	}
}

func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte("model=M\nfirmware_version=1\n"))
	f.Add([]byte(`{"model":"M","firmware_version":"1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseIdentity(b)
		if err == nil && (id.Model == "" || id.FirmwareVersion == "") {
			t.Errorf("accepted an identity without model or version: %+v", id)
		}
	})
}

func TestIdentifyFromFileAndCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "identity")
	if err := os.WriteFile(file, []byte("model=M\nfirmware_version=V4.1.25\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := script(t, dir, "id.sh", "echo model=M\necho firmware_version=V4.1.25\necho noise on stderr >&2\n")
	for name, cfg := range map[string]Config{
		"an identity file is read":        {IdentityFile: file},
		"an identity command's output is": {IdentityCommand: []string{cmd}},
	} {
		t.Run(name, func(t *testing.T) {
			d, _ := newDevice(t, cfg)
			id, err := d.Identify(ctx(t))
			if err != nil || id.Model != "M" || id.FirmwareVersion != "V4.1.25" {
				t.Errorf("Identify = %+v, %v", id, err)
			}
		})
	}
	t.Run("a missing identity file is a transient error", func(t *testing.T) {
		d, _ := newDevice(t, Config{IdentityFile: filepath.Join(dir, "nope")})
		_, err := d.Identify(ctx(t))
		if !device.IsTransient(err) {
			t.Errorf("err = %v, want transient", err)
		}
	})
}

func TestInstallRunsTheCommandWithTheImageAsOneArgument(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "image with spaces; $(touch pwned).dav")
	if err := os.WriteFile(img, []byte("image"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "args")
	inst := script(t, dir, "install.sh", `for a in "$@"; do printf '%s\n' "$a" >> '`+got+`'; done
echo progress=40
echo "PROGRESS: 80%"
echo writing flash >&2
`)
	tests := []struct {
		name string
		cmd  []string
		want []string
	}{
		{"the {image} token is replaced", []string{inst, "--file", "{image}", "--yes"}, []string{"--file", img, "--yes"}},
		{"the token inside an argument is replaced", []string{inst, "--file={image}"}, []string{"--file=" + img}},
		{"without a token the image is appended", []string{inst, "-v"}, []string{"-v", img}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(got)
			d, logs := newDevice(t, Config{IdentityFile: "x", InstallCommand: tt.cmd})
			var mu sync.Mutex
			var pcts []int64
			err := d.Install(ctx(t), img, func(p device.InstallProgress) {
				mu.Lock()
				defer mu.Unlock()
				pcts = append(pcts, p.Done)
			})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(got)
			if args := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); strings.Join(args, "|") != strings.Join(tt.want, "|") {
				t.Errorf("args = %q, want %q", args, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Error("the image path went through a shell")
			}
			mu.Lock()
			if fmt.Sprint(pcts) != "[0 40 80 100]" {
				t.Errorf("progress = %v, want [0 40 80 100]", pcts)
			}
			mu.Unlock()
			if !strings.Contains(logs.String(), "writing flash") || !strings.Contains(logs.String(), "progress=40") {
				t.Errorf("command output not logged: %s", logs.String())
			}
		})
	}
}

func TestCommandFailures(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.dav")
	if err := os.WriteFile(img, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cmd       []string
		timeout   time.Duration
		code      string
		transient bool
		msg       string
	}{
		{"a failing command names its status and last error line", []string{script(t, dir, "fail.sh", "echo bad image header >&2\nexit 3\n")}, time.Minute, "exit3", false, "bad image header"},
		{"exit status 75 is a temporary failure", []string{script(t, dir, "tempfail.sh", "exit 75\n")}, time.Minute, "exit75", true, "exit status 75"},
		{"a command that does not exist", []string{filepath.Join(dir, "missing")}, time.Minute, "commandFailed", false, "cannot start"},
		{"a command past its timeout is killed with its children", []string{script(t, dir, "hang.sh", "sleep 60 &\nsleep 60\n")}, 100 * time.Millisecond, "timeout", false, "did not finish within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newDevice(t, Config{IdentityFile: "x", InstallCommand: tt.cmd, InstallTimeout: tt.timeout})
			start := time.Now()
			err := d.Install(ctx(t), img, nil)
			var de *device.Error
			if !errors.As(err, &de) || de.Op != "install" || de.Code != tt.code || de.Transient != tt.transient || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v (%+v), want code %s transient %v mentioning %q", err, de, tt.code, tt.transient, tt.msg)
			}
			if time.Since(start) > 20*time.Second {
				t.Error("the timeout did not stop the command and its children")
			}
		})
	}
	t.Run("an unconfigured install command is refused", func(t *testing.T) {
		d, _ := newDevice(t, Config{IdentityFile: "x"})
		if err := d.Install(ctx(t), img, nil); !errors.Is(err, ErrNotConfigured) {
			t.Errorf("err = %v, want ErrNotConfigured", err)
		}
	})
}

func TestRebootAndWaitReady(t *testing.T) {
	dir := t.TempDir()
	idFile := filepath.Join(dir, "identity")
	// The reboot command removes the identity; the "boot" (a background
	// job of the script) writes the new one back.
	reboot := script(t, dir, "reboot.sh", `rm -f '`+idFile+`'
( printf 'model=M\nfirmware_version=V4.1.25\n' > '`+idFile+`.tmp' && mv '`+idFile+`.tmp' '`+idFile+`' ) &
`)
	if err := os.WriteFile(idFile, []byte("model=M\nfirmware_version=V4.1.20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := newDevice(t, Config{IdentityFile: idFile, RebootCommand: []string{reboot}, RebootTimeout: 10 * time.Second})
	if err := d.Reboot(ctx(t)); err != nil {
		t.Fatal(err)
	}
	id, err := d.WaitReady(ctx(t))
	if err != nil || id.FirmwareVersion != "V4.1.25" {
		t.Errorf("WaitReady = %+v, %v; want V4.1.25", id, err)
	}

	t.Run("a device that never comes back times out", func(t *testing.T) {
		d, _ := newDevice(t, Config{IdentityFile: filepath.Join(dir, "never"), RebootTimeout: 50 * time.Millisecond})
		_, err := d.WaitReady(ctx(t))
		var de *device.Error
		if !errors.As(err, &de) || de.Code != "rebootTimeout" || !errors.Is(err, device.ErrUnreachable) {
			t.Errorf("err = %v, want rebootTimeout", err)
		}
	})
}

func TestInstallStatus(t *testing.T) {
	dir := t.TempDir()
	t.Run("a status command is parsed", func(t *testing.T) {
		st := script(t, dir, "status.sh", "echo upgrading=true\necho percent=42\n")
		d, _ := newDevice(t, Config{IdentityFile: "x", StatusCommand: []string{st}})
		got, err := d.InstallStatus(ctx(t))
		if err != nil || got != (device.InstallStatus{Upgrading: true, Percent: 42}) {
			t.Errorf("InstallStatus = %+v, %v", got, err)
		}
	})
	t.Run("a status command without upgrading is refused", func(t *testing.T) {
		st := script(t, dir, "status2.sh", "echo percent=42\n")
		d, _ := newDevice(t, Config{IdentityFile: "x", StatusCommand: []string{st}})
		if _, err := d.InstallStatus(ctx(t)); err == nil {
			t.Error("accepted a status without upgrading")
		}
	})
	t.Run("without a status command it reports an install in progress", func(t *testing.T) {
		d, _ := newDevice(t, Config{IdentityFile: "x"})
		if got, err := d.InstallStatus(ctx(t)); err != nil || got.Upgrading {
			t.Errorf("InstallStatus = %+v, %v; want idle", got, err)
		}
	})
}

func TestNewRefusesBadConfigs(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no identity source":   {},
		"two identity sources": {IdentityFile: "f", IdentityCommand: []string{"id"}},
		"an empty program":     {IdentityFile: "f", InstallCommand: []string{""}},
		"no timings":           {IdentityFile: "f"},
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			if _, err := New(cfg); !errors.Is(err, ErrConfig) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestLineWriterCutsLongLinesAndFlushesTheLast(t *testing.T) {
	var lines []string
	w := &lineWriter{f: func(s string) { lines = append(lines, s) }}
	w.Write([]byte("a\r\nb"))
	w.Write([]byte("c\n" + strings.Repeat("x", maxLogLine+10) + "\nend"))
	w.Flush()
	if len(lines) != 4 || lines[0] != "a" || lines[1] != "bc" || len(lines[2]) != maxLogLine || lines[3] != "end" {
		t.Errorf("lines = %q", lines)
	}
}
