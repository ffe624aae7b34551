package fleet_test

import (
	"testing"

	"github.com/fwagent/fwagent/fleet"
)

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`{"type":"x","key":"","payload":"","sig":""}`))
	f.Add([]byte(`{"seq":1,"time":"2026-11-30T12:00:00Z","serial":"a","model":"b"}`))
	f.Add([]byte(`{"seq":1,"id":"a","time":"2026-11-30T12:00:00Z","device_serial":"a","step":"s","codes":[""]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if env, err := fleet.ParseEnvelope(data); err == nil {
			_, _, _ = env.Open(fleet.TypeCheckIn)
		}
		if c, err := fleet.ParseCheckIn(data); err == nil {
			if c.Validate() != nil {
				t.Fatal("ParseCheckIn accepted what Validate refuses")
			}
		}
		if r, err := fleet.ParseReport(data); err == nil {
			if r.Validate() != nil {
				t.Fatal("ParseReport accepted what Validate refuses")
			}
		}
	})
}
