package support

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestLoggerWritesJSONScrubsSecretsAndEchoesTextToATerminal(t *testing.T) {
	dir := t.TempDir()
	var term bytes.Buffer
	log, closer, err := NewLogger(LogOptions{Dir: filepath.Join(dir, "logs"), Level: "info", Stderr: &term, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	log.WithFields(logrus.Fields{FieldRelease: "r1", FieldAttempt: "a1"}).Info("login with password=hunter2 to 192.0.2.1")
	log.Debug("not at info level")
	closer.Close()
	b, err := os.ReadFile(filepath.Join(dir, "logs", LogFile))
	if err != nil {
		t.Fatal(err)
	}
	file := string(b)
	if !strings.HasPrefix(file, "{") || !strings.Contains(file, `"release":"r1"`) || !strings.Contains(file, `"attempt":"a1"`) {
		t.Errorf("log file is not JSON lines with release and attempt:\n%s", file)
	}
	if strings.Contains(file, "hunter2") || strings.Contains(term.String(), "hunter2") {
		t.Errorf("a secret reached the log:\n%s\n%s", file, term.String())
	}
	if !strings.Contains(file, "192.0.2.1") {
		t.Errorf("the local log lost personal data it may keep:\n%s", file)
	}
	if strings.Contains(file, "not at info level") {
		t.Error("a debug line was written at level info")
	}
	if !strings.Contains(term.String(), "level=info") || strings.HasPrefix(term.String(), "{") {
		t.Errorf("terminal copy is not readable text: %q", term.String())
	}
}

// Regression: logrus's JSONFormatter escaped HTML by default, so an XML body
// reached the scrubber as \u003cpassword\u003e and its secret survived.
func TestLoggerScrubsSecretsInXMLFields(t *testing.T) {
	dir := t.TempDir()
	log, closer, err := NewLogger(LogOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	log.WithField("body", "<User><userName>bob</userName><password>hunter2</password></User>").Info("PUT /ISAPI/Security/users/1")
	closer.Close()
	b, err := os.ReadFile(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("the XML password reached the log file:\n%s", b)
	}
	if !strings.Contains(string(b), "<password>[REDACTED:secret]</password>") {
		t.Errorf("the log file does not keep the XML unescaped with the password redacted:\n%s", b)
	}
	var out bytes.Buffer
	if err := WriteBundle(&out, BundleInput{LogDir: dir}); err != nil {
		t.Fatal(err)
	}
	got := untar(t, out.Bytes())["logs/"+LogFile]
	if !strings.Contains(got, "PUT /ISAPI/Security/users/1") || strings.Contains(got, "hunter2") || strings.Contains(got, "bob") {
		t.Errorf("bundle log keeps the XML secret or user name:\n%s", got)
	}
}

// Regression: lumberjack expires rotated files only, so a quiet agent's
// active log kept its lines past the retention. Each tick rotates it now.
func TestLoggerRotatesTheActiveFileOnEachTick(t *testing.T) {
	dir := t.TempDir()
	ticks := make(chan time.Time)
	log, closer, err := NewLogger(LogOptions{Dir: dir, RotateTicks: ticks, noCompress: true})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("written before the tick")
	ticks <- time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	closer.Close() // waits for the rotation the tick started
	log.Info("written after the tick")
	closer.Close()
	files, err := LogFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("log files = %v; want one rotated file and the active one", files)
	}
	rotated, _ := os.ReadFile(files[0])
	active, _ := os.ReadFile(files[1])
	if !strings.Contains(string(rotated), "before the tick") || strings.Contains(string(active), "before the tick") || !strings.Contains(string(active), "after the tick") {
		t.Errorf("rotated:\n%s\nactive:\n%s", rotated, active)
	}
}

func TestLoggerDoesNotRotateAnEmptyFile(t *testing.T) {
	dir := t.TempDir()
	ticks := make(chan time.Time)
	_, closer, err := NewLogger(LogOptions{Dir: dir, RotateTicks: ticks, noCompress: true})
	if err != nil {
		t.Fatal(err)
	}
	ticks <- time.Now()
	closer.Close()
	if files, _ := LogFiles(dir); len(files) != 0 {
		t.Errorf("an empty log was rotated: %v", files)
	}
}

func TestNewLoggerRejectsAnUnknownLevel(t *testing.T) {
	if _, _, err := NewLogger(LogOptions{Dir: t.TempDir(), Level: "loud"}); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("NewLogger(level loud) error = %v; want one naming log.level", err)
	}
}

func TestReadLogsAcrossRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	l := func(ts, rel, att, msg string) string {
		return `{"level":"info","msg":"` + msg + `","release":"` + rel + `","attempt":"` + att + `","time":"` + ts + `"}` + "\n"
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(l("2026-01-01T00:00:00Z", "r1", "a1", "oldest")))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "fwagent-2026-01-01T00-00-00.000.log.gz"), gz.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, "fwagent-2026-02-01T00-00-00.000.log"), []byte(l("2026-02-01T00:00:00Z", "r2", "a2", "middle")), 0o600)
	os.WriteFile(filepath.Join(dir, LogFile), []byte(l("2026-03-01T00:00:00Z", "r2", "a3", "newest")+"not json\n"), 0o600)

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"no query yields every line oldest first", Query{}, []string{"oldest", "middle", "newest", "not json"}},
		{"a release selects its attempts", Query{Release: "r2"}, []string{"middle", "newest"}},
		{"an attempt selects its lines", Query{Attempt: "a1"}, []string{"oldest"}},
		{"since drops older lines", Query{Since: time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)}, []string{"middle", "newest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for e, err := range ReadLogs(dir, tt.q) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e.Msg)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestFormatLogEntry(t *testing.T) {
	e := ParseLogLine([]byte(`{"level":"warning","msg":"download stalled","release":"r1","attempt":"a1","code":"stall","bytes":1024,"mirror":"https://m.example/x y","time":"2026-03-01T02:00:00Z"}`))
	want := `2026-03-01T02:00:00Z WARNING download stalled release=r1 attempt=a1 code=stall bytes=1024 mirror="https://m.example/x y"`
	if got := FormatLogEntry(e); got != want {
		t.Fatalf("FormatLogEntry =\n%s\nwant\n%s", got, want)
	}
}

