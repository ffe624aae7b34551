package fleet_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
)

// textField is one text field of a message, as the test reaches it.
type textField[M any] struct {
	json  string
	max   int
	prose bool
	at    func(*M) *string
}

var checkInFields = []textField[fleet.CheckIn]{
	{"serial", fleet.MaxIDLen, false, func(c *fleet.CheckIn) *string { return &c.Serial }},
	{"model", fleet.MaxIDLen, false, func(c *fleet.CheckIn) *string { return &c.Model }},
	{"firmware", fleet.MaxShortLen, false, func(c *fleet.CheckIn) *string { return &c.Firmware }},
	{"device_name", fleet.MaxIDLen, false, func(c *fleet.CheckIn) *string { return &c.DeviceName }},
	{"site", fleet.MaxIDLen, false, func(c *fleet.CheckIn) *string { return &c.Site }},
	{"step", fleet.MaxShortLen, false, func(c *fleet.CheckIn) *string { return &c.Step }},
	{"release_id", fleet.MaxIDLen, false, func(c *fleet.CheckIn) *string { return &c.ReleaseID }},
	{"last_code", fleet.MaxShortLen, false, func(c *fleet.CheckIn) *string { return &c.LastCode }},
	{"last_release_id", fleet.MaxIDLen, false, func(c *fleet.CheckIn) *string { return &c.LastReleaseID }},
	{"agent_version", fleet.MaxShortLen, false, func(c *fleet.CheckIn) *string { return &c.AgentVersion }},
	// last_result is one of three words the agent sets itself (Validate
	// refuses any other): nothing to fit.
}

var reportFields = []textField[fleet.Report]{
	{"id", fleet.MaxIDLen, false, func(r *fleet.Report) *string { return &r.ID }},
	{"device_serial", fleet.MaxIDLen, false, func(r *fleet.Report) *string { return &r.DeviceSerial }},
	{"model", fleet.MaxIDLen, false, func(r *fleet.Report) *string { return &r.Model }},
	{"firmware_version", fleet.MaxShortLen, false, func(r *fleet.Report) *string { return &r.FirmwareVersion }},
	{"release_id", fleet.MaxIDLen, false, func(r *fleet.Report) *string { return &r.ReleaseID }},
	{"version", fleet.MaxShortLen, false, func(r *fleet.Report) *string { return &r.Version }},
	{"attempt_id", fleet.MaxIDLen, false, func(r *fleet.Report) *string { return &r.AttemptID }},
	{"step", fleet.MaxShortLen, false, func(r *fleet.Report) *string { return &r.Step }},
	{"agent_version", fleet.MaxShortLen, false, func(r *fleet.Report) *string { return &r.AgentVersion }},
	{"audit_head", fleet.MaxIDLen, false, func(r *fleet.Report) *string { return &r.AuditHead }},
	{"message", fleet.MaxMessageLen, true, func(r *fleet.Report) *string { return &r.Message }},
	// result: as last_result.
}

// fitCase is a value given to a field and what Fit must make of it, for a
// field of max bytes (prose: a report's message).
type fitCase struct {
	name      string
	give      func(max int) string
	want      func(max int, prose bool) string // nil: only that it is valid and within max
	unchanged bool
}

var a = strings.Repeat

