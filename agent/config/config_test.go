package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/manifest"
)

// minimal is the smallest valid configuration.
const minimal = `
device:
  backend: isapi
  isapi:
    url: https://192.0.2.10
    username: admin
    password_file: pw
`

func TestExampleFileParsesWithEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../packaging/agent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "agent.example.yaml")
	if err != nil {
		t.Fatalf("example does not parse: %v", err)
	}
	if c.Download.BandwidthLimit != 2_000_000 {
		t.Errorf("bandwidth_limit = %d, want 2000000", c.Download.BandwidthLimit)
	}
	if c.Manifest.MaxSize != DefaultManifestMaxSize {
		t.Errorf("example manifest.max_size = %d; the documented default is %d", c.Manifest.MaxSize, DefaultManifestMaxSize)
	}
	if len(c.Windows) != 3 || c.Manifest.MaxImageSize != 4<<30 {
		t.Errorf("windows %v, max image %d", c.Windows, c.Manifest.MaxImageSize)
	}
	if got := c.Device.ISAPI.CertSHA256; len(got) != 64 || strings.Contains(got, ":") {
		t.Errorf("cert_sha256 not normalised: %q", got)
	}
	// Every key the decoder knows appears in the example (commented or not).
	text := string(data)
	for _, key := range []string{"terms_accepted", "backend", "url", "username", "password_file", "password_env", "password:",
		"allow_basic", "ca_file", "cert_sha256", "insecure_skip_verify", "request_timeout", "upload_timeout", "flash_timeout",
		"reboot_timeout", "poll_interval", "retry_max", "identity_file", "identity_command", "install_command", "reboot_command",
		"status_command", "install_timeout", "command_timeout", "urls", "keys", "threshold", "max_skew", "max_size",
		"max_image_size", "state_dir", "interval", "jitter", "maintenance_windows", "bandwidth_limit", "stall_timeout",
		"free_space_margin", "allow_downgrade", "pins", "groups", "token_file", "token_env", "queue_max", "dir", "level",
		"max_size_mb", "retention_days", "max_backups", "listen", "max_attempts"} {
		if !strings.Contains(text, key) {
			t.Errorf("example file lacks key %s", key)
		}
	}
	// Every key of the definition is in the example, in its section.
	for _, k := range Keys {
		parts := strings.Split(k.Path, ".")
		indent := strings.Repeat("  ", len(parts)-1)
		name := parts[len(parts)-1] + ":"
		if !strings.Contains(text, "\n"+indent+name) && !strings.Contains(text, "\n"+indent+"# "+name) {
			t.Errorf("example file lacks %s (as %q at indent %d)", k.Path, name, len(indent))
		}
	}
}