// Rotated files expire by the logger's clock (LogOptions.Now), at start and
// on every tick, never by the wall clock.
func TestLoggerExpiresRotatedFilesByItsClock(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"fwagent-2026-01-01T00-00-00.000.log.gz", "fwagent-2026-02-10T00-00-00.000.log", "fwagent-2026-02-20T00-00-00.000.log", "other.log"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ticks := make(chan time.Time)
	log, closer, err := NewLogger(LogOptions{Dir: dir, RetentionDays: 15, RotateTicks: ticks, noCompress: true,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var out []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	if got := strings.Join(names(), ","); got != "fwagent-2026-02-20T00-00-00.000.log,other.log" {
		t.Errorf("after start: %s; want the files rotated within 15 days of 2026-03-01 and other.log", got)
	}
	log.Info("a line")
	now = now.AddDate(0, 0, 10)
	ticks <- now
	closer.Close()
	for _, n := range names() {
		if n == "fwagent-2026-02-20T00-00-00.000.log" {
			t.Errorf("a file rotated 19 days before the clock survived the tick: %v", names())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "other.log"))
	if err != nil || string(b) != "{}\n" {
		t.Errorf("a file that is not a rotated log was touched: %v", err)
	}
}

func TestLoggerStampsLinesWithItsClock(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 3, 1, 2, 3, 4, 0, time.UTC)
	log, closer, err := NewLogger(LogOptions{Dir: dir, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("stamped")
	closer.Close()
	for e, err := range ReadLogs(dir, Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if !e.Time.Equal(at) {
			t.Errorf("line time = %v; want %v", e.Time, at)
		}
	}
}

func TestFormatLogEntryPrintsIntegersAsIntegers(t *testing.T) {
	e := ParseLogLine([]byte(`{"level":"info","msg":"download verified","bytes":200000000,"size":4294967296,"rate":0.5,"nested":{"n":123456789},"time":"2026-03-01T02:00:00Z"}`))
	want := `2026-03-01T02:00:00Z INFO  download verified bytes=200000000 nested="{\"n\":123456789}" rate=0.5 size=4294967296`
	if got := FormatLogEntry(e); got != want {
		t.Fatalf("FormatLogEntry =\n%s\nwant\n%s", got, want)
	}
}

// SecretHook scrubs a logger built without NewLogger (the agent adds it to
// whatever logger it is given).
func TestSecretHookScrubsAPlainLogger(t *testing.T) {
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.AddHook(SecretHook{})
	u, _ := url.Parse("http://joe:UrlPass-1@192.0.2.9/m.json")
	log.WithFields(logrus.Fields{"url": u, "auth": "Authorization: Bearer tok-1234567890", "n": 3}).
		WithError(errors.New(`Get "http://joe:ErrPass-2@192.0.2.9/m.json": EOF`)).
		Info("fetch with password=MsgPass-3 from 192.0.2.9")
	got := out.String()
	for _, bad := range []string{"UrlPass-1", "tok-1234567890", "ErrPass-2", "MsgPass-3"} {
		if strings.Contains(got, bad) {
			t.Errorf("the line holds %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{`"n":3`, "192.0.2.9", `"url":"http://192.0.2.9/m.json"`} {
		if !strings.Contains(got, want) {
			t.Errorf("the line lacks %q:\n%s", want, got)
		}
	}
}

func TestQueryMatchesADevice(t *testing.T) {
	hall := LogEntry{Fields: map[string]any{"device": "hall"}}
	if !(Query{Device: "HALL"}).Match(hall) || (Query{Device: "yard"}).Match(hall) || !(Query{}).Match(hall) {
		t.Fatal("--device matches the device field, without case")
	}
}
