package fleet_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fwagent/fwagent/fleet"
)

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`{"type":"x","key":"","payload":"","sig":""}`))
	f.Add([]byte(`{"type":"x","key":"","payload":"not base64!","sig":""}`))
	f.Add([]byte(`{"seq":1,"time":"2026-11-30T12:00:00Z","serial":"a","model":"b"}`))
	f.Add([]byte(`{"seq":1,"time":"2026-11-30T12:00:00+24:00","serial":"a","model":"b","queue_depth":3000000000}`))
	f.Add([]byte(`{"seq":18446744073709551615,"time":"9999-12-31T23:59:59-23:59","serial":"a\u0000","model":"\u0085","interval_seconds":100000000000,"groups":["\ud800"]}`))
	f.Add([]byte(`{"seq":1,"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"a","step":"s","codes":[""]}`))
	f.Add([]byte(`{"seq":1,"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"a","step":"s","message":"a\u0000\n\tb","audit_seq":9223372036854775808}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if env, err := fleet.ParseEnvelope(data); err == nil {
			_, _, _ = env.Open(fleet.TypeCheckIn)
		}
		if c, err := fleet.ParseCheckIn(data); err == nil {
			if c.Validate() != nil {
				t.Fatal("ParseCheckIn accepted what Validate refuses")
			}
			storable(t, c, c.Seq, c.ManifestSerial)
			if c.Progress > math.MaxInt32 || c.QueueDepth > math.MaxInt32 {
				t.Fatalf("accepted progress %d, queue depth %d: above a PostgreSQL INTEGER", c.Progress, c.QueueDepth)
			}
			if c.IntervalSeconds > math.MaxInt64/int64(1e9)/fleet.StaleIntervals {
				t.Fatalf("accepted interval %d s: the stale time overflows", c.IntervalSeconds)
			}
		}
		if r, err := fleet.ParseReport(data); err == nil {
			if r.Validate() != nil {
				t.Fatal("ParseReport accepted what Validate refuses")
			}
			storable(t, r, r.Seq, r.AuditSeq)
		}
	})
}

// storable fails t unless an accepted message is what both stores keep:
// its JSON encodes, its strings are valid UTF-8 without NUL, and its
// unsigned numbers fit a BIGINT.
func storable(t *testing.T, msg any, unsigned ...uint64) {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatalf("accepted a message that does not encode: %v", err)
	}
	var strs []string
	collect(b, &strs)
	for _, s := range strs {
		if strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			t.Fatalf("accepted the string %q", s)
		}
	}
	for _, u := range unsigned {
		if u > math.MaxInt64 {
			t.Fatalf("accepted %d: above a BIGINT", u)
		}
	}
}

// collect gathers the strings of a message from its JSON form.
func collect(b []byte, out *[]string) {
	var v any
	_ = json.Unmarshal(b, &v)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			*out = append(*out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
}
