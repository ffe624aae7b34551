package reports

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/manifest"
)

// serialIn returns a serial whose bucket for rollout id is in [lo, hi),
// different from those in taken.
func serialIn(t testing.TB, id string, lo, hi int, taken map[string]bool) string {
	t.Helper()
	for i := 0; i < 1_000_000; i++ {
		s := fmt.Sprintf("SN%06d", i)
		if b := manifest.Bucket(id, s); b >= lo && b < hi && !taken[s] {
			taken[s] = true
			return s
		}
	}
	t.Fatalf("no serial with bucket in [%d, %d)", lo, hi)
	return ""
}

// record is a report received at t0 + minutes.
func record(minutes int, id, serial, release, step, result string, codes ...string) Record {
	at := t0.Add(time.Duration(minutes) * time.Minute)
	return Record{Received: at, Report: report.Report{ID: id, Time: at, DeviceSerial: serial, ReleaseID: release, Step: step, Result: result, Codes: codes}}
}

func testRollout() *manifest.Rollout {
	return &manifest.Rollout{ID: "ro", Include: []string{"VIP-1"}, Stages: []manifest.Stage{
		{At: t0.Add(1 * time.Hour), Percent: 5},
		{At: t0.Add(2 * time.Hour), Percent: 25},
		{At: t0.Add(3 * time.Hour), Percent: 100},
	}}
}

func TestSummarize(t *testing.T) {
	ro := testRollout()
	taken := map[string]bool{}
	s1a, s1b := serialIn(t, "ro", 0, 500, taken), serialIn(t, "ro", 0, 500, taken)
	s2 := serialIn(t, "ro", 500, 2500, taken)
	s3 := serialIn(t, "ro", 2500, 10000, taken)
	group := serialIn(t, "ro", 2500, 10000, taken)
	early := serialIn(t, "ro", 2500, 10000, taken)
	recs := []Record{
		record(10, "e1", early, "rel", "download", ""), // before stage 1: a group device
		record(61, "g1", group, "rel", "download", ""), // during stage 1 with a stage-3 bucket: a group device
		record(62, "g2", group, "rel", "done", "installed"),
		record(70, "v1", "VIP-1", "rel", "done", "installed"), // included, first seen during stage 1
		record(70, "a1", s1a, "rel", "download", ""),
		record(71, "a2", s1a, "rel", "install", "failed", "badFlash"),
		record(72, "a3", s1a, "rel", "download", ""), // retrying: latest counts
		record(73, "a4", s1a, "rel", "install", "failed", "badFlash", "upload_failed"),
		record(74, "b1", s1b, "rel", "download", "failed"),
		record(75, "b2", s1b, "rel", "install", ""),
		record(130, "c1", s2, "rel", "done", "success"),
		record(190, "d1", s3, "rel", "decide", "refused", "model_mismatch"),
		record(191, "x1", s3, "other", "done", "installed"),
		record(192, "x2", "", "", "cycle", "failed", "device_unreachable"),
	}
	s := Summarize(recs, "rel", ro, t0.Add(150*time.Minute))
	if s.Current != 1 || s.Ignored != 2 || s.Total.Devices != 7 {
		t.Fatalf("current %d ignored %d devices %d", s.Current, s.Ignored, s.Total.Devices)
	}
	byserial := map[string]DeviceStatus{}
	for _, d := range s.Devices {
		byserial[d.Serial] = d
	}
	tests := []struct {
		name   string
		serial string
		state  State
		stage  int
	}{
		{"a device seen before stage 1 counts in the pilot row", early, StateDownloading, PilotStage},
		{"a device that came in during stage 1 with a later bucket counts in stage 1", group, StateConfirmed, 0},
		{"an included device counts in the stage in force when first seen", "VIP-1", StateConfirmed, 0},
		{"the latest report of a device decides its state", s1a, StateFailed, 0},
		{"a device that failed and is installing again still counts as failed", s1b, StateFailed, 0},
		{"a bucket first admitted at 25% counts in stage 2", s2, StateConfirmed, 1},
		{"a refusal counts as refused in its bucket's stage", s3, StateRefused, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := byserial[tt.serial]
			if !ok || d.State != tt.state || d.Stage != tt.stage {
				t.Fatalf("device %+v, want state %s stage %d", d, tt.state, tt.stage)
			}
		})
	}
	st1 := s.Stages[1]
	if st1.Devices != 4 || st1.Confirmed != 2 || st1.Failed != 2 || st1.Installing != 0 || st1.FailureCodes["badFlash"] != 1 || st1.FailureCodes["upload_failed"] != 1 || st1.FailureCodes["unknown"] != 1 {
		t.Fatalf("stage 1 row %+v", st1)
	}
	if rate, ok := st1.FailureRate(); !ok || rate != 0.5 {
		t.Fatalf("stage 1 failure rate %v %v, want 1/2", rate, ok)
	}
	if _, ok := s.Stages[3].FailureRate(); ok {
		t.Fatal("a stage without finished devices has a failure rate")
	}
	if !s.Stages[2].Current || s.CurrentStage().Index != 1 {
		t.Fatal("stage 2 is not marked current")
	}
}

