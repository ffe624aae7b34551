package support

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/sirupsen/logrus"
)

// Personal data and secrets sprinkled over logs and state files.
var (
	personalData = []string{
		"192.168.1.64", "10.20.30.40", "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a",
		"jane.doe@example.com", "ops+nvr@customer.example.org",
		"installer-joe", "site-admin", "nvradmin",
	}
	secrets = []string{
		"Hunter2Pass!", "s3cr3t-in-url", "dG9rZW4tdmFsdWUtMTIz", "eyJhbGciOiJIUzI1NiJ9.payload.sig",
		"YWRtaW46MTIzNDU=", "digest-response-0f1e2d", "api-key-998877", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
		"yaml-password-value", "report-token-xyz",
	}
	// Facts support needs, which must survive redaction.
	facts = []string{"iDS-9632NXI-I8/16S", "V4.1.25", "build 200316", "DS-9632NXI-I81620200316CCRRE12345678WCVU",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "model_mismatch", "mirror.example.net"}
)

// bundleNow is the injected clock of the bundle tests: log lines, rotated
// files and the bundle are dated from it, never from the wall clock (whose
// distance to fixed dates grows, and which lumberjack's own age cleanup read).
var bundleNow = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// fillSupportDirs writes logs (active, rotated, compressed) and state files
// full of personal data and secrets.
func fillSupportDirs(t *testing.T) (logDir, stateDir string) {
	t.Helper()
	logDir, stateDir = t.TempDir(), t.TempDir()
	// noCompress: lumberjack would compress the rotated files written below
	// in a goroutine of its own while the bundle reads them.
	log, closer, err := NewLogger(LogOptions{Dir: logDir, Level: "debug", noCompress: true,
		Now: func() time.Time { return bundleNow.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	rel := log.WithFields(logrus.Fields{FieldRelease: "r-4.1.25", FieldAttempt: "a1"})
	rel.WithField("device", "192.168.1.64").Info("identify iDS-9632NXI-I8/16S firmware V4.1.25 build 200316 serial DS-9632NXI-I81620200316CCRRE12345678WCVU")
	rel.Infof("GET https://installer-joe:s3cr3t-in-url@mirror.example.net/fw/digicap.dav from 10.20.30.40")
	rel.Debugf("request headers: Authorization: Basic YWRtaW46MTIzNDU= via [2001:db8:85a3::8a2e:370:7334]:443")
	rel.Debugf(`Authorization: Digest username="nvradmin", realm="DS", nonce="n", uri="/ISAPI/System/updateFirmware", response="digest-response-0f1e2d"`)
	rel.WithField("header", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig").Warn("report upload refused")
	rel.WithFields(logrus.Fields{"user": "site-admin", FieldCode: "model_mismatch"}).Error("refused: notify jane.doe@example.com and ops+nvr@customer.example.org")
	rel.Info("sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 verified; peer fe80::1ff:fe23:4567:890a")
	closer.Close()
	// Secrets written by something other than our logger (which scrubs them).
	raw := `{"level":"info","msg":"cfg password=Hunter2Pass! token=dG9rZW4tdmFsdWUtMTIz api_key: api-key-998877","time":"2026-02-01T00:00:00Z"}` + "\n"
	if err := os.WriteFile(filepath.Join(logDir, "fwagent-2026-02-01T00-00-00.000.log"), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"level":"info","msg":"key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY----- loaded by nvradmin","time":"2026-01-01T00:00:00Z"}` + "\n"))
	zw.Close()
	if err := os.WriteFile(filepath.Join(logDir, "fwagent-2026-01-01T00-00-00.000.log.gz"), gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(stateDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("journal.json", `{"step":"install","release":"r-4.1.25","device_url":"https://nvradmin:Hunter2Pass!@192.168.1.64"}`)
	write("history.jsonl", `{"release":"r-4.1.25","result":"refused","code":"model_mismatch","contact":"jane.doe@example.com"}`+"\n")
	write("manifest.json", `{"releases":[{"id":"r-4.1.25","version":"4.1.25","url":"https://mirror.example.net/x?token=report-token-xyz"}]}`)
	a, err := audit.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(audit.Entry{Event: audit.EventRefused, Release: "r-4.1.25", Codes: []string{"model_mismatch"}, Message: "device 10.20.30.40 refused"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	return logDir, stateDir
}

// untar returns the files of a tar.gz bundle.
func untar(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(data)
	}
}

func buildBundle(t *testing.T, personal bool) map[string]string {
	t.Helper()
	logDir, stateDir := fillSupportDirs(t)
	cfg := "device:\n  isapi:\n    url: https://192.168.1.64\n    username: nvradmin\n    password: yaml-password-value\nreport:\n  token: report-token-xyz\n"
	var out bytes.Buffer
	err := WriteBundle(&out, BundleInput{
		LogDir: logDir, StateDir: stateDir, ConfigYAML: []byte(cfg),
		Identity:     map[string]any{"model": "iDS-9632NXI-I8/16S", "serial": "DS-9632NXI-I81620200316CCRRE12345678WCVU", "raw": map[string]string{"ipAddress": "192.168.1.64"}},
		AgentVersion: "1.0.0", IncludePersonal: personal,
		KnownSecrets: []string{"yaml-password-value"}, KnownPersonal: []string{"nvradmin"}, Now: bundleNow, RetentionDays: 90,
	})
	if err != nil {
		t.Fatal(err)
	}
	return untar(t, out.Bytes())
}

func TestBundleRedactsPersonalDataAndSecrets(t *testing.T) {
	files := buildBundle(t, false)
	for _, name := range []string{"index.json", "logs/fwagent.log", "logs/fwagent-2026-02-01T00-00-00.000.log", "logs/fwagent-2026-01-01T00-00-00.000.log",
		"state/journal.json", "state/history.jsonl", "state/manifest.json", "state/audit.jsonl", "config.yaml", "state/identity.json", "system.txt"} {
		if _, ok := files[name]; !ok {
			t.Errorf("bundle lacks %s", name)
		}
	}
	all := ""
	for name, content := range files {
		all += content
		for _, bad := range append(append([]string{}, personalData...), secrets...) {
			if strings.Contains(content, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
	for _, fact := range facts {
		if !strings.Contains(all, fact) {
			t.Errorf("bundle lost the fact %q", fact)
		}
	}
	var idx BundleIndex
	if err := json.Unmarshal([]byte(files["index.json"]), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Mode != ModeRedacted || idx.AgentVersion != "1.0.0" || !strings.HasPrefix(idx.Audit, "intact: 1 entries") {
		t.Errorf("index = %+v; want mode redacted, version 1.0.0, audit intact", idx)
	}
}

func TestBundleWithPersonalDataStillDropsSecrets(t *testing.T) {
	files := buildBundle(t, true)
	all := ""
	for name, content := range files {
		all += content
		for _, bad := range secrets {
			if strings.Contains(content, bad) {
				t.Errorf("%s contains the secret %q", name, bad)
			}
		}
	}
	for _, p := range personalData {
		if !strings.Contains(all, p) {
			t.Errorf("personal bundle lacks %q", p)
		}
	}
	if !strings.Contains(files["index.json"], `"mode": "personal"`) {
		t.Errorf("index does not record the personal mode:\n%s", files["index.json"])
	}
}

// Regression: a state directory without audit.jsonl and audit.head read as
// "intact: 0 entries".
func TestBundleSaysWhenThereIsNoAuditTrail(t *testing.T) {
	var out bytes.Buffer
	if err := WriteBundle(&out, BundleInput{StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	var idx BundleIndex
	if err := json.Unmarshal([]byte(untar(t, out.Bytes())["index.json"]), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Audit != "no audit trail" {
		t.Errorf("index audit = %q; want %q", idx.Audit, "no audit trail")
	}
}

// Regression: log files written before HTML escaping was turned off hold XML
// as \u003cpassword\u003e...; the bundle must redact those too.
func TestBundleRedactsHTMLEscapedXMLInOldLogs(t *testing.T) {
	logDir := t.TempDir()
	line := `{"body":"\u003cUser\u003e\u003cuserName\u003ebob\u003c/userName\u003e\u003cpassword\u003ehunter2\u003c/password\u003e\u003c/User\u003e","level":"info","msg":"put user","time":"2026-02-28T00:00:00Z"}` + "\n"
	if err := os.WriteFile(filepath.Join(logDir, LogFile), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, personal := range []bool{false, true} {
		var out bytes.Buffer
		if err := WriteBundle(&out, BundleInput{LogDir: logDir, IncludePersonal: personal}); err != nil {
			t.Fatal(err)
		}
		got := untar(t, out.Bytes())["logs/"+LogFile]
		if strings.Contains(got, "hunter2") || !strings.Contains(got, "put user") {
			t.Errorf("personal=%v: the escaped XML password survived:\n%s", personal, got)
		}
		if strings.Contains(got, "bob") != personal {
			t.Errorf("personal=%v: user name kept = %v:\n%s", personal, strings.Contains(got, "bob"), got)
		}
	}
}

// Regression: the bundle carried log lines (personal data) older than the
// retention when the active file had not been rotated for long.
func TestBundleLeavesOutLogLinesOlderThanTheRetention(t *testing.T) {
	logDir := t.TempDir()
	line := func(ts, msg string) string {
		return `{"level":"info","msg":"` + msg + `","time":"` + ts + `"}` + "\n"
	}
	os.WriteFile(filepath.Join(logDir, "fwagent-2025-12-01T00-00-00.000.log"), []byte(line("2025-11-30T10:00:00Z", "expired in a rotated file")), 0o600)
	active := line("2026-01-30T23:59:59Z", "just expired") + line("2026-01-31T00:00:00+00:00", "at the limit") + "not json\n" + line("2026-02-28T12:00:00.5+01:00", "recent")
	os.WriteFile(filepath.Join(logDir, LogFile), []byte(active), 0o600)
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // 30 days back: 2026-01-31T00:00:00Z
	build := func(days int) map[string]string {
		var out bytes.Buffer
		if err := WriteBundle(&out, BundleInput{LogDir: logDir, Now: now, RetentionDays: days}); err != nil {
			t.Fatal(err)
		}
		return untar(t, out.Bytes())
	}
	files := build(30)
	got := files["logs/"+LogFile]
	for _, want := range []string{"at the limit", "not json", "recent"} {
		if !strings.Contains(got, want) {
			t.Errorf("bundle log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "just expired") {
		t.Errorf("bundle log keeps a line older than the retention:\n%s", got)
	}
	if _, ok := files["logs/fwagent-2025-12-01T00-00-00.000.log"]; ok {
		t.Error("a rotated file whose lines all expired is in the bundle")
	}
	if !strings.Contains(files["index.json"], "left out 2 log lines older than the 30-day log retention") {
		t.Errorf("index does not say lines were left out:\n%s", files["index.json"])
	}
	if all := build(0); !strings.Contains(all["logs/"+LogFile], "just expired") || all["logs/fwagent-2025-12-01T00-00-00.000.log"] == "" {
		t.Error("without a retention the bundle dropped lines")
	}
}

func TestBundleCapsLogsNewestFirst(t *testing.T) {
	logDir := t.TempDir()
	line := func(tag string) string {
		return `{"level":"info","msg":"` + tag + ` ` + strings.Repeat("x", 80) + `","time":"2026-01-01T00:00:00Z"}` + "\n"
	}
	old := strings.Repeat(line("old"), 100)
	newer := strings.Repeat(line("mid"), 50) + strings.Repeat(line("new"), 50)
	os.WriteFile(filepath.Join(logDir, "fwagent-2026-01-01T00-00-00.000.log"), []byte(old), 0o600)
	os.WriteFile(filepath.Join(logDir, LogFile), []byte(newer), 0o600)
	var out bytes.Buffer
	cap := int64(len(line("new")) * 60)
	if err := WriteBundle(&out, BundleInput{LogDir: logDir, StateDir: t.TempDir(), MaxLogBytes: cap}); err != nil {
		t.Fatal(err)
	}
	files := untar(t, out.Bytes())
	got := files["logs/"+LogFile]
	if strings.Count(got, `"new `) != 50 || strings.Count(got, `"mid `) != 9 {
		t.Errorf("capped log kept %d new and %d mid lines; want all 50 new and the last 9 mid", strings.Count(got, `"new `), strings.Count(got, `"mid `))
	}
	if _, ok := files["logs/fwagent-2026-01-01T00-00-00.000.log"]; ok {
		t.Error("the oldest log is included although the cap was reached")
	}
	if !strings.Contains(files["index.json"], `"truncated": true`) || !strings.Contains(files["index.json"], "log cap reached") {
		t.Errorf("index does not say the logs were capped:\n%s", files["index.json"])
	}
}

func BenchmarkRedactLog(b *testing.B) {
	line := `{"level":"info","msg":"GET https://u:p@10.0.0.1/ISAPI/System/deviceInfo model iDS-9632NXI-I8/16S V4.1.25 build 200316","release":"r1","attempt":"a1","time":"2026-03-01T02:00:00Z"}` + "\n"
	data := strings.Repeat(line, 10000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Redact(data, false)
	}
}

// Regression (issue 14): manifest.dsse.json went into the bundle with its
// payload base64-encoded, so personal data and credentials in release notes
// passed the redactor; identity.json kept the MAC address and device ID.
func TestBundleDecodesTheSignedManifestAndRedactsTheIdentity(t *testing.T) {
	stateDir := t.TempDir()
	notes := "call jane.doe@example.com; mirror 198.51.100.7 and [2001:db8::7]; recorder 44:19:b6:0a:1b:2c; " +
		"Authorization: Basic dXNlcjpSZWxOb3Rlc1Bhc3M= or bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	payload := `{"serial":7,"releases":[{"id":"ids-4.1.25","version":"4.1.25","notes":"` + notes + `","image":{"urls":["https://relnotes-user:RelUrlPass@mirror.example.net/x.dav"]}}]}`
	env := `{"payloadType":"application/vnd.fwagent.manifest+json","payload":"` + base64.StdEncoding.EncodeToString([]byte(payload)) + `","signatures":[{"keyid":"k-release-1","sig":"AAAA"}]}`
	ident := `{"model":"iDS-9632NXI-I8/16S","serial":"DS-1","firmware_version":"V4.1.25","raw":{"deviceID":"88e3c1f0-1b2c-4d5e-8f90-a1b2c3d4e5f6","macAddress":"44-19-b6-0a-1b-2c","deviceName":"Smith residence"}}`
	for n, c := range map[string]string{"manifest.dsse.json": env, "identity.json": ident} {
		if err := os.WriteFile(filepath.Join(stateDir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	personal := []string{"jane.doe@example.com", "198.51.100.7", "2001:db8::7", "44:19:b6:0a:1b:2c", "44-19-b6-0a-1b-2c",
		"88e3c1f0-1b2c-4d5e-8f90-a1b2c3d4e5f6", "Smith residence", "relnotes-user"}
	secret := []string{"dXNlcjpSZWxOb3Rlc1Bhc3M=", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "RelUrlPass"}
	for _, withPersonal := range []bool{false, true} {
		var out bytes.Buffer
		if err := WriteBundle(&out, BundleInput{StateDir: stateDir, IncludePersonal: withPersonal, Now: bundleNow}); err != nil {
			t.Fatal(err)
		}
		files := untar(t, out.Bytes())
		if _, ok := files["state/manifest.dsse.json"]; ok {
			t.Error("the signed envelope itself is in the bundle")
		}
		view := files["state/manifest.dsse.decoded.json"]
		for _, want := range []string{"ids-4.1.25", "k-release-1", `"payload_sha256"`, "mirror.example.net"} {
			if !strings.Contains(view, want) {
				t.Errorf("personal=%v: the decoded manifest lacks %q:\n%s", withPersonal, want, view)
			}
		}
		all := ""
		for _, c := range files {
			all += c
		}
		for _, s := range secret {
			if strings.Contains(all, s) {
				t.Errorf("personal=%v: the bundle holds the secret %q", withPersonal, s)
			}
		}
		for _, p := range personal {
			if strings.Contains(all, p) != withPersonal {
				t.Errorf("personal=%v: the bundle holds %q = %v", withPersonal, p, !withPersonal)
			}
		}
		for _, fact := range []string{"iDS-9632NXI-I8/16S", "DS-1", "V4.1.25"} {
			if !strings.Contains(files["state/identity.json"], fact) {
				t.Errorf("personal=%v: identity lost %q:\n%s", withPersonal, fact, files["state/identity.json"])
			}
		}
	}
}

// An envelope that cannot be decoded stays out rather than going in with a
// payload the redactor cannot read.
func TestBundleLeavesOutAnUndecodableEnvelope(t *testing.T) {
	stateDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(stateDir, "manifest.dsse.json"), []byte(`{"payloadType":"x","payload":"!!not base64!!","signatures":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteBundle(&out, BundleInput{StateDir: stateDir, Now: bundleNow}); err != nil {
		t.Fatal(err)
	}
	files := untar(t, out.Bytes())
	for name := range files {
		if strings.HasPrefix(name, "state/manifest") {
			t.Errorf("bundle holds %s", name)
		}
	}
	if !strings.Contains(files["index.json"], "left out manifest.dsse.json") {
		t.Errorf("index does not say the envelope was left out:\n%s", files["index.json"])
	}
}