func TestDefaultsAreAppliedAndExplicitZerosKept(t *testing.T) {
	c, err := Parse([]byte(minimal+"poll:\n  jitter: 0s\n"), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"state_dir", c.StateDir, DefaultStateDir},
		{"poll.interval", c.Poll.Interval, 6 * time.Hour},
		{"poll.jitter kept at zero", c.Poll.Jitter, time.Duration(0)},
		{"threshold", c.Manifest.Threshold, 1},
		{"max_skew", c.Manifest.MaxSkew, 5 * time.Minute},
		{"manifest max_size is the envelope limit", c.Manifest.MaxSize, int64(manifest.MaxEnvelopeSize)},
		{"stall_timeout", c.Download.StallTimeout, 60 * time.Second},
		{"queue_max", c.Report.QueueMax, 1000},
		{"log dir", c.Log.Dir, DefaultLogDir},
		{"max_size_mb", c.Log.MaxSizeMB, 10},
		{"retention_days", c.Log.RetentionDays, 30},
		{"max_attempts", c.MaxAttempts, 3},
		{"terms not accepted", c.TermsAccepted, false},
		{"config backup required", c.Install.ConfigBackup, BackupRequired},
		{"health_timeout", c.Confirm.HealthTimeout, 10 * time.Minute},
		{"channel_tolerance", c.Confirm.ChannelTolerance, 0},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestHealthAndBackupKeys(t *testing.T) {
	c, err := Parse([]byte(minimal+"install:\n  config_backup: off\nconfirm:\n  health_timeout: 0s\n  channel_tolerance: 2\n"), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Install.ConfigBackup != BackupOff || c.Confirm.HealthTimeout != 0 || c.Confirm.ChannelTolerance != 2 {
		t.Errorf("install %+v confirm %+v: want off, an explicit 0 kept, 2", c.Install, c.Confirm)
	}
}

func TestBadInputIsRefusedNamingKeyAndLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"an unknown top-level key", minimal + "pol:\n  interval: 6h\n", "agent.yaml:8: pol: unknown key"},
		{"a misspelt key suggests the right one", minimal + "poll:\n  Interval: 6h\n", "agent.yaml:9: poll.Interval: unknown key (did you mean interval?)"},
		{"a bad duration", minimal + "poll:\n  interval: 5x\n", `agent.yaml:9: poll.interval: "5x" is not a duration (use e.g. 6h`},
		{"a negative duration", minimal + "poll:\n  jitter: -5m\n", `poll.jitter: "-5m" is negative`},
		{"a zero interval", minimal + "poll:\n  interval: 0s\n", "agent.yaml:9: poll.interval: must be more than zero"},
		{"a word for a boolean", minimal + "terms_accepted: yes\n", `agent.yaml:8: terms_accepted: "yes" is not true or false`},
		{"a bad size", minimal + "download:\n  bandwidth_limit: 2XB/s\n", `download.bandwidth_limit: "2XB/s" is not a size`},
		{"a bandwidth that rounds to 0 (unlimited)", minimal + "download:\n  bandwidth_limit: 0.4\n", `download.bandwidth_limit: "0.4" is less than one byte`},
		{"a bad window", minimal + "maintenance_windows: [\"Sat 2am-4am\"]\n", `agent.yaml:8: maintenance_windows[0]: "Sat 2am-4am" is not a window`},
		{"an unknown day", minimal + "maintenance_windows: [\"Sam 02:00-04:00\"]\n", `unknown day "Sam"`},
		{"an empty window", minimal + "maintenance_windows: [\"daily 02:00-02:00\"]\n", "start and end are equal"},
		{"a key written twice", minimal + "max_attempts: 2\nmax_attempts: 3\n", "agent.yaml:9: max_attempts: written twice"},
		{"a string where a number goes", minimal + "max_attempts: three\n", `max_attempts: "three" is not a whole number`},
		{"zero attempts", minimal + "max_attempts: 0\n", "max_attempts: 0 is too small (at least 1)"},
		{"an unknown backup mode", minimal + "install:\n  config_backup: sometimes\n", `install.config_backup: "sometimes" is not one of required, best_effort, off`},
		{"a negative channel tolerance", minimal + "confirm:\n  channel_tolerance: -1\n", "confirm.channel_tolerance: -1 is too small (at least 0)"},
		{"a mapping where a list goes", minimal + "groups:\n  a: b\n", "groups: expected a list"},
		{"no backend", "terms_accepted: true\n", "device.backend: missing"},
		{"an unknown backend", "device:\n  backend: ssh\n", `agent.yaml:2: device.backend: "ssh" is not a backend`},
		{"an isapi url missing", "device:\n  backend: isapi\n  isapi:\n    username: a\n    password: b\n", "device.isapi.url: missing"},
		{"an isapi url with credentials", "device:\n  backend: isapi\n  isapi:\n    url: https://u:p@h\n    username: a\n    password: b\n", "must not carry credentials"},
		{"no password source", "device:\n  backend: isapi\n  isapi:\n    url: https://h\n    username: a\n", "password_file: missing"},
		{"two password sources", minimal + "    password_env: X\n", "device.isapi.password: given more than once"},
		{"basic auth over http", "device:\n  backend: isapi\n  isapi:\n    url: http://h\n    username: a\n    password: b\n    allow_basic: true\n", "allow_basic: Basic auth sends the password in clear"},
		{"a pinned fingerprint with insecure_skip_verify", minimal + "    cert_sha256: " + strings.Repeat("ab", 32) + "\n    insecure_skip_verify: true\n", "agent.yaml:9: device.isapi.insecure_skip_verify: set together with cert_sha256"},
		{"a short fingerprint", minimal + "    cert_sha256: abcd\n", "cert_sha256: not a SHA-256 fingerprint"},
		{"manifest urls without keys", minimal + "manifest:\n  urls: [https://x/m]\n", "manifest.keys: missing"},
		{"a threshold above the number of keys", minimal + "manifest:\n  keys: [a.pem]\n  threshold: 2\n", "agent.yaml:10: manifest.threshold: 2 signatures required but only 1 keys"},
		{"one key file written two ways", minimal + "manifest:\n  keys: [a.pub, ./a.pub]\n", "manifest.keys[1]: ./a.pub is listed twice"},
		{"a threshold above the distinct keys", minimal + "manifest:\n  keys: [a.pub, ./a.pub]\n  threshold: 2\n", "manifest.threshold: 2 signatures required but only 1 keys"},
		{"a key listed twice", minimal + "manifest:\n  keys: [a.pem, a.pem]\n", "manifest.keys[1]: a.pem is listed twice"},
		{"an ftp manifest url", minimal + "manifest:\n  urls: [ftp://x/m]\n  keys: [a.pem]\n", "agent.yaml:9: manifest.urls[0]: \"ftp://x/m\": the scheme must be http, https, file"},
		{"a bad pin", minimal + "policy:\n  pins:\n    M1: [abc]\n", `agent.yaml:10: policy.pins.M1[0]: "abc" is not a SHA-256 digest`},
		{"the same model pinned twice in different case", minimal + "policy:\n  pins:\n    m1: [" + strings.Repeat("a", 64) + "]\n    M1: [" + strings.Repeat("b", 64) + "]\n", "models compare without case"},
		{"a bad log level", minimal + "log:\n  level: loud\n", `agent.yaml:9: log.level: "loud" is not a level`},
		{"a status endpoint open to the network without a token", minimal + "status:\n  listen: 0.0.0.0:9876\n", "agent.yaml:9: status.listen: \"0.0.0.0:9876\" is not a loopback address and status.token_file is not set: the agent refuses to start"},
		{"a status endpoint on all interfaces without a token", minimal + "status:\n  listen: :9876\n", "the agent refuses to start"},
		{"a local backend without identity", "device:\n  backend: local\n  local:\n    install_command: [x]\n", "device.local: missing identity_file or identity_command"},
		{"a local backend without install command", "device:\n  backend: local\n  local:\n    identity_file: /x\n", "device.local.install_command: missing"},
		{"a shell string where argv goes", "device:\n  backend: local\n  local:\n    identity_file: /x\n    install_command: flash --now\n", "device.local.install_command: expected a list"},
		{"two documents", minimal + "---\nstate_dir: /x\n", "a second YAML document"},
		{"broken YAML", "device: [\n", "not valid YAML"},
		{"a report url that is not http", minimal + "report:\n  url: mailto:x@y\n", "report.url"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) { refused(t, tc.yaml, tc.want) })
	}
}