func TestSummarizeWithoutRollout(t *testing.T) {
	recs := []Record{record(1, "a", "SN1", "rel", "done", "installed"), record(2, "b", "SN2", "rel", "install", "failed")}
	s := Summarize(recs, "rel", nil, t0)
	if len(s.Stages) != 0 || s.Total.Confirmed != 1 || s.Total.Failed != 1 || s.Total.FailureCodes["unknown"] != 1 {
		t.Fatalf("summary %+v", s)
	}
	if err := s.CheckAdvance(2, 1); !errors.Is(err, ErrNoRollout) {
		t.Fatalf("advance without rollout: %v", err)
	}
}

func TestCheckAdvance(t *testing.T) {
	ro := testRollout()
	taken := map[string]bool{}
	var recs []Record
	// 50 devices in stage 2's range, n of them failed.
	mk := func(failed int) []Record {
		out := append([]Record(nil), recs...)
		for i := 0; i < 50; i++ {
			s := serialIn(t, "ro", 500, 2500, taken)
			result := "installed"
			if i < failed {
				result = "failed"
			}
			out = append(out, record(130, "r"+s, s, "rel", "done", result, "badFlash"))
		}
		return out
	}
	now := t0.Add(150 * time.Minute)
	tests := []struct {
		name        string
		recs        []Record
		max         float64
		minFinished int
		want        string
	}{
		{"a stage within the limit may advance", mk(0), 2, 1, ""},
		{"a failure rate exactly at the limit may advance", mk(1), 2, 1, ""},
		{"a failure rate above the limit is refused", mk(2), 2, 1, "4.0% (2 failed of 50 finished), above the 2% limit; failures: badFlash 2"},
		{"a stage without finished devices is refused", nil, 2, 1, "0 finished device(s)"},
		{"a stage without finished devices may advance with min-finished 0", nil, 2, 0, ""},
		{"too few finished devices are refused", mk(0), 2, 51, "at least 51 needed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Summarize(tt.recs, "rel", ro, now).CheckAdvance(tt.max, tt.minFinished)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrAdvanceRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	taken := map[string]bool{}
	s1, s2 := serialIn(t, "ro", 0, 500, taken), serialIn(t, "ro", 0, 500, taken)
	recs := []Record{record(70, "a", s1, "rel", "done", "installed"), record(71, "b", s2, "rel", "install", "failed", "badFlash")}
	var b strings.Builder
	s := Summarize(recs, "rel", testRollout(), t0.Add(90*time.Minute))
	if err := s.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"release rel, rollout ro: stage 1 of 3 (5%) since 2026-12-01T01:00:00Z",
		"FAILURE RATE", "50.0%", "(future)", "failures in stage 1 (5%): badFlash 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(out, "pilot") {
		t.Error("an empty pilot row is shown while stage 1 is current")
	}
	b.Reset()
	if err := s.WriteDevices(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), s2) || !strings.Contains(b.String(), "[badFlash]") {
		t.Errorf("device list:\n%s", b.String())
	}
}