var fitCases = []fitCase{
	{name: "a value exactly at the limit stays", give: func(m int) string { return a("a", m) }, unchanged: true},
	{name: "a value one byte over is cut and marked", give: func(m int) string { return a("a", m+1) },
		want: func(m int, _ bool) string { return a("a", m-3) + fleet.FitCut }},
	{name: "a multi-byte character ending at the limit stays", give: func(m int) string { return a("a", m-3) + "€" }, unchanged: true},
	{name: "a multi-byte character across the cut goes whole", give: func(m int) string { return a("a", m-4) + "€xx" },
		want: func(m int, _ bool) string { return a("a", m-4) + fleet.FitCut }},
	{name: "control characters are replaced, tabs kept only in prose",
		give: func(int) string { return "V4\x1b[31m\u009b\x00\x7f\tok" },
		want: func(_ int, prose bool) string {
			if prose {
				return "V4\ufffd[31m\ufffd\ufffd\ufffd\tok"
			}
			return "V4?[31m????ok"
		}},
	{name: "line breaks pass only in prose", give: func(int) string { return "a\r\nb" },
		want: func(_ int, prose bool) string {
			if prose {
				return "a\r\nb"
			}
			return "a??b"
		}},
	{name: "invalid UTF-8 becomes U+FFFD in prose, a mark elsewhere", give: func(int) string { return "V4\xff\xfe.1\xe2\x82" },
		want: func(_ int, prose bool) string {
			if prose {
				return "V4\ufffd\ufffd.1\ufffd\ufffd"
			}
			return "V4??.1??"
		}},
	{name: "U+FFFD itself passes only in prose", give: func(int) string { return "V\ufffd4" },
		want: func(_ int, prose bool) string {
			if prose {
				return "V\ufffd4"
			}
			return "V?4"
		}},
	{name: "invalid bytes that grow into U+FFFD are still cut within the limit", give: func(m int) string { return a("\xff", m) }},
	{name: "a replaced character across the limit", give: func(m int) string { return a("a", m-1) + "\u0085" }},
}

func TestFitMakesEveryTextFieldValid(t *testing.T) {
	for _, f := range checkInFields {
		for _, tc := range fitCases {
			t.Run("check-in "+f.json+": "+tc.name, func(t *testing.T) {
				c := checkIn()
				c.Seq, c.Time = 1, t0
				given := tc.give(f.max)
				*f.at(&c) = given
				changed := c.Fit()
				fitted(t, f, tc, given, *f.at(&c), changed, c.Validate())
			})
		}
	}
	for _, f := range reportFields {
		for _, tc := range fitCases {
			t.Run("report "+f.json+": "+tc.name, func(t *testing.T) {
				r := fleet.Report{Seq: 1, Report: report.Report{ID: "a", Time: t0, DeviceSerial: "SN1", Step: "install", AgentVersion: "1"}}
				given := tc.give(f.max)
				*f.at(&r) = given
				changed := r.Fit()
				fitted(t, f, tc, given, *f.at(&r), changed, r.Validate())
			})
		}
	}
}

// fitted checks what Fit made of one field: given is the value before,
// got after (and the fields Fit said it changed), valid what Validate
// said of the whole message after.
func fitted[M any](t *testing.T, f textField[M], tc fitCase, given, got string, changed []string, valid error) {
	t.Helper()
	name, max, prose := f.json, f.max, f.prose
	if valid != nil {
		t.Fatalf("after Fit, Validate = %v (field %q)", valid, got)
	}
	if len(got) > max {
		t.Fatalf("%d bytes after Fit, the limit is %d", len(got), max)
	}
	if tc.unchanged && got != given {
		t.Fatalf("Fit changed %q into %q: it already fitted", given, got)
	}
	if tc.want != nil {
		if want := tc.want(max, prose); got != want {
			t.Fatalf("Fit made %q of %q, want %q", got, given, want)
		}
	}
	if says := slices.Contains(changed, name); says != (got != given) {
		t.Fatalf("Fit reports changed fields %q, but %s changed: %v", changed, name, got != given)
	}
}