// refused checks that Parse refuses yaml (as agent.yaml) with an error
// that contains want and, unless it is not YAML at all, is ErrInvalid.
func refused(t *testing.T, yaml, want string) {
	t.Helper()
	_, err := Parse([]byte(yaml), "agent.yaml")
	if err == nil {
		t.Fatalf("accepted:\n%s", yaml)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, want)
	}
	if !errors.Is(err, ErrInvalid) && !strings.Contains(want, "YAML") {
		t.Errorf("errors.Is(err, ErrInvalid) is false for %v", err)
	}
}

func TestValuesAreParsed(t *testing.T) {
	c, err := Parse([]byte(`
manifest:
  urls: ["https://a/m", "file:///media/usb/m"]
  keys: [k1.pem, k2.pem]
  threshold: 2
  max_size: 512KiB
download:
  bandwidth_limit: 500KiB/s
  free_space_margin: 1048576
poll:
  interval: 1d12h
groups: [pilot, north]
status:
  listen: localhost:9876
policy:
  pins:
    iDS-9632NXI-I8/16S: ["`+strings.Repeat("AB", 32)+`"]
device:
  backend: isapi
  isapi:
    url: https://192.0.2.10
    username: admin
    password_file: pw
    cert_sha256: "sha256:`+strings.Repeat("CD:", 31)+`CD"
`), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Manifest.MaxSize != 512*1024 || c.Download.BandwidthLimit != 500*1024 || c.Download.FreeSpaceMargin != 1<<20 {
		t.Errorf("sizes: %d %d %d", c.Manifest.MaxSize, c.Download.BandwidthLimit, c.Download.FreeSpaceMargin)
	}
	if c.Poll.Interval != 36*time.Hour {
		t.Errorf("interval %v", c.Poll.Interval)
	}
	if got := c.Device.ISAPI.CertSHA256; got != strings.Repeat("cd", 32) {
		t.Errorf("fingerprint not normalised: %s", got)
	}
	if got := c.Policy.Pins["iDS-9632NXI-I8/16S"][0]; got != strings.Repeat("ab", 32) {
		t.Errorf("pin not lowercased: %s", got)
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	sizes := map[string]int64{"0": 0, "123": 123, "1KB": 1000, "1kib": 1024, "2MB/s": 2_000_000, "1.5MiB": 1572864, "1GiB": 1 << 30}
	for in, want := range sizes {
		got, err := ParseSize(in, true)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("2MB/s", false); err == nil {
		t.Error("a bandwidth was accepted as a plain size")
	}
	durs := map[string]time.Duration{"0": 0, "90s": 90 * time.Second, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour}
	for in, want := range durs {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "5", "1d-1h", "99999999999999999999d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadResolvesSecretsAndRelativePaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), "s3cret-pass\n")
	writeFile(t, filepath.Join(dir, "k.pem"), "-----BEGIN PUBLIC KEY-----\n")
	t.Setenv("FWAGENT_TEST_TOKEN", "tok-1234567890abcdef")
	path := filepath.Join(dir, "agent.yaml")
	writeFile(t, path, minimal+`
state_dir: state
manifest:
  urls: [https://x/m]
  keys: [k.pem]
report:
  url: https://r/x
  token_env: FWAGENT_TEST_TOKEN
`)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Device.ISAPI.Password != "s3cret-pass" || c.Report.Token != "tok-1234567890abcdef" {
		t.Errorf("secrets not resolved: %q %q", c.Device.ISAPI.Password, c.Report.Token)
	}
	if c.StateDir != filepath.Join(dir, "state") || c.Manifest.Keys[0] != filepath.Join(dir, "k.pem") {
		t.Errorf("relative paths not resolved: %s %v", c.StateDir, c.Manifest.Keys)
	}

	t.Run("the redacted copy and its YAML hold no secret", func(t *testing.T) {
		out, err := c.RedactedYAML()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{string(out), c.String()} {
			if strings.Contains(s, "s3cret") || strings.Contains(s, "tok-123") {
				t.Fatalf("secret leaked:\n%s", s)
			}
			if !strings.Contains(s, "password_file: "+filepath.Join(dir, "pw")) || !strings.Contains(s, "poll:") {
				t.Fatalf("redacted YAML lacks the marker or keys:\n%s", s)
			}
		}
		if c.Device.ISAPI.Password != "s3cret-pass" {
			t.Error("Redacted changed the original")
		}
		back, err := Parse(out, "redacted.yaml")
		if err != nil {
			t.Fatalf("redacted YAML does not parse back: %v", err)
		}
		if back.Poll.Interval != c.Poll.Interval || len(back.Windows) != len(c.Windows) {
			t.Error("redacted YAML lost values")
		}
	})
}

func TestRedactedHidesInlineSecretsAndURLPasswords(t *testing.T) {
	c, err := Parse([]byte(`
device:
  backend: isapi
  isapi:
    url: https://192.0.2.10
    username: admin
    password: inline-pass
report:
  url: https://user:urlpass@r.example/x
  token: inline-token
`), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.RedactedYAML()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range []string{"inline-pass", "inline-token", "urlpass"} {
		if strings.Contains(s, secret) {
			t.Errorf("%s leaked:\n%s", secret, s)
		}
	}
	if strings.Count(s, Redacted) != 3 {
		t.Errorf("want 3 markers:\n%s", s)
	}
}

func TestLoadRefusesMissingSecretsWithoutPrintingThem(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, extra, want string }{
		{"a missing password file", "", "device.isapi.password_file: cannot read the secret file"},
		{"an unset token variable", "report:\n  url: https://r\n  token_env: FWAGENT_UNSET_VAR_FOR_TEST\n", "report.token_env: environment variable FWAGENT_UNSET_VAR_FOR_TEST is not set"},
		{"a missing key file", "manifest:\n  keys: [nope.pem]\n", "manifest.keys[0]: cannot read the key file"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			path := filepath.Join(dir, "agent.yaml")
			writeFile(t, path, minimal+tc.extra)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("a missing file says what to do", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "absent.yaml"))
		if err == nil || !strings.Contains(err.Error(), "--config") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a non-loopback status address with a token file is accepted", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "pw"), "x")
		writeFile(t, filepath.Join(dir, "st"), "status-token-0123456789\n")
		path := filepath.Join(dir, "agent.yaml")
		writeFile(t, path, minimal+"status:\n  listen: 0.0.0.0:9876\n  token_file: st\n")
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Token != "status-token-0123456789" {
			t.Errorf("status token %q", c.Status.Token)
		}
	})
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../packaging/agent.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("maintenance_windows: [\"Fri-Mon 23:00-24:00\"]\n"))
	f.Add([]byte("policy: {pins: {a: &p [x], b: *p}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			if _, err := c.RedactedYAML(); err != nil {
				t.Fatalf("valid config does not render: %v", err)
			}
		}
	})
}