// TestRetriesDoNotHideFailures is the regression test for devices counted
// by their latest report: a failed device that starts attempt 2 reports
// "download" and must still count as failed.
func TestRetriesDoNotHideFailures(t *testing.T) {
	ro := testRollout()
	taken := map[string]bool{}
	now := t0.Add(150 * time.Minute)
	ok := serialIn(t, "ro", 500, 2500, taken)
	recs := []Record{record(121, "ok1", ok, "rel", "download", ""), record(122, "ok2", ok, "rel", "done", "installed")}
	for i := 0; i < 9; i++ {
		s := serialIn(t, "ro", 500, 2500, taken)
		recs = append(recs,
			record(121, s+"-1", s, "rel", "download", ""),
			record(122, s+"-2", s, "rel", "install", "failed", "badFlash"),
			record(123, s+"-3", s, "rel", "download", ""), // attempt 2 starts
		)
	}
	s := Summarize(recs, "rel", ro, now)
	cur := s.CurrentStage()
	if cur.Confirmed != 1 || cur.Failed != 9 || cur.Downloading != 0 || cur.FailureCodes["badFlash"] != 9 {
		t.Fatalf("current stage %+v", cur.Counts)
	}
	err := s.CheckAdvance(2, 1)
	if !errors.Is(err, ErrAdvanceRefused) || !strings.Contains(err.Error(), "90.0% (9 failed of 10 finished)") {
		t.Fatalf("advance with 9 of 10 failed: %v", err)
	}

	tests := []struct {
		name   string
		recs   []Record
		state  State
		latest State
	}{
		{"a failure then a confirmed install counts as confirmed", []Record{
			record(121, "a", "D", "rel", "install", "failed", "badFlash"),
			record(122, "b", "D", "rel", "download", ""),
			record(123, "c", "D", "rel", "done", "installed"),
		}, StateConfirmed, StateConfirmed},
		{"a failure then a refusal counts as failed", []Record{
			record(121, "a", "D", "rel", "install", "failed", "badFlash"),
			record(122, "b", "D", "rel", "decide", "refused", "quarantined"),
		}, StateFailed, StateRefused},
		{"a confirmed install then a failed reinstall counts as failed", []Record{
			record(121, "a", "D", "rel", "done", "installed"),
			record(122, "b", "D", "rel", "install", "failed", "badFlash"),
		}, StateFailed, StateFailed},
		{"a device without failure counts by its latest report", []Record{
			record(121, "a", "D", "rel", "download", ""),
			record(122, "b", "D", "rel", "install", ""),
		}, StateInstalling, StateInstalling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Summarize(tt.recs, "rel", ro, now).Devices[0]
			if d.State != tt.state || d.Latest != tt.latest {
				t.Fatalf("state %s latest %s, want %s %s", d.State, d.Latest, tt.state, tt.latest)
			}
			if d.State == StateFailed && (len(d.FailureCodes) != 1 || d.FailureCodes[0] != "badFlash") {
				t.Fatalf("failure codes %v", d.FailureCodes)
			}
		})
	}

	var b strings.Builder
	if err := s.WriteDevices(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "failed, retrying"); n != 9 || !strings.Contains(b.String(), "[badFlash]") {
		t.Fatalf("%d devices shown as failed, retrying:\n%s", n, b.String())
	}
}

// TestWriteDevicesEscapesControlCharacters: a report message is printed
// with control characters escaped, never raw to the operator's terminal.
func TestWriteDevicesEscapesControlCharacters(t *testing.T) {
	rec := record(70, "a", "SN1", "rel", "install", "failed", "badFlash")
	rec.Report.Message = "line 1\nFAKE-SN\tconfirmed\x1b[2J\x1b]0;owned\a\u2028end \xff C:\\fw"
	s := Summarize([]Record{rec}, "rel", nil, t0)
	var b strings.Builder
	if err := s.WriteDevices(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "\n") != 2 || strings.ContainsAny(out, "\x1b\a\t\u2028") || !strings.Contains(out, `line 1\nFAKE-SN\tconfirmed\x1b[2J\x1b]0;owned\a\u2028end \xff C:\\fw`) {
		t.Fatalf("device list:\n%q", out)
	}

	tests := []struct{ name, in, want string }{
		{"plain text is unchanged", "upload failed: device busy (é)", "upload failed: device busy (é)"},
		{"a newline is escaped", "a\nb", `a\nb`},
		{"an escape sequence is escaped", "\x1b[31mred", `\x1b[31mred`},
		{"invalid UTF-8 is escaped", "a\xffb", `a\xffb`},
		{"a backslash is doubled so escapes stay unambiguous", `a\nb`, `a\\nb`},
		{"a Unicode line separator is escaped", "a\u2028b", `a\u2028b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Printable(tt.in); got != tt.want {
				t.Fatalf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