// The tables above name every text field the messages have: a field added
// to CheckIn or Report without a limit in Validate, or without a case
// here, fails.
func TestFitTablesNameEveryTextField(t *testing.T) {
	covered := func(typ reflect.Type, names []string) {
		for _, f := range reflect.VisibleFields(typ) {
			if f.Type.Kind() != reflect.String || f.Anonymous {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "result" || tag == "last_result" {
				continue
			}
			if !slices.Contains(names, tag) {
				t.Errorf("%s.%s (%s) has no case in the fit tables", typ.Name(), f.Name, tag)
			}
		}
	}
	var ci, rs []string
	for _, f := range checkInFields {
		ci = append(ci, f.json)
	}
	for _, f := range reportFields {
		rs = append(rs, f.json)
	}
	covered(reflect.TypeOf(fleet.CheckIn{}), ci)
	covered(reflect.TypeOf(fleet.Report{}), rs)
}

func TestFitBoundsListsWithoutTouchingTheCallersList(t *testing.T) {
	groups := []string{"", "pilot", a("g", fleet.MaxShortLen+1), "b\x1bc"}
	for i := len(groups); i < 40; i++ {
		groups = append(groups, "wave-"+string(rune('a'+i%26)))
	}
	orig := slices.Clone(groups)
	c := checkIn()
	c.Seq, c.Time, c.Groups = 1, t0, groups
	if changed := c.Fit(); !slices.Equal(changed, []string{"groups"}) {
		t.Errorf("Fit changed %q, want groups", changed)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("after Fit: %v", err)
	}
	if len(c.Groups) != 32 || c.Groups[0] != "pilot" || c.Groups[1] != a("g", fleet.MaxShortLen-3)+fleet.FitCut || c.Groups[2] != "b?c" {
		t.Errorf("fitted groups %q: want the first 32 non-empty ones, cut and marked", c.Groups)
	}
	if !slices.Equal(groups, orig) {
		t.Errorf("Fit changed the caller's list (the agent's config): %q", groups)
	}

	codes := []string{"badFlash", "x\x00"}
	r := fleet.Report{Seq: 1, Report: report.Report{ID: "a", Time: t0, DeviceSerial: "SN1", Step: "install", AgentVersion: "1", Codes: codes}}
	if changed := r.Fit(); !slices.Equal(changed, []string{"codes"}) || !slices.Equal(r.Codes, []string{"badFlash", "x?"}) || codes[1] != "x\x00" {
		t.Errorf("Fit changed %q into codes %q (the caller's now %q)", changed, r.Codes, codes)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("after Fit: %v", err)
	}
}

func TestFitLeavesAFittingMessageAlone(t *testing.T) {
	c := checkIn()
	c.Seq, c.Time, c.Groups = 1, t0, []string{"pilot"}
	want := c
	if changed := c.Fit(); changed != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("Fit changed %q of a valid check-in", changed)
	}
	r := fleet.Report{Seq: 1, Report: report.Report{ID: "a", Time: t0, DeviceSerial: "SN1", Step: "install", AgentVersion: "1",
		Message: "line one\n\tline two\r\n\ufffd", Codes: []string{"badFlash"}}}
	wantR := r
	if changed := r.Fit(); changed != nil || !reflect.DeepEqual(r, wantR) {
		t.Errorf("Fit changed %q of a valid report", changed)
	}
}

// Fit does not invent what is missing: an empty serial stays empty, and
// Validate still refuses it.
func TestFitDoesNotFillARequiredField(t *testing.T) {
	c := checkIn()
	c.Seq, c.Time, c.Serial = 1, t0, ""
	c.Fit()
	if c.Serial != "" || c.Validate() == nil {
		t.Errorf("serial %q after Fit, Validate %v: want it empty and refused", c.Serial, c.Validate())
	}
}

func FuzzFitMakesAValidMessage(f *testing.F) {
	f.Add("V4.1.25", "a\x1b[2Jb\xff", "pilot")
	f.Add(a("€", 30), a("\xff", 5000), "")
	f.Add("\u0085\x00", "\r\n\t\ufffd", a("x", 70))
	f.Fuzz(func(t *testing.T, ident, message, group string) {
		c := checkIn()
		c.Seq, c.Time = 1, t0
		c.Serial, c.Model, c.Firmware, c.Site = "SN"+ident, "M"+ident, ident, ident
		c.Groups = []string{group, ident}
		c.Fit()
		if err := c.Validate(); err != nil {
			t.Fatalf("check-in after Fit: %v", err)
		}
		again := c
		again.Groups = slices.Clone(c.Groups)
		if changed := again.Fit(); changed != nil {
			t.Fatalf("Fit changed %q of a fitted check-in", changed)
		}
		r := fleet.Report{Seq: 1, Report: report.Report{ID: "a" + ident, Time: t0, DeviceSerial: "S" + ident, Step: "s" + ident,
			FirmwareVersion: ident, Message: message, Codes: []string{group}}}
		r.Fit()
		if err := r.Validate(); err != nil {
			t.Fatalf("report after Fit: %v", err)
		}
	})
}