// Regression: %v of the ISAPI, report or status settings printed the secret.
func TestPrintingSettingsHidesSecrets(t *testing.T) {
	isapi := ISAPI{URL: "https://192.0.2.10", Username: "admin", Password: "device-pass-1234"}
	rep := Report{URL: "https://reports.example", Token: "report-token-1234567"}
	st := Status{Listen: "127.0.0.1:9100", Token: "status-token-1234567"}
	dev := Device{ISAPI: isapi}
	for _, got := range []string{fmt.Sprintf("%v", isapi), fmt.Sprintf("%+v", &rep), fmt.Sprint(st), fmt.Sprintf("%v", dev)} {
		if strings.Contains(got, "device-pass-1234") || strings.Contains(got, "token-1234567") || !strings.Contains(got, Redacted) {
			t.Errorf("printed settings keep a secret or lack %s: %s", Redacted, got)
		}
	}
	if !strings.Contains(fmt.Sprint(isapi), "admin") {
		t.Errorf("ISAPI String lost the non-secret fields: %s", isapi)
	}
}

// Regression: duplicate key files written differently (a relative and an
// absolute path) passed the check, and short tokens were accepted.
func TestLoadRefusesDuplicateKeyFilesAndShortTokens(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), "device-pass\n")
	writeFile(t, filepath.Join(dir, "a.pub"), "-----BEGIN PUBLIC KEY-----\n")
	writeFile(t, filepath.Join(dir, "short"), "short-token\n")
	cases := []struct{ name, extra, want string }{
		{"a key file by relative and absolute path", "manifest:\n  keys: [a.pub, " + filepath.Join(dir, "a.pub") + "]\n", "manifest.keys[1]: " + filepath.Join(dir, "a.pub") + " is the same file as manifest.keys[0]"},
		{"a short report token", "report:\n  url: https://r/x\n  token_file: short\n", "report.token: the token is 11 bytes; use at least 16"},
		{"a short status token", "status:\n  listen: 0.0.0.0:9876\n  token_file: short\n", "status.token: the token is 11 bytes; use at least 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "agent.yaml")
			writeFile(t, path, minimal+tc.extra)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v; want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "short-token") {
				t.Fatalf("the token is in the error: %v", err)
			}
		})
	}
}
